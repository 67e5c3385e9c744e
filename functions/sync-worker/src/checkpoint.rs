//! Where a run is, kept in the job's metadata (`job_metadata.checkpoint`) at every heartbeat,
//! so that the next invocation (after a timeout, a throttle, a crash) goes on from there. Every
//! step from a checkpoint is idempotent: files are upserted by provider id, deletions are
//! marks applied at the end, and the stored cursor only moves when the run completes.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The key of the checkpoint in `job_metadata`; the job's other keys (an import's `file_ids`)
/// are the client's and stay as they are. The API neither takes nor shows it.
pub const KEY: &str = shared::db::JOB_CHECKPOINT_KEY;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub stage: Stage,
    /// How the provider is being read (absent before the first step).
    pub listing: Option<Listing>,
    /// The synced subtree's folders: provider id → path under the synced folder (`""` is the
    /// folder itself). Feeds that name parents by id place items with it.
    pub folders: BTreeMap<String, String>,
    /// Dropbox: the synced folder's `path_lower`, which its change feed's paths start with.
    pub root_path_lower: Option<String>,
    /// The folder's live files when the job started (the mass-delete guard's base).
    pub tracked_at_start: u64,
    /// Files the listing saw (a crawl that sees none while files are tracked deletes nothing).
    pub files_seen: u64,
    /// The cursor to keep once the run completes.
    pub cursor_to_keep: Option<String>,
    /// The downloads go in index order; this is the last one done.
    pub download_after: i64,
    pub files_total: i32,
    pub files_processed: i32,
    pub bytes_transferred: i64,
    /// The push goes through the folder's files in index order; this is the last one looked at.
    #[serde(default)]
    pub push_after: i64,
    /// Files whose Quodsi copy is gone (deleted in Quodsi): deleted at the provider once the
    /// push has looked at every file, behind the mass-delete guard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quodsi_deleted: Vec<shared::db::FileId>,
    /// An export goes through the objects its metadata names; this is the next one.
    #[serde(default)]
    pub export_next: usize,
    /// The upload in progress, to go on with in the next invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
}

/// An upload under way: which file, where to, and the provider's session with what it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// What is being sent: `file:{id}` (a `cloud_files` row's Quodsi copy) or
    /// `export:{index}` (an object an export job names).
    pub subject: String,
    /// A new version of the row's provider file (`None`), or a new file of this name in
    /// `parent_id` (a conflict copy, or a file deleted at the provider that changed here).
    pub new_name: Option<String>,
    pub parent_id: Option<String>,
    pub size: u64,
    /// The entity tag of Quodsi's copy when the upload began: a part of another version is
    /// never sent.
    pub e_tag: Option<String>,
    /// The provider's session, encrypted by the vault (`TokenKind::UploadSession`) and
    /// base64-encoded: Graph's and Drive's are pre-authenticated URLs.
    pub session: String,
    /// The first byte the provider had not acknowledged at the last checkpoint.
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Listing,
    Downloading,
    /// Sending Quodsi's changed copies to the provider (upload and bidirectional jobs).
    Pushing,
    Finishing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Listing {
    /// A full listing: the folders still to list (provider id, path), the page of the first
    /// one, and the cursor taken before the listing began, kept when it ends.
    Crawl { start_cursor: Option<String>, queue: VecDeque<(String, String)>, page: Option<String> },
    /// The changes since the stored cursor; `next` is where the next page starts.
    Changes { next: String },
}

impl Checkpoint {
    /// The checkpoint in a job's metadata, if a run left one.
    pub fn from_metadata(metadata: Option<&serde_json::Value>) -> Option<Checkpoint> {
        let value = metadata?.get(KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// The job's metadata with this checkpoint in it.
    pub fn into_metadata(&self, metadata: Option<&serde_json::Value>) -> serde_json::Value {
        let mut object = match metadata {
            Some(serde_json::Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        object.insert(KEY.to_owned(), serde_json::to_value(self).expect("a checkpoint always serialises"));
        serde_json::Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_through_metadata_beside_the_clients_keys() {
        // Arrange
        let client = serde_json::json!({"file_ids": ["id:1"], "trigger": "manual"});
        let checkpoint = Checkpoint {
            stage: Stage::Downloading,
            listing: Some(Listing::Crawl {
                start_cursor: Some("c1".into()),
                queue: VecDeque::from([("f1".to_owned(), "Scenarios".to_owned())]),
                page: Some("p2".into()),
            }),
            folders: BTreeMap::from([("root".to_owned(), String::new())]),
            download_after: 42,
            files_total: 3,
            ..Checkpoint::default()
        };

        // Act
        let metadata = checkpoint.into_metadata(Some(&client));
        let back = Checkpoint::from_metadata(Some(&metadata));

        // Assert
        assert_eq!(back, Some(checkpoint));
        assert_eq!(metadata["file_ids"], client["file_ids"]);
        assert_eq!(Checkpoint::from_metadata(Some(&client)), None);
    }
}
