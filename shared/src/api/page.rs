//! List pagination: `limit` (1–200, default 50) and an opaque `cursor`; responses are
//! `{"items": [...], "next_cursor": "..." | null}`. The cursor wraps the keyset position
//! (the last row's index_id); it is opaque so the keyset can change without breaking clients.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::ApiError;
use crate::db::{Page, PageRequest};

const CURSOR_PREFIX: &str = "k1:";

pub fn encode_cursor(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{after}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid_field("cursor", "is not a cursor this API returned");
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    let n: i64 = text.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    Ok(n)
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
            .pattern(Some("^[A-Za-z0-9_-]+$"))
            .description(Some("`next_cursor` of the previous page, as it was returned."))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

/// Builds the store's page request from the `limit` and `cursor` query parameters.
pub fn page_request(limit: Option<Limit>, cursor: Option<&Cursor>) -> Result<PageRequest, ApiError> {
    let limit = limit.map_or(PageRequest::DEFAULT_LIMIT, Limit::get);
    let after = cursor.map(|c| c.0.as_str()).filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
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
        for bad in ["", "42", "azE6LTE", "not base64!", &URL_SAFE_NO_PAD.encode("k1:x")] {
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
