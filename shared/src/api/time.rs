//! A timestamp from a request: RFC 3339 and within the range every engine stores and orders
//! alike, so a year 0 or 10000 is a 400 naming the field instead of a database fault.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::db::{TIMESTAMP_RANGE, timestamp_in_range};

/// An RFC 3339 timestamp between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z (after
/// conversion to UTC). Deserialising anything else fails with a message the body extractor
/// reports on the field. In OpenAPI it is a `date-time` string (use
/// `#[schema(value_type = DateTime<Utc>)]` on fields of this type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Parses and range-checks; the error is the message for the field.
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        let t = DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                format!(
                    "must be an RFC 3339 timestamp (such as 2026-01-31T12:00:00Z) between \
                     0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z ({e})"
                )
            })?
            .with_timezone(&Utc);
        if !timestamp_in_range(&t.naive_utc()) {
            return Err(TIMESTAMP_RANGE.to_owned());
        }
        Ok(Timestamp(t))
    }

    pub fn into_inner(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_range_and_refuses_what_lies_outside() {
        let inside = ["0001-01-01T00:00:00Z", "2026-11-27T05:00:00.123456+02:00", "9999-12-31T23:59:59.999999Z"];
        let outside = [
            "2016-12-31T23:59:60Z",
            "2017-01-01T05:29:60.5+05:30",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
        ];

        let accepted: Vec<_> = inside.iter().map(|s| Timestamp::parse(s)).collect();
        let refused: Vec<_> = outside.iter().map(|s| Timestamp::parse(s)).collect();

        for (s, r) in inside.iter().zip(&accepted) {
            assert!(r.is_ok(), "{s}: {r:?}");
        }
        for (s, r) in outside.iter().zip(&refused) {
            assert!(r.is_err(), "{s} accepted as {r:?}");
        }
        assert_eq!(Timestamp::parse("0000-01-01T00:00:00Z"), Err(TIMESTAMP_RANGE.to_owned()));
        assert!(Timestamp::parse("yesterday").is_err_and(|m| m.starts_with("must be an RFC 3339 timestamp")));
    }

    #[test]
    fn deserialises_from_a_json_string_only() {
        let ok: Result<Timestamp, _> = serde_json::from_str("\"2026-01-31T12:00:00Z\"");
        let number: Result<Timestamp, _> = serde_json::from_str("1700000000");

        assert_eq!(
            ok.map(Timestamp::into_inner).ok(),
            DateTime::parse_from_rfc3339("2026-01-31T12:00:00Z").ok().map(|t| t.to_utc())
        );
        assert!(number.is_err());
    }
}
