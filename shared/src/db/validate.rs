//! Column-size checks, done before SQL so an over-long value is a named 400, not a
//! truncation error (SQL Server) or silently stored (SQLite has no length types).
//!
//! VARCHAR(n) is counted in UTF-8 bytes: the SQL Server database uses a UTF-8 collation
//! (see migrations/README.md), where n is a byte count. NVARCHAR(n) is counted in UTF-16
//! code units, which is what SQL Server counts.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::error::DbError;
use super::model::*;

pub fn varchar(field: &'static str, value: &str, max_bytes: usize) -> Result<(), DbError> {
    if value.len() > max_bytes {
        return Err(DbError::validation(field, format!("must be at most {max_bytes} bytes")));
    }
    Ok(())
}

pub fn nvarchar(field: &'static str, value: &str, max_units: usize) -> Result<(), DbError> {
    if value.encode_utf16().count() > max_units {
        return Err(DbError::validation(field, format!("must be at most {max_units} characters")));
    }
    Ok(())
}

pub fn non_empty(field: &'static str, value: &str) -> Result<(), DbError> {
    if value.trim().is_empty() {
        return Err(DbError::validation(field, "must not be empty"));
    }
    Ok(())
}

/// The timestamps every engine stores and orders alike: DATETIME2 runs from year 1 to 9999
/// (tiberius cannot even encode a year before 1), and SQLite's ISO text sorts correctly only
/// for four-digit years. Microsecond precision is what the API round-trips.
pub const TIMESTAMP_RANGE: &str = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z";

/// Whether a UTC timestamp is inside [`TIMESTAMP_RANGE`]. A leap second (chrono holds second
/// 60 as a nanosecond count of a billion or more) is outside: DATETIME2 has no 23:59:60, and
/// tiberius would encode a time of day past midnight that SQL Server refuses.
pub fn timestamp_in_range(t: &NaiveDateTime) -> bool {
    use chrono::Timelike as _;
    if t.nanosecond() >= 1_000_000_000 {
        return false;
    }
    let min = NaiveDate::from_ymd_opt(1, 1, 1).map(|d| d.and_time(NaiveTime::MIN));
    let max = NaiveDate::from_ymd_opt(9999, 12, 31).and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999));
    matches!((min, max), (Some(min), Some(max)) if (min..=max).contains(t))
}

/// Refuses steps binding a timestamp outside [`TIMESTAMP_RANGE`] before anything is sent: on
/// SQL Server a year before 1 fails tiberius's encoding (a protocol error that would cost the
/// connection) and a year after 9999 the server's conversion; SQLite would store text that
/// sorts out of order. The API refuses such values first, naming the field; this is the
/// backstop for any other caller.
pub(crate) fn step_timestamps(steps: &[super::backend::Step]) -> Result<(), DbError> {
    let out_of_range = steps
        .iter()
        .flat_map(|s| &s.params)
        .any(|p| matches!(p, super::value::Value::Timestamp(t) if !timestamp_in_range(t)));
    if out_of_range {
        return Err(DbError::validation("timestamp", TIMESTAMP_RANGE));
    }
    Ok(())
}

fn opt<F: Fn(&str) -> Result<(), DbError>>(value: &Option<String>, check: F) -> Result<(), DbError> {
    value.as_deref().map_or(Ok(()), check)
}

fn opt_opt<F: Fn(&str) -> Result<(), DbError>>(value: &Option<Option<String>>, check: F) -> Result<(), DbError> {
    value.as_ref().and_then(|v| v.as_deref()).map_or(Ok(()), check)
}

impl NewConnection {
    pub fn validate(&self) -> Result<(), DbError> {
        non_empty("provider_user_id", &self.provider_user_id)?;
        varchar("provider_user_id", &self.provider_user_id, 255)?;
        opt(&self.provider_user_email, |v| varchar("provider_user_email", v, 255))?;
        opt(&self.display_name, |v| nvarchar("display_name", v, 255))
    }
}

impl ConnectionPatch {
    pub fn validate(&self) -> Result<(), DbError> {
        opt_opt(&self.display_name, |v| nvarchar("display_name", v, 255))
    }
}

impl NewFolder {
    pub fn validate(&self) -> Result<(), DbError> {
        non_empty("folder_name", &self.folder_name)?;
        varchar("folder_name", &self.folder_name, 255)?;
        non_empty("provider_folder_id", &self.provider_folder_id)?;
        varchar("provider_folder_id", &self.provider_folder_id, 255)
    }
}

impl FolderPatch {
    pub fn validate(&self) -> Result<(), DbError> {
        if let Some(name) = &self.folder_name {
            non_empty("folder_name", name)?;
            varchar("folder_name", name, 255)?;
        }
        Ok(())
    }
}

impl NewCloudFile {
    pub fn validate(&self) -> Result<(), DbError> {
        non_empty("provider_file_id", &self.provider_file_id)?;
        varchar("provider_file_id", &self.provider_file_id, 255)?;
        non_empty("file_name", &self.file_name)?;
        nvarchar("file_name", &self.file_name, 255)?;
        opt(&self.content_hash, |v| varchar("content_hash", v, 64))?;
        opt(&self.mime_type, |v| varchar("mime_type", v, 255))
    }
}

impl SyncedFile {
    pub fn validate(&self) -> Result<(), DbError> {
        non_empty("provider_file_id", &self.provider_file_id)?;
        varchar("provider_file_id", &self.provider_file_id, 255)?;
        non_empty("file_name", &self.file_name)?;
        nvarchar("file_name", &self.file_name, 255)?;
        opt(&self.content_hash, |v| varchar("content_hash", v, 64))?;
        opt(&self.mime_type, |v| varchar("mime_type", v, 255))
    }
}

impl CloudFilePatch {
    pub fn validate(&self) -> Result<(), DbError> {
        if let Some(name) = &self.file_name {
            non_empty("file_name", name)?;
            nvarchar("file_name", name, 255)?;
        }
        opt_opt(&self.content_hash, |v| varchar("content_hash", v, 64))?;
        opt_opt(&self.mime_type, |v| varchar("mime_type", v, 255))
    }
}

impl NewSharedLink {
    pub fn validate(&self) -> Result<(), DbError> {
        opt(&self.provider_share_id, |v| varchar("provider_share_id", v, 255))?;
        non_empty("share_url", &self.share_url)
    }
}

impl NewSyncError {
    pub fn validate(&self) -> Result<(), DbError> {
        opt(&self.error_code, |v| varchar("error_code", v, 100))?;
        non_empty("error_message", &self.error_message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varchar_counts_bytes_and_nvarchar_counts_utf16_units() {
        assert!(varchar("f", &"a".repeat(255), 255).is_ok());
        assert!(varchar("f", &"a".repeat(256), 255).is_err());
        // 128 two-byte characters are 256 bytes.
        assert!(varchar("f", &"é".repeat(128), 255).is_err());
        assert!(nvarchar("f", &"é".repeat(255), 255).is_ok());
        // An astral character is two UTF-16 units.
        assert!(nvarchar("f", &"😀".repeat(128), 255).is_err());
    }

    #[test]
    fn timestamps_outside_years_1_to_9999_are_out_of_range() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.naive_utc()).ok();
        for inside in ["0001-01-01T00:00:00Z", "2026-11-27T04:30:00Z", "9999-12-31T23:59:59.999999Z"] {
            assert_eq!(at(inside).map(|t| timestamp_in_range(&t)), Some(true), "{inside}");
        }
        for outside in ["0000-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.9999995Z", "0001-01-01T00:00:00+00:01"] {
            assert_eq!(at(outside).map(|t| timestamp_in_range(&t)), Some(false), "{outside}");
        }
        let year_10000 = NaiveDate::from_ymd_opt(10_000, 1, 1).map(|d| d.and_time(NaiveTime::MIN));
        assert_eq!(year_10000.map(|t| timestamp_in_range(&t)), Some(false));
    }

    #[test]
    fn steps_binding_an_out_of_range_timestamp_are_refused_before_sql() {
        use crate::db::{Step, Stmt, Value};
        let year_0 = NaiveDate::from_ymd_opt(0, 6, 1).map(|d| d.and_time(NaiveTime::MIN));
        let ok = NaiveDate::from_ymd_opt(2026, 6, 1).map(|d| d.and_time(NaiveTime::MIN));
        let (Some(year_0), Some(ok)) = (year_0, ok) else { panic!("test dates") };
        let step = |t| Step::new(Stmt::ALL[0], vec![Value::I32(1), Value::Timestamp(t)]);

        let refused = step_timestamps(&[step(ok), step(year_0)]);
        let accepted = step_timestamps(&[step(ok)]);

        assert!(matches!(refused, Err(DbError::Validation { field: "timestamp", .. })), "{refused:?}");
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    #[test]
    fn errors_name_the_field() {
        let err = varchar("folder_name", &"x".repeat(300), 255).unwrap_err();
        assert!(matches!(err, DbError::Validation { field: "folder_name", .. }));
        assert_eq!(err.to_string(), "folder_name: must be at most 255 bytes");
    }
}
