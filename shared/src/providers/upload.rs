//! What the sync worker writes to a provider, in one vocabulary for all of them (research note
//! §3): a small file in one request, a large one through a resumable session part by part, a
//! new file that never replaces another of its name, and a new version that is written only if
//! the provider's copy is still the one the last sync saw.
//!
//! - Microsoft Graph: `PUT …/content` up to 4 MiB (`conflictBehavior=fail` for a new file,
//!   `If-Match` with the base `eTag` for a new version); above, `createUploadSession` (the same
//!   conditions) and fragments of a multiple of 320 KiB `PUT` to the pre-authenticated
//!   `uploadUrl` without the bearer token; `GET uploadUrl` tells where to resume, a 404 that the
//!   session is gone.
//!
//! - Dropbox: `files/upload` up to one part; above, `upload_session/start`, `append_v2` (each
//!   with the part's `content_hash`; a wrong offset is answered with the right one, which is
//!   how a session resumes) and `finish`. The commit is by path: `add` for a new file,
//!   `update` with the base `rev` for a new version, never renaming, with `strict_conflict`.
//!
//! A conditional write that finds the provider's copy changed, or a new file's name taken, is
//! [`ProviderError::Conflict`]: nothing was written, and the worker keeps both versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RemoteItem;

/// Where an upload goes.
#[derive(Debug, Clone, Copy)]
pub struct UploadTarget<'a> {
    /// The provider's id of the folder a new file goes into.
    pub parent_id: &'a str,
    /// That folder's path from the drive root (`/Quodsi Models/Scenarios`), for providers that
    /// address by path (Dropbox).
    pub parent_path: Option<&'a str>,
    /// The name of a new file (a new version keeps the file's own name).
    pub name: &'a str,
    /// A new version of this file instead of a new file.
    pub replace: Option<Replace<'a>>,
    /// The whole file's size in bytes.
    pub size: u64,
}

/// The file a new version replaces, and what the last sync knew of it: the write is made only
/// if the provider's copy is still that one.
#[derive(Debug, Clone, Copy)]
pub struct Replace<'a> {
    pub id: &'a str,
    /// Graph `eTag`, Drive `headRevisionId`, Dropbox `rev`, Box `etag`.
    pub revision: Option<&'a str>,
    /// The provider's hash of the base, lowercase hex.
    pub hash: Option<&'a str>,
    /// Its path from the drive root, for providers that write by path (Dropbox's `path_lower`).
    pub path: Option<&'a str>,
}

/// The whole file's digest, for providers that check it when a session is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeFile {
    /// The provider's own hash (`content_hash::HashAlg::for_provider`), lowercase hex.
    pub hash: String,
}

/// A provider's resumable upload session, kept (encrypted) in the job's checkpoint so the next
/// invocation goes on with it. Its `handle` is a credential for Graph and Drive (a
/// pre-authenticated URL): never logged, shown or stored in the clear.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadSession {
    /// Graph `uploadUrl`, Drive's session URI, Dropbox's `session_id`, Box's session id.
    pub handle: String,
    /// The part size the provider set (Box); `None` where the uploader chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The parts sent so far, as a provider that commits a list of parts needs them (Box).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Value>,
}

impl std::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSession")
            .field("handle", &"[redacted]")
            .field("part_size", &self.part_size)
            .field("expires_at", &self.expires_at)
            .field("parts", &self.parts.len())
            .finish()
    }
}

/// What sending one part did.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// The provider expects the part that starts here next.
    Next(u64),
    /// That was the last part: the file as the provider now has it.
    Done(Box<RemoteItem>),
}

/// How a provider takes bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRules {
    /// The largest file sent in one request.
    pub simple_max: u64,
    /// The smallest file a session takes (Box: 20 MB); smaller ones go in one request.
    pub session_min: u64,
    /// Every part but the last is a multiple of this (Graph 320 KiB, Drive 256 KiB).
    pub part_multiple: u64,
    /// The largest part the provider takes in one request.
    pub part_max: u64,
}

impl UploadRules {
    /// A provider that does not upload.
    pub const NONE: UploadRules = UploadRules { simple_max: 0, session_min: 0, part_multiple: 1, part_max: 0 };

    /// The part size to send: `wanted` rounded down to the provider's multiple, within its
    /// maximum, at least one multiple; a session's own part size (Box) wins.
    pub fn part_size(&self, wanted: u64, session: Option<&UploadSession>) -> u64 {
        if let Some(size) = session.and_then(|s| s.part_size) {
            return size;
        }
        let multiple = self.part_multiple.max(1);
        let capped = wanted.min(self.part_max.max(multiple));
        (capped / multiple).max(1) * multiple
    }

    /// Whether a file of `size` bytes goes through a session rather than one request: above
    /// the provider's single-request limit or above one part (so memory stays bounded by a
    /// part), unless the provider refuses sessions that small.
    pub fn needs_session(&self, size: u64, part: u64) -> bool {
        size >= self.session_min && size > self.simple_max.min(part)
    }
}

/// The name of Quodsi's version of a file kept beside a changed provider copy:
/// `name (Quodsi conflict YYYY-MM-DD HHMM).ext` (UTC), the stem cut so the whole stays within
/// `max_chars` characters.
pub fn conflict_name(name: &str, at: DateTime<Utc>, max_chars: usize) -> String {
    let (stem, ext) = match name.rfind('.') {
        // A leading dot names a hidden file, not an extension.
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let mark = format!(" (Quodsi conflict {})", at.format("%Y-%m-%d %H%M"));
    let room = max_chars.saturating_sub(mark.chars().count() + ext.chars().count());
    let stem: String = stem.chars().take(room).collect();
    format!("{}{mark}{ext}", stem.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn conflict_names_keep_the_extension_and_fit() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 16, 30, 59).unwrap();
        assert_eq!(conflict_name("model.qsim", at, 255), "model (Quodsi conflict 2026-12-06 1630).qsim");
        assert_eq!(conflict_name("README", at, 255), "README (Quodsi conflict 2026-12-06 1630)");
        assert_eq!(conflict_name(".env", at, 255), ".env (Quodsi conflict 2026-12-06 1630)");
        assert_eq!(conflict_name("a.tar.gz", at, 255), "a.tar (Quodsi conflict 2026-12-06 1630).gz");
        let long = format!("{}.qsim", "é".repeat(300));
        let cut = conflict_name(&long, at, 255);
        assert_eq!(cut.chars().count(), 255);
        assert!(cut.ends_with(" (Quodsi conflict 2026-12-06 1630).qsim"), "{cut}");
    }

    #[test]
    fn parts_follow_the_providers_multiples_and_sessions_start_above_one_part() {
        let graph =
            UploadRules { simple_max: 4 << 20, session_min: 0, part_multiple: 327_680, part_max: (60 << 20) - 1 };
        assert_eq!(graph.part_size(10 << 20, None), 10_485_760);
        assert_eq!(graph.part_size(1_000_000, None), 983_040, "rounded down to 3 x 320 KiB");
        assert_eq!(graph.part_size(1, None), 327_680, "at least one multiple");
        assert_eq!(graph.part_size(100 << 20, None), 62_586_880, "191 x 320 KiB: under 60 MiB");
        assert!(!graph.needs_session(4 << 20, 10 << 20));
        assert!(graph.needs_session((4 << 20) + 1, 10 << 20));
        assert!(graph.needs_session(400_000, 327_680), "above one part");
        let boxcom = UploadRules { simple_max: 50_000_000, session_min: 20_000_000, part_multiple: 1, part_max: 0 };
        assert!(!boxcom.needs_session(19_999_999, 8 << 20), "Box refuses sessions under 20 MB");
        assert!(boxcom.needs_session(20_000_000, 8 << 20));
        let session = UploadSession { handle: "s".into(), part_size: Some(8_388_608), expires_at: None, parts: vec![] };
        assert_eq!(boxcom.part_size(1 << 20, Some(&session)), 8_388_608);
        assert!(!format!("{session:?}").contains("\"s\""), "the handle is never printed");
    }
}
