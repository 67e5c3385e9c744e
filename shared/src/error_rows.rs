//! Error rows that are safe to keep and to show: every writer of `cloud_sync_errors` rows that
//! quotes a provider or a driver passes its text through here, so that no token, client
//! secret, password or bearer credential reaches a row (or the log line beside it), and every
//! code and message fits its column.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::db::{FileId, JobId, NewSyncError, Store};

/// A `cloud_sync_errors` row on its way to the store: scrubbed of the secrets it was made
/// with, and of any credential its text quotes, when it is written.
#[derive(Debug)]
pub struct ErrorRow {
    row: NewSyncError,
    secrets: Vec<SecretString>,
}

impl ErrorRow {
    /// `row` to be scrubbed of `secrets` (tokens, client secrets, passwords the caller handled).
    pub fn new(row: NewSyncError, secrets: Vec<SecretString>) -> ErrorRow {
        ErrorRow { row, secrets }
    }

    /// More values to cut out of the row.
    pub fn with_secrets(mut self, secrets: Vec<SecretString>) -> ErrorRow {
        self.secrets.extend(secrets);
        self
    }

    pub fn job(mut self, job: JobId) -> ErrorRow {
        self.row.sync_job_id = Some(job);
        self
    }

    pub fn file(mut self, file: FileId) -> ErrorRow {
        self.row.file_id = Some(file);
        self
    }

    /// Adds fields to the row's `error_metadata` (an object).
    pub fn metadata(mut self, extra: Value) -> ErrorRow {
        if let (Some(Value::Object(meta)), Value::Object(extra)) = (&mut self.row.error_metadata, extra) {
            meta.extend(extra);
        }
        self
    }

    /// The row as it will be written: scrubbed and clipped.
    pub fn build(self) -> NewSyncError {
        let values: Vec<&str> = self.secrets.iter().map(|s| s.expose_secret()).collect();
        scrub_error_row(self.row, &values)
    }

    /// Writes the row. A failure to write it must not hide the failure it reports, so that is
    /// logged (with its cause) instead; returns whether the row was written.
    pub async fn record(self, store: &Store) -> bool {
        let row = self.build();
        match store.create_error(&row).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(
                    error = %crate::error_chain(&e),
                    connection_id = %row.connection_id,
                    error_type = row.error_type.as_str(),
                    "could not record a provider failure"
                );
                false
            }
        }
    }
}

/// `cloud_sync_errors.error_code` is VARCHAR(100): a longer code would fail validation and
/// lose the whole row (and, where the row is written with a status change, the change too).
pub const MAX_ERROR_CODE_BYTES: usize = 100;
/// Error messages are clipped to this many bytes: enough for any provider's explanation, not
/// a whole HTML error page.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 2000;
/// What a removed secret or token value is replaced by.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not looked for: they would match ordinary words.
const MIN_SECRET_LEN: usize = 8;

/// Parameter and field names whose value is a credential, wherever a provider quotes them
/// (`access_token=...`, `"refresh_token": "..."`).
const SECRET_KEYS: &[&str] =
    &["access_token", "refresh_token", "id_token", "client_secret", "client_assertion", "code_verifier", "password"];

/// Makes provider or driver text fit for a `cloud_sync_errors` row (and a log line): every
/// `secrets` value (the tokens and client secret involved, at least 8 characters long), any
/// value of a credential parameter or field and any `Bearer` credential become
/// [`REDACTED`]; control characters become spaces; the result is clipped to `max_bytes` on a
/// character boundary.
pub fn scrub_error_text(text: &str, secrets: &[&str], max_bytes: usize) -> String {
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    for key in SECRET_KEYS {
        out = redact_values(&out, key, true);
    }
    out = redact_values(&out, "bearer", false);
    clip(out, max_bytes)
}

/// The row with its code and message scrubbed and clipped by [`scrub_error_text`] (code to
/// [`MAX_ERROR_CODE_BYTES`], message to [`MAX_ERROR_MESSAGE_BYTES`], stack trace too). Every
/// writer of error rows that quotes a provider or a driver passes its rows through this.
pub fn scrub_error_row(mut row: NewSyncError, secrets: &[&str]) -> NewSyncError {
    row.error_code =
        row.error_code.map(|c| scrub_error_text(&c, secrets, MAX_ERROR_CODE_BYTES)).filter(|c| !c.trim().is_empty());
    row.error_message = scrub_error_text(&row.error_message, secrets, MAX_ERROR_MESSAGE_BYTES);
    if row.error_message.trim().is_empty() {
        row.error_message = "(no message)".to_owned();
    }
    row.stack_trace = row.stack_trace.map(|s| scrub_error_text(&s, secrets, MAX_ERROR_MESSAGE_BYTES));
    row
}

/// Replaces the value after each case-insensitive occurrence of `key`: `key=v`, `key: v`,
/// `"key":"v"` when `separated`, else `key v` (a `Bearer` credential).
fn redact_values(text: &str, key: &str, separated: bool) -> String {
    // ASCII lowercasing keeps every byte offset, so offsets found in `lower` hold in `text`.
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let (mut out, mut copied, mut from) = (String::with_capacity(text.len()), 0, 0);
    while let Some(found) = lower[from..].find(key) {
        let start = from + found;
        let mut i = start + key.len();
        from = i;
        // A key inside a longer word (`my_password_hint`) is not a key.
        let bounded = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if !bounded || (i < bytes.len() && bytes[i].is_ascii_alphanumeric()) {
            continue;
        }
        if separated {
            if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
                i += 1;
            }
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i >= bytes.len() || !matches!(bytes[i], b'=' | b':') {
                continue;
            }
            i += 1;
        } else if i >= bytes.len() || bytes[i] != b' ' {
            continue;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
            i += 1;
        }
        let value = i;
        while i < bytes.len() && !matches!(bytes[i], b'&' | b'"' | b'\'' | b',' | b';' | b'}' | b')' | b']' | b' ') {
            i += 1;
        }
        if i > value && &text[value..i] != REDACTED {
            out.push_str(&text[copied..value]);
            out.push_str(REDACTED);
            copied = i;
        }
        from = i;
    }
    out.push_str(&text[copied..]);
    out
}

fn clip(mut s: String, max_bytes: usize) -> String {
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_given_secrets_credential_values_and_bearer_tokens() {
        // Arrange
        let text = "invalid_grant: refresh_token=rt-secret-value&client_secret=cs-123456789 \
                    {\"access_token\": \"at-quoted\", \"id_token\":\"idt\"} Authorization: Bearer eyJhbGciOi.x.y \
                    echoed rt-rotated-9999 and short abc; password_hint stays\nnext line";

        // Act
        let out = scrub_error_text(text, &["rt-rotated-9999", "abc"], 1000);

        // Assert
        for secret in ["rt-secret-value", "cs-123456789", "at-quoted", "idt\"", "eyJhbGciOi", "rt-rotated-9999"] {
            assert!(!out.contains(secret), "{secret} left in {out}");
        }
        assert!(out.starts_with("invalid_grant: refresh_token=[redacted]&client_secret=[redacted] "), "{out}");
        assert!(out.contains("\"access_token\": \"[redacted]\""), "{out}");
        assert!(out.contains("Bearer [redacted]"), "{out}");
        assert!(out.contains("short abc;"), "secrets under 8 characters are not looked for: {out}");
        assert!(out.contains("password_hint stays"), "{out}");
        assert!(out.contains("stays next line"), "control characters become spaces: {out}");
    }

    #[test]
    fn rows_get_codes_of_at_most_100_bytes_and_bounded_messages() {
        // Arrange
        let row = NewSyncError {
            tenant_id: uuid::Uuid::nil().into(),
            sync_job_id: None,
            connection_id: crate::db::ConnectionId(uuid::Uuid::nil()),
            file_id: None,
            error_type: crate::db::ErrorType::Api,
            error_code: Some("é".repeat(80)),
            error_message: format!("{} refresh_token=rt-0123456789", "x".repeat(5000)),
            stack_trace: None,
            error_metadata: None,
        };
        let blank = NewSyncError { error_code: Some(" ".into()), error_message: "\n".into(), ..row.clone() };

        // Act
        let scrubbed = scrub_error_row(row, &[]);
        let blank = scrub_error_row(blank, &[]);

        // Assert
        let code = scrubbed.error_code.as_deref().unwrap();
        assert_eq!(code.len(), 100, "clipped on a character boundary");
        assert_eq!(code, "é".repeat(50));
        assert_eq!(scrubbed.error_message.len(), MAX_ERROR_MESSAGE_BYTES);
        assert!(scrubbed.validate().is_ok());
        assert_eq!(blank.error_code, None);
        assert_eq!(blank.error_message, "(no message)");
        assert!(blank.validate().is_ok());
    }

    #[test]
    fn a_message_with_a_credential_near_the_end_keeps_it_out_after_clipping() {
        // Arrange
        let text = format!("{}access_token=at-abcdefgh", "y".repeat(90));

        // Act
        let out = scrub_error_text(&text, &[], 100);

        // Assert
        assert!(!out.contains("at-abc"), "{out}");
        assert!(out.len() <= 100);
    }
}
