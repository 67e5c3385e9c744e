//! List pagination: `limit` (1–200, default 50) and an opaque `cursor`; responses are
//! `{"items": [...], "next_cursor": "..." | null}`. The cursor names the keyset position (the
//! last row's index_id) behind a version prefix (`k1.`), so the keyset can change without
//! breaking clients. Its exact form is in the OpenAPI document, so a client can tell a
//! mangled cursor from a real one; a cursor of another version or form is a 400.

use serde::Serialize;

use super::ApiError;
use crate::db::{Page, PageRequest};

const CURSOR_PREFIX: &str = "k1.";
/// The cursor's exact form: the prefix and up to 18 digits (every such number fits an i64).
const CURSOR_PATTERN: &str = r"^k1\.[0-9]{1,18}$";

pub fn encode_cursor(after: i64) -> String {
    format!("{CURSOR_PREFIX}{after}")
}

pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid_field("cursor", "is not a cursor this API returned");
    let digits = cursor.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

/// The `limit` query parameter of every list: 1 to 200 rows, 50 when absent. One type, so
/// every list documents and enforces the same bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u16);

impl Limit {
    pub fn new(n: u16) -> Option<Limit> {
        (1..=PageRequest::MAX_LIMIT).contains(&n).then_some(Limit(n))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Limit, D::Error> {
        let n = u16::deserialize(d)?;
        Limit::new(n)
            .ok_or_else(|| serde::de::Error::custom(format!("must be between 1 and {}", PageRequest::MAX_LIMIT)))
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(PageRequest::MAX_LIMIT))
            .default(Some(PageRequest::DEFAULT_LIMIT.into()))
            .description(Some("Rows per page, 1 to 200; 50 when absent."))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// The `cursor` query parameter of every list: a `next_cursor` this API returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl utoipa::PartialSchema for Cursor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(CURSOR_PATTERN))
            .description(Some("`next_cursor` of the previous page, as it was returned."))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

/// Builds the store's page request from the `limit` and `cursor` query parameters.
pub fn page_request(limit: Option<Limit>, cursor: Option<&Cursor>) -> Result<PageRequest, ApiError> {
    let limit = limit.map_or(PageRequest::DEFAULT_LIMIT, Limit::get);
    let after = cursor.map(|c| c.0.as_str()).map(decode_cursor).transpose()?;
    Ok(PageRequest { after, limit })
}

/// One page of a list; pass `next_cursor` back as `cursor` for the next page (null: no more).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for ListResponse<T> {
    fn from(page: Page<T>) -> ListResponse<T> {
        ListResponse { items: page.items, next_cursor: page.next_after.map(encode_cursor) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert_eq!(encode_cursor(42), "k1.42");
        for bad in ["", "42", "k1.", "k1.-1", "k1.+1", " k1.1", "k1.1234567890123456789", "k2.1", "azE6NDI"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_outside_1_to_200_are_refused() {
        let limit = |v: serde_json::Value| serde_json::from_value::<Limit>(v);
        assert_eq!(page_request(None, None).unwrap(), PageRequest { after: None, limit: 50 });
        assert!(limit(serde_json::json!(0)).unwrap_err().to_string().contains("between 1 and 200"));
        assert!(limit(serde_json::json!(201)).is_err());
        assert!(limit(serde_json::json!(-1)).is_err());
        let cursor = Cursor(encode_cursor(7));
        assert_eq!(
            page_request(limit(serde_json::json!(200)).ok(), Some(&cursor)).unwrap(),
            PageRequest { after: Some(7), limit: 200 }
        );
    }
}
