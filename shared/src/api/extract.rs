//! Request extractors whose rejections speak the API's error vocabulary: malformed JSON, a
//! bad field, a bad query parameter or a malformed id is a 400 naming it, never axum's
//! plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ApiError;

/// Request bodies larger than this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON request body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json") || m.to_ascii_lowercase().ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|_| {
            ApiError::bad_request("body_too_large", format!("the body must be at most {MAX_BODY_BYTES} bytes"))
        })?;
        let _ = state;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON object, naming the offending field on a type or value error. Anything but
/// whitespace after the value is malformed JSON, not ignored. A number with no fraction
/// (`804.0`, `1e3`) is an integer, as JSON Schema (and so the OpenAPI document) says.
pub fn parse_json<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let value = json_value(bytes)?;
    // serde reads a struct from a JSON array too (its fields in order): `[null, null]` would
    // pass for an object of two optional fields. Every body this service reads is an object
    // (`null` stands for an absent optional body).
    if !(value.is_object() || value.is_null()) {
        return Err(ApiError::bad_request("invalid_body", "the body must be a JSON object"));
    }
    parse_value(value)
}

/// The body as a JSON value: malformed JSON is a 400 `malformed_json`.
fn json_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))?;
    integral_numbers_as_integers(&mut value);
    Ok(value)
}

/// `804.0` → `804`, everywhere in the value, for numbers an `i64` or `u64` holds exactly;
/// other numbers stay as they are. Deserialising into an integer field then accepts every
/// JSON number JSON Schema calls an integer, and a float field still takes an integer.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // 2^63 and 2^64 are exact as f64 but out of range; the casts below saturate,
                // so only values strictly inside the ranges are converted.
                if f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
                    *value = Value::from(f as i64);
                } else if f >= 0.0 && f < 2f64.powi(64) {
                    *value = Value::from(f as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {inner}"))
        } else if path == "." {
            // serde reports a missing field at the enclosing object; the client needs its name.
            let message = strip_position(&inner.to_string());
            match missing_field(&message) {
                Some(field) => ApiError::invalid_field(field.to_owned(), "is required"),
                None => ApiError::bad_request("invalid_body", message),
            }
        } else {
            ApiError::invalid_field(path, strip_position(&inner.to_string()))
        }
    })
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// serde_json appends " at line 1 column 42"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters; unknown or malformed ones are a 400.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(QueryParams).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." {
                ApiError::bad_request("invalid_query", inner)
            } else {
                ApiError::invalid_field(path, inner)
            }
        })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// A resource id from the path; a malformed one is a 400 on `id`.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid_field("id", "must be a UUID"))
}

/// The one parameter of a route's path (`{id}`, `{provider}`), percent-decoded, with its
/// name; see [`path_params`] for the rejections.
async fn path_param(parts: &mut Parts) -> Result<(String, String), ApiError> {
    match <[(String, String); 1]>::try_from(path_params(parts).await?) {
        Ok([param]) => Ok(param),
        Err(params) => Err(ApiError::Internal(
            format!("the route has {} path parameters; PathParam and PathId take exactly one", params.len()).into(),
        )),
    }
}

/// Every parameter of a route's path, percent-decoded, with its name. A value that does not
/// decode to UTF-8 (`/folders/%FF`) is a 400 naming the parameter in the JSON envelope, never
/// axum's plain-text rejection.
async fn path_params(parts: &mut Parts) -> Result<Vec<(String, String)>, ApiError> {
    use axum::extract::Path;
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;

    match Path::<Vec<(String, String)>>::from_request_parts(parts, &()).await {
        Ok(Path(params)) => Ok(params),
        Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                Err(ApiError::invalid_field(key.clone(), "must be percent-encoded UTF-8"))
            }
            _ => Err(ApiError::bad_request("invalid_path", e.body_text())),
        },
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Every parameter of a route's path by name, as text (for routes with more than one).
#[derive(Debug)]
pub struct PathParams(pub Vec<(String, String)>);

impl PathParams {
    /// The parameter `name` (a route's own name: a missing one is a bug, an internal error).
    pub fn get(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::Internal(format!("the route has no path parameter `{name}`").into()))
    }

    /// The parameter `name` as an id: not a UUID is a 400 naming it.
    pub fn id<I: From<Uuid>>(&self, name: &str) -> Result<I, ApiError> {
        Uuid::parse_str(self.get(name)?).map(Into::into).map_err(|_| ApiError::invalid_field(name, "must be a UUID"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        path_params(parts).await.map(PathParams)
    }
}

/// The one path parameter of a route as text; see [`path_param`] for its rejections.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        path_param(parts).await.map(|(_, value)| PathParam(value))
    }
}

/// The one path parameter of a route as an id (`PathId<FolderId>`): a value that is not a
/// UUID, or does not decode, is a 400 naming the parameter (`id`).
#[derive(Debug, Clone, Copy)]
pub struct PathId<I>(pub I);

impl<I: From<Uuid>, S: Send + Sync> FromRequestParts<S> for PathId<I> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (name, value) = path_param(parts).await?;
        Uuid::parse_str(&value).map(|id| PathId(id.into())).map_err(|_| ApiError::invalid_field(name, "must be a UUID"))
    }
}

/// An optional JSON body: absent (no Content-Type and an empty body) is `None`; anything
/// else must be valid JSON.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let declared_empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        if req.headers().get(CONTENT_TYPE).is_none() {
            let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|_| {
                ApiError::bad_request("body_too_large", format!("the body must be at most {MAX_BODY_BYTES} bytes"))
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        if declared_empty {
            return Ok(None);
        }
        // `null` is how JSON says "no body" too: the same as leaving it out.
        let JsonBody(value) = <JsonBody<serde_json::Value> as FromRequest<S>>::from_request(req, state).await?;
        if value.is_null() {
            return Ok(None);
        }
        parse_value(value).map(|v| Some(JsonBody(v)))
    }
}

/// A free-text field: trimmed of nothing, refused when longer than `max_chars` characters
/// (the column size) or when it holds a NUL, which SQL Server and SQLite treat differently.
pub fn bounded_text(field: &'static str, value: String, max_chars: usize) -> Result<String, ApiError> {
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid_field(field, format!("must be at most {max_chars} characters")));
    }
    if value.contains('\0') {
        return Err(ApiError::invalid_field(field, "must not contain NUL characters"));
    }
    Ok(value)
}

/// The longest provider id a request may name: ids are stored in VARCHAR(255) columns
/// (`provider_folder_id`, `provider_file_id`), so a longer one can never be configured.
pub const MAX_PROVIDER_ID_CHARS: usize = 255;

/// A provider's item id from a request (`parent_id`, `provider_folder_id`): not empty, at most
/// [`MAX_PROVIDER_ID_CHARS`] characters, no control characters (no provider's ids have them,
/// and they would reach a URL or a header). Refused with a 400 naming `field` before any
/// provider is asked.
pub fn provider_item_id(field: &'static str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if value.chars().count() > MAX_PROVIDER_ID_CHARS {
        return Err(ApiError::invalid_field(field, format!("must be at most {MAX_PROVIDER_ID_CHARS} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(field, "must not contain control characters"));
    }
    Ok(value)
}

/// The fallback of every router: an unknown path is a JSON 404, like an unknown id.
pub async fn no_route() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        folder_id: String,
    }

    #[test]
    fn anything_after_the_value_is_malformed_json() {
        let trailing =
            [r#"{"folder_id":"f"} garbage"#, r#"{"folder_id":"f"}{"folder_id":"g"}"#, r#"{"folder_id":"f"},"#];

        for body in trailing {
            // Act
            let parsed = parse_json::<Body>(&Bytes::from(body));

            // Assert
            match parsed {
                Err(ApiError::BadRequest { code, field, .. }) => {
                    assert_eq!((code, field), ("malformed_json", None), "{body}");
                }
                other => panic!("{body}: expected malformed_json, got {other:?}"),
            }
        }
        let padded = parse_json::<Body>(&Bytes::from("  {\"folder_id\":\"f\"} \n\t"));
        assert!(padded.is_ok(), "trailing whitespace is fine: {padded:?}");
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Numbers {
        count: i32,
        size: u64,
        ratio: f64,
        nested: Vec<i64>,
    }

    #[test]
    fn a_number_without_a_fraction_is_an_integer() {
        // Act
        let parsed =
            parse_json::<Numbers>(&Bytes::from(r#"{"count": 804.0, "size": 1e3, "ratio": 2, "nested": [-5.0]}"#));
        let fractional =
            parse_json::<Numbers>(&Bytes::from(r#"{"count": 804.5, "size": 1, "ratio": 2, "nested": []}"#));
        let too_big = parse_json::<Numbers>(&Bytes::from(r#"{"count": 1e10, "size": 1, "ratio": 2, "nested": []}"#));

        // Assert
        assert_eq!(parsed.unwrap(), Numbers { count: 804, size: 1000, ratio: 2.0, nested: vec![-5] });
        for (name, refused) in [("fraction", fractional), ("out of range", too_big)] {
            match refused {
                Err(ApiError::BadRequest { field, .. }) => assert_eq!(field.as_deref(), Some("count"), "{name}"),
                other => panic!("{name}: expected a 400 on count, got {other:?}"),
            }
        }
    }
}
