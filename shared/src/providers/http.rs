//! The HTTP plumbing every provider definition shares: endpoint URLs built from ids that
//! cannot change the path, sending with timeouts turned into [`ProviderError`]s, JSON answers,
//! the providers' error bodies, and `Retry-After`; for sync, answers read whole so a caller can
//! look at a failure body itself (resync signals), and downloads: a redirect to a
//! pre-authenticated URL followed by hand without the bearer token, and a body streamed chunk
//! by chunk.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

use super::{Download, MAX_DESCRIPTION_CHARS, ProviderError};

/// Parses an endpoint URL at start-up; the message names the configuration field.
pub(crate) fn parse_url(url: &str, field: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|_| format!("`{field}` is not a valid URL"))
}

/// `base` with `segments` appended, each percent-encoded: item ids come from the database and
/// must not be able to change the path.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// An id that goes into a URL path. `endpoint` encodes `/` and `%`, but drops `.` and `..`
/// segments, so such an id would silently address another resource.
pub(crate) fn path_id<'a>(id: &'a str, what: &str) -> Result<&'a str, ProviderError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(ProviderError::Unsupported(format!("`{id}` is not a valid {what}")));
    }
    Ok(id)
}

/// Sends a request; a failure before any response is a timeout or a network error.
pub(crate) async fn send(request: RequestBuilder) -> Result<Response, ProviderError> {
    request.send().await.map_err(transport_error)
}

pub(super) async fn read_body(response: Response) -> Result<Vec<u8>, ProviderError> {
    response.bytes().await.map(|b| b.to_vec()).map_err(transport_error)
}

pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        // The URL is dropped: it is ours and adds nothing, and a future endpoint might carry
        // something in its query.
        ProviderError::Network(truncate(&crate::error_chain(&e.without_url())))
    }
}

/// Reads a JSON success body, or turns a failure status into the matching error.
pub(crate) async fn json_response<T: DeserializeOwned>(response: Response, what: &str) -> Result<T, ProviderError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_body(response).await?;
    if !status.is_success() {
        return Err(api_error(status, &headers, &body));
    }
    serde_json::from_slice(&body).map_err(|e| malformed(what, &e))
}

/// Checks a response whose success body does not matter. A 404 counts as success (the thing
/// to delete is already gone) only when its body is the provider's own JSON error with one of
/// `gone_codes` (Graph `itemNotFound`, Drive `notFound`, Box `not_found`), read as every other
/// provider error is ([`api_error_fields`]). A 404 from anything else (an HTML page, a proxy, a
/// wrong base URL) says nothing about the item and stays a failure.
pub(crate) async fn expect_success(response: Response, gone_codes: &[&str]) -> Result<(), ProviderError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let headers = response.headers().clone();
    let body = read_body(response).await?;
    let gone = status == StatusCode::NOT_FOUND
        && api_error_fields(&body).0.is_some_and(|code| gone_codes.contains(&code.as_str()));
    if gone {
        return Ok(());
    }
    Err(api_error(status, &headers, &body))
}

/// A response read whole, for calls whose failure body the caller inspects before the usual
/// classification (a delta token's 410, Dropbox's `reset`, a rejected Drive page token).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub async fn read(response: Response) -> Result<Answer, ProviderError> {
        let status = response.status();
        let headers = response.headers().clone();
        Ok(Answer { status, headers, body: read_body(response).await? })
    }

    /// The success body as JSON, or the failure classified as [`json_response`] does.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ProviderError> {
        if !self.status.is_success() {
            return Err(self.error());
        }
        serde_json::from_slice(&self.body).map_err(|e| malformed(what, &e))
    }

    pub fn error(&self) -> ProviderError {
        api_error(self.status, &self.headers, &self.body)
    }

    /// The provider's error code, as [`api_error`] reads it.
    pub fn code(&self) -> Option<String> {
        api_error_fields(&self.body).0
    }
}

/// How many redirects a download may take before it is given up: Graph and Box send one.
const MAX_DOWNLOAD_REDIRECTS: usize = 5;

/// Turns the answer to an authenticated download request into the file's bytes. A redirect is
/// followed by hand with a plain GET that carries no `Authorization` header: the provider's
/// `Location` is a pre-authenticated URL (Graph, Box), and it appears in no error, log or
/// returned value, since anyone holding it can read the file for a while.
pub(crate) async fn download_response(client: &reqwest::Client, response: Response) -> Result<Download, ProviderError> {
    let mut response = response;
    let mut hops = 0;
    while response.status().is_redirection() {
        if hops == MAX_DOWNLOAD_REDIRECTS {
            return Err(ProviderError::Malformed(format!("the download redirected more than {hops} times")));
        }
        hops += 1;
        let target = redirect_target(&response)?;
        // The pre-authenticated host's own error bodies may echo the URL: only the status is kept.
        response = send(client.get(target)).await?;
        if !response.status().is_success() && !response.status().is_redirection() {
            return Err(preauth_refused(response.status(), response.headers(), "download"));
        }
    }
    if !response.status().is_success() {
        let answer = Answer::read(response).await?;
        return Err(answer.error());
    }
    Ok(Download { size: response.content_length(), body: body_stream(response) })
}

/// A failure of a pre-authenticated URL (a download's or an upload session's): only the status
/// is kept, since such a host's error bodies may quote the URL.
pub(crate) fn preauth_refused(status: StatusCode, headers: &HeaderMap, what: &str) -> ProviderError {
    throttled_or_server(status, headers).unwrap_or(ProviderError::Rejected {
        status: status.as_u16(),
        code: None,
        description: Some(format!("the pre-authenticated {what} URL refused the request")),
    })
}

/// The `Location` of a redirect, resolved against the URL that answered. Only HTTPS is
/// followed, or HTTP when the answering URL was HTTP too (a local fake), never a downgrade.
fn redirect_target(response: &Response) -> Result<Url, ProviderError> {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ProviderError::Malformed("a download redirect has no usable Location".to_owned()))?;
    let target = response
        .url()
        .join(location)
        .map_err(|_| ProviderError::Malformed("a download redirect's Location is not a URL".to_owned()))?;
    match (response.url().scheme(), target.scheme()) {
        (_, "https") | ("http", "http") => Ok(target),
        _ => Err(ProviderError::Malformed("a download redirect leads to a scheme that is not followed".to_owned())),
    }
}

/// A response body as a stream of chunks as they arrive, so a file is never held whole in
/// memory; a failure mid-body ends the stream with the error.
pub(crate) fn body_stream(response: Response) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    futures_util::stream::try_unfold(response, |mut response| async move {
        Ok(response.chunk().await.map_err(transport_error)?.map(|chunk| (chunk, response)))
    })
    .boxed()
}

/// A non-negative integer field sent as a JSON number (Graph, Dropbox, Box) or as a decimal
/// string (Drive's int64 `size`).
pub(crate) fn int_field(value: &Value, key: &str) -> Option<i64> {
    match value.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// An RFC 3339 timestamp field; a missing or unreadable one is `None` (times are informative,
/// the revision and hash decide what changed).
pub(crate) fn time_field(value: &Value, key: &str) -> Option<DateTime<Utc>> {
    str_field(value, key).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// serde_json's message can quote a value from the body, and a body may hold a token, so only
/// the category and position are kept.
pub(crate) fn malformed(what: &str, e: &serde_json::Error) -> ProviderError {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    ProviderError::Malformed(format!("{what}: {category} at line {}, column {}", e.line(), e.column()))
}

pub(super) fn throttled_or_server(status: StatusCode, headers: &HeaderMap) -> Option<ProviderError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(ProviderError::RateLimited { retry_after: retry_after(headers) });
    }
    if status.is_server_error() {
        return Some(ProviderError::Server { status: status.as_u16() });
    }
    None
}

/// The `Retry-After` of a response, counted from now.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok().and_then(|v| parse_retry_after(v, Utc::now()))
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (RFC 9110 section 10.2.3) counted
/// from `now` (a date in the past means no wait).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a subset of RFC 2822.
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A failed API (not token) call. The error body shapes differ by provider; this reads the
/// code and message of each:
/// - OAuth: `{"error": "...", "error_description": "..."}`
/// - Microsoft Graph: `{"error": {"code": "itemNotFound", "message": "..."}}`
/// - Google: `{"error": {"code": 404, "message": "...", "errors": [{"reason": "notFound"}]}}`
/// - Dropbox: `{"error_summary": "path/not_found/..", "error": {".tag": "path", ...}}`
/// - Box: `{"type": "error", "status": 404, "code": "not_found", "message": "..."}`
pub(crate) fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    if let Some(e) = throttled_or_server(status, headers) {
        return e;
    }
    let (code, description) = api_error_fields(body);
    // Google Drive throttles with 403 and these reasons rather than with 429.
    if status == StatusCode::FORBIDDEN && matches!(code.as_deref(), Some("rateLimitExceeded" | "userRateLimitExceeded"))
    {
        return ProviderError::RateLimited { retry_after: retry_after(headers) };
    }
    ProviderError::Rejected { status: status.as_u16(), code, description }
}

pub(crate) fn api_error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(truncate);
    match map.get("error") {
        Some(Value::String(code)) => (Some(truncate(code)), text(map.get("error_description"))),
        Some(Value::Object(inner)) if map.contains_key("error_summary") => {
            (text(inner.get(".tag")), text(map.get("error_summary")))
        }
        Some(Value::Object(inner)) => {
            let reason =
                inner.get("errors").and_then(Value::as_array).and_then(|e| e.first()).and_then(|e| e.get("reason"));
            let code = text(reason).or_else(|| text(inner.get("code"))).or_else(|| text(inner.get("status")));
            (code, text(inner.get("message")))
        }
        _ => (text(map.get("code")), text(map.get("message"))),
    }
}

/// One line of at most [`MAX_DESCRIPTION_CHARS`] characters (plus an ellipsis when cut), with
/// control characters and runs of whitespace folded into single spaces.
pub(crate) fn truncate(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DESCRIPTION_CHARS * 4));
    let mut kept = 0;
    for c in text.chars().map(|c| if c.is_control() || c.is_whitespace() { ' ' } else { c }) {
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if kept == MAX_DESCRIPTION_CHARS {
            out.truncate(out.trim_end().len());
            out.push('…');
            return out;
        }
        out.push(c);
        kept += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// `Authorization: Bearer` for an API call.
pub(crate) fn bearer(request: RequestBuilder, access_token: &SecretString) -> RequestBuilder {
    request.bearer_auth(access_token.expose_secret())
}

/// A string field of a JSON object.
pub(crate) fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// A required string field of a documented response.
pub(crate) fn required_str(value: &Value, key: &str, what: &str) -> Result<String, ProviderError> {
    str_field(value, key)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::Malformed(format!("{what} has no `{key}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 2026 00:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn descriptions_become_one_short_line() {
        let long = format!("AADSTS70000: bad\r\nTrace ID: x\r\n{}", "y".repeat(1000));
        let short = truncate(&long);
        assert!(short.starts_with("AADSTS70000: bad Trace ID: x y"), "{short}");
        assert_eq!(short.chars().count(), MAX_DESCRIPTION_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(truncate("  a \t\n b  "), "a b");
        assert_eq!(truncate(&"é".repeat(MAX_DESCRIPTION_CHARS)).chars().count(), MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn api_error_bodies_of_each_provider_are_read() {
        let graph = br#"{"error":{"code":"itemNotFound","message":"The resource could not be found."}}"#;
        assert_eq!(api_error_fields(graph).0.as_deref(), Some("itemNotFound"));
        let google = br#"{"error":{"code":404,"message":"File not found: abc.","errors":[{"domain":"global","reason":"notFound","message":"File not found: abc."}]}}"#;
        assert_eq!(api_error_fields(google), (Some("notFound".into()), Some("File not found: abc.".into())));
        let dropbox = br#"{"error_summary":"shared_link_not_found/..","error":{".tag":"shared_link_not_found"}}"#;
        assert_eq!(api_error_fields(dropbox).0.as_deref(), Some("shared_link_not_found"));
        let boxcom = br#"{"type":"error","status":404,"code":"not_found","message":"Not Found","request_id":"abc"}"#;
        assert_eq!(api_error_fields(boxcom), (Some("not_found".into()), Some("Not Found".into())));
        assert_eq!(api_error_fields(b"<html>oops</html>"), (None, None));
    }

    #[test]
    fn google_403_rate_limits_are_rate_limits() {
        let body = br#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#;
        let e = api_error(StatusCode::FORBIDDEN, &HeaderMap::new(), body);
        assert_eq!(e, ProviderError::RateLimited { retry_after: None });
        assert!(e.is_transient());
    }

    #[test]
    fn ids_that_would_vanish_from_a_path_are_refused() {
        let base = Url::parse("https://graph.test/v1.0").unwrap();
        assert_eq!(endpoint(&base, &["items", "a/b%c", "x"]).as_str(), "https://graph.test/v1.0/items/a%2Fb%25c/x");
        for bad in ["", ".", ".."] {
            assert!(matches!(path_id(bad, "item id"), Err(ProviderError::Unsupported(_))), "{bad:?}");
        }
        assert_eq!(path_id("01BYE5RZ!54927", "item id"), Ok("01BYE5RZ!54927"));
    }
}
