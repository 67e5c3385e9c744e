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

/// Builds the store's page request from the `limit` and `cursor` query parameters.
pub fn page_request(limit: Option<u16>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    if limit == 0 || limit > PageRequest::MAX_LIMIT {
        return Err(ApiError::invalid_field("limit", format!("must be between 1 and {}", PageRequest::MAX_LIMIT)));
    }
    let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    Ok(PageRequest { after, limit })
}

/// One page of a list; pass `next_cursor` back as `cursor` for the next page (null: no more).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    pub fn from_page<U>(page: Page<U>, view: impl Fn(U) -> T) -> ListResponse<T> {
        ListResponse {
            items: page.items.into_iter().map(view).collect(),
            next_cursor: page.next_after.map(encode_cursor),
        }
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
        assert_eq!(page_request(None, None).unwrap(), PageRequest { after: None, limit: 50 });
        assert!(page_request(Some(0), None).is_err());
        assert!(page_request(Some(201), None).is_err());
        assert_eq!(
            page_request(Some(200), Some(&encode_cursor(7))).unwrap(),
            PageRequest { after: Some(7), limit: 200 }
        );
    }
}
