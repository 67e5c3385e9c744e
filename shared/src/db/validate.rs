//! Column-size checks, done before SQL so an over-long value is a named 400, not a
//! truncation error (SQL Server) or silently stored (SQLite has no length types).
//!
//! VARCHAR(n) is counted in UTF-8 bytes: the SQL Server database uses a UTF-8 collation
//! (see migrations/README.md), where n is a byte count. NVARCHAR(n) is counted in UTF-16
//! code units, which is what SQL Server counts.

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
    fn errors_name_the_field() {
        let err = varchar("folder_name", &"x".repeat(300), 255).unwrap_err();
        assert!(matches!(err, DbError::Validation { field: "folder_name", .. }));
        assert_eq!(err.to_string(), "folder_name: must be at most 255 bytes");
    }
}
