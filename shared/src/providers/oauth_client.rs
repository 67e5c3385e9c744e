//! The OAuth client of a provider: authorization URLs, the code exchange and the refresh, and
//! the token endpoint's answers (RFC 6749 section 5.1 and 5.2, with Microsoft's additions).

use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize as _;
use serde_json::Value;
use std::borrow::Cow;
use std::time::Duration;

use super::http::{malformed, parse_url, read_body, send, throttled_or_server, truncate};
use super::{AuthorizeRequest, Pkce, ProviderError, TokenSet};
use crate::config::{ProviderConfig, into_secret};

/// The scopes of a definition: the configured ones, or its defaults.
pub(crate) fn scopes_or(config: &ProviderConfig, defaults: &[&str]) -> Vec<String> {
    config.scopes.clone().unwrap_or_else(|| defaults.iter().map(|s| (*s).to_owned()).collect())
}

/// When an `invalid_grant` on a refresh means the refresh token is dead.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RevokedWhen {
    /// Any `invalid_grant` (or `interaction_required`) on a refresh.
    AnyRefusal,
    /// Only when the description says so (Google answers `invalid_grant` for malformed requests
    /// too, and "Token has been expired or revoked." for a dead token).
    DescriptionContains(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    Code,
    Refresh,
}

/// The OAuth client of one provider: authorization URLs through the `oauth2` crate, token
/// requests through reqwest.
///
/// oauth2's token requests report a refusal as the parsed error body only: the HTTP status, the
/// `Retry-After` header and non-standard fields such as Microsoft's `error_codes` are gone by
/// then, and a 429 or 5xx with an HTML body becomes an opaque parse error. The sync worker needs
/// all of those to tell a dead grant from a throttled or failing provider, so the token calls
/// are made here and the standard token response (RFC 6749 section 5.1) is parsed by hand.
#[derive(Debug, Clone)]
pub(crate) struct OAuthClient {
    pub http: reqwest::Client,
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revoked_when: RevokedWhen,
}

/// Parameters the OAuth exchange sets itself; a caller's extra parameter may not replace them.
const RESERVED_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];

impl OAuthClient {
    pub fn new(config: &ProviderConfig, http: reqwest::Client, authorize: &str, token: &str) -> Result<Self, String> {
        Ok(OAuthClient {
            http,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            authorize_url: parse_url(config.authorize_url.as_deref().unwrap_or(authorize), "authorize_url")?,
            token_url: parse_url(config.token_url.as_deref().unwrap_or(token), "token_url")?,
            revoked_when: RevokedWhen::AnyRefusal,
        })
    }

    /// The authorization URL with the provider's own parameters (`defaults`), overridden by the
    /// caller's extra parameters of the same name.
    pub fn authorization_url(
        &self,
        request: &AuthorizeRequest<'_>,
        scopes: &[String],
        pkce: bool,
        defaults: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        if let Some((name, _)) = request.extra_params.iter().find(|(n, _)| RESERVED_PARAMS.contains(n)) {
            return Err(ProviderError::Unsupported(format!(
                "authorization parameter `{name}` is set by the provider definition and cannot be overridden"
            )));
        }
        let redirect = RedirectUrl::new(request.redirect_uri.to_owned())
            .map_err(|_| ProviderError::Unsupported("the redirect URI is not a valid URL".to_owned()))?;
        let client = oauth2::basic::BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(self.authorize_url.clone()));
        let mut auth = client
            .authorize_url(|| CsrfToken::new(request.state.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scopes(scopes.iter().cloned().map(Scope::new));
        if pkce {
            let verifier = PkceCodeVerifier::new(request.pkce.verifier().expose_secret().to_owned());
            auth = auth.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
        }
        for (name, value) in defaults {
            if !request.extra_params.iter().any(|(n, _)| n == name) {
                auth = auth.add_extra_param(*name, *value);
            }
        }
        for (name, value) in request.extra_params {
            auth = auth.add_extra_param(*name, *value);
        }
        Ok(auth.url().0.to_string())
    }

    /// `grant_type=authorization_code`, with the client secret in the body (every provider here
    /// accepts `client_secret_post`).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce: Option<&Pkce>,
        redirect_uri: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<TokenSet, ProviderError> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        if let Some(pkce) = pkce {
            form.push(("code_verifier", pkce.verifier().expose_secret()));
        }
        form.extend_from_slice(extra);
        self.token_request(form, Grant::Code).await
    }

    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        extra: &[(&str, &str)],
    ) -> Result<TokenSet, ProviderError> {
        let mut form: Vec<(&str, &str)> =
            vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        form.extend_from_slice(extra);
        self.token_request(form, Grant::Refresh).await
    }

    async fn token_request(&self, mut form: Vec<(&str, &str)>, grant: Grant) -> Result<TokenSet, ProviderError> {
        form.push(("client_id", &self.client_id));
        form.push(("client_secret", self.client_secret.expose_secret()));
        let request = self.http.post(self.token_url.clone()).header("accept", "application/json").form(&form);
        let response = send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response).await?;
        if !status.is_success() {
            return Err(token_error(status, &headers, &body, grant, self.revoked_when));
        }
        parse_token_response(&body)
    }
}

#[derive(serde::Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    scope: Option<String>,
}

/// `expires_in` as a number, or as a numeric string as some token services send it.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| serde::de::Error::custom("bad expires_in")),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom("bad expires_in")),
        Some(_) => Err(serde::de::Error::custom("bad expires_in")),
    }
}

pub(crate) fn parse_token_response(body: &[u8]) -> Result<TokenSet, ProviderError> {
    let raw: RawTokenResponse = serde_json::from_slice(body).map_err(|e| malformed("token response", &e))?;
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderError::Malformed("token response has no access_token".to_owned()))?;
    Ok(TokenSet {
        access_token: into_secret(access_token),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(into_secret),
        expires_in: raw.expires_in.map(Duration::from_secs),
        scope: raw.scope.filter(|s| !s.is_empty()),
    })
}

/// The error fields of RFC 6749 section 5.2, plus Microsoft's `error_codes`.
#[derive(Debug, Default)]
struct OAuthErrorBody {
    error: Option<String>,
    description: Option<String>,
    sub_code: Option<String>,
}

fn parse_oauth_error(body: &[u8]) -> OAuthErrorBody {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return OAuthErrorBody::default();
    };
    let error = map.get("error").and_then(Value::as_str).map(truncate);
    let description = map.get("error_description").and_then(Value::as_str).map(truncate);
    let sub_code = map
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|codes| codes.first())
        .and_then(Value::as_u64)
        .map(|n| format!("AADSTS{n}"))
        .or_else(|| description.as_deref().and_then(aadsts_prefix));
    OAuthErrorBody { error, description, sub_code }
}

/// "AADSTS70000: ..." → "AADSTS70000", for a Microsoft error without `error_codes`.
fn aadsts_prefix(description: &str) -> Option<String> {
    let rest = description.strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
}

fn token_error(status: StatusCode, headers: &HeaderMap, body: &[u8], grant: Grant, rule: RevokedWhen) -> ProviderError {
    if let Some(e) = throttled_or_server(status, headers) {
        return e;
    }
    let parsed = parse_oauth_error(body);
    match parsed.error.as_deref() {
        Some(code @ ("invalid_grant" | "interaction_required")) => {
            let revoked = grant == Grant::Refresh
                && match rule {
                    RevokedWhen::AnyRefusal => true,
                    RevokedWhen::DescriptionContains(needle) => parsed
                        .description
                        .as_deref()
                        .is_some_and(|d| d.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())),
                };
            ProviderError::InvalidGrant {
                code: code.to_owned(),
                sub_code: parsed.sub_code,
                description: parsed.description,
                revoked,
            }
        }
        _ => ProviderError::Rejected {
            status: status.as_u16(),
            code: parsed.sub_code.or(parsed.error),
            description: parsed.description,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_come_from_error_codes_or_the_description() {
        let with_codes =
            parse_oauth_error(br#"{"error":"invalid_grant","error_description":"x","error_codes":[700082]}"#);
        assert_eq!(with_codes.sub_code.as_deref(), Some("AADSTS700082"));
        let from_text = parse_oauth_error(br#"{"error":"invalid_grant","error_description":"AADSTS50173: gone"}"#);
        assert_eq!(from_text.sub_code.as_deref(), Some("AADSTS50173"));
        let google = parse_oauth_error(br#"{"error":"invalid_grant","error_description":"Bad Request"}"#);
        assert_eq!(google.sub_code, None);
    }
}
