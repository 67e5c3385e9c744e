//! What the folder picker reads from and writes to a provider, in one vocabulary for all of
//! them: a folder's children page by page (the drive's root when no folder is named), one
//! item, a new folder, and for SharePoint the sites and their document libraries.
//!
//! Each provider maps its own API onto these:
//! - Microsoft Graph: `/children` (`root/children` for the root), `GET` of a driveItem,
//!   `POST …/children` with `conflictBehavior: fail` (a 409 `nameAlreadyExists` is followed by
//!   a path-addressed `GET` of the existing item), `sites?search=` and `sites/{id}/drives`. An
//!   item of a library other than the connection's own carries its drive: `{drive-id}:{item-id}`
//!   (see `microsoft.rs`), so every later call addresses the right library.
//! - Google Drive: `files.list` with `'<id>' in parents` (`root` is the alias of My Drive),
//!   `files.get`, `files.create` with the folder MIME type. Drive allows two folders of one
//!   name in one parent, so the name is looked up first and an existing folder is answered.
//! - Dropbox: `list_folder` (`""` is the root), `get_metadata`, `create_folder_v2`; a 409
//!   `path/conflict` is followed by `get_metadata` of the path for the existing id.
//! - Box: `/folders/{id}/items` (`0` is the root), `GET /folders/{id}` (then `/files/{id}`, to
//!   tell "a file" from "nothing"), `POST /folders`; a 409 `item_name_in_use` names the
//!   existing item in `context_info.conflicts`.

use super::RemoteItem;
use crate::db::ProviderType;

/// An item as the picker shows it: the provider's item and, where it can be told, its path
/// from the drive's root (`/Models/2026`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub item: RemoteItem,
    pub path: Option<String>,
}

/// One page of a folder's children.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPage {
    pub entries: Vec<Entry>,
    /// Where the next page starts (the provider's own token or link), `None` after the last.
    pub next: Option<String>,
}

/// The answer to a folder creation.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Boxed: an entry is large beside an id, and the answer is moved around whole.
    Folder(Box<Entry>),
    /// An item of that name is already in the parent: its id.
    Exists { id: String },
}

/// A SharePoint site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub web_url: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePage {
    pub sites: Vec<Site>,
    pub next: Option<String>,
}

/// A document library (a Graph drive) of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub id: String,
    pub name: String,
    pub drive_type: Option<String>,
    pub web_url: Option<String>,
    /// The id to browse the library's root with (`parent_id`).
    pub root_id: String,
}

/// The longest name accepted for a new folder, in characters: every provider's limit is at
/// least this, and `cloud_folders.folder_name` holds 255 bytes.
pub const MAX_NAME_CHARS: usize = 255;

/// Names OneDrive and SharePoint refuse whole, compared without case (Microsoft support,
/// "Restrictions and limitations in OneDrive and SharePoint": invalid file or folder names).
const MICROSOFT_RESERVED: &[&str] = &[
    ".lock",
    "con",
    "prn",
    "aux",
    "nul",
    "com0",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt0",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
    "desktop.ini",
];

/// Whether `name` can be a new folder's name at `provider`, and if not, why (a sentence for the
/// 400 naming `name`). Checked before any provider call.
///
/// - every provider: not empty, at most [`MAX_NAME_CHARS`], no control characters, not `.` or
///   `..`, no `/` (it would be read as a path everywhere but Drive, which stores it literally
///   and confuses every client that shows paths);
/// - OneDrive and SharePoint: none of `" * : < > ? / \ |`, no leading or trailing space, not a
///   reserved name, no `_vti_`, not starting with `~$`;
/// - Dropbox: none of `/ \ < > : " | ? *`, no trailing space or period, nothing outside the
///   Basic Multilingual Plane (emoji), as its naming guide lists;
/// - Box: no `/` or `\`, no non-printable ASCII, no trailing space (developer.box.com, folder
///   name restrictions).
pub fn check_name(provider: ProviderType, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if name == "." || name == ".." {
        return Err("must not be `.` or `..`".into());
    }
    if name.trim().is_empty() {
        return Err("must not be blank".into());
    }
    let refused = |chars: &str| name.chars().find(|c| chars.contains(*c));
    match provider {
        ProviderType::OneDrive | ProviderType::SharePoint => {
            if let Some(c) = refused("\"*:<>?/\\|") {
                return Err(format!("{provider} does not allow `{c}` in a name"));
            }
            if name.starts_with(' ') || name.ends_with(' ') {
                return Err(format!("{provider} does not allow a name to start or end with a space"));
            }
            let lower = name.to_lowercase();
            if MICROSOFT_RESERVED.contains(&lower.as_str()) {
                return Err(format!("`{name}` is a name {provider} reserves"));
            }
            if lower.contains("_vti_") {
                return Err(format!("{provider} does not allow `_vti_` in a name"));
            }
            if name.starts_with("~$") {
                return Err(format!("{provider} does not allow a name to start with `~$`"));
            }
        }
        ProviderType::Dropbox => {
            if let Some(c) = refused("/\\<>:\"|?*") {
                return Err(format!("Dropbox does not allow `{c}` in a name"));
            }
            if name.ends_with(' ') || name.ends_with('.') {
                return Err("Dropbox does not allow a name to end with a space or a period".into());
            }
            if name.chars().any(|c| u32::from(c) > 0xFFFF) {
                return Err(
                    "Dropbox does not allow emoji or other characters outside the Basic Multilingual Plane".into()
                );
            }
        }
        ProviderType::Box => {
            if let Some(c) = refused("/\\") {
                return Err(format!("Box does not allow `{c}` in a name"));
            }
            if name.ends_with(' ') {
                return Err("Box does not allow a name to end with a space".into());
            }
        }
        ProviderType::GDrive => {
            if name.contains('/') {
                return Err("a folder name must not contain `/`".into());
            }
        }
    }
    Ok(())
}

/// `parent/name` for a child's path, from its parent's path (`/` for the root).
pub fn child_path(parent: &str, name: &str) -> String {
    if parent.ends_with('/') { format!("{parent}{name}") } else { format!("{parent}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_each_providers_rules() {
        let ok = |p, n: &str| check_name(p, n).is_ok();
        for p in [
            ProviderType::OneDrive,
            ProviderType::SharePoint,
            ProviderType::GDrive,
            ProviderType::Dropbox,
            ProviderType::Box,
        ] {
            assert!(ok(p, "Quodsi Models 2026"), "{p}");
            assert!(!ok(p, ""), "{p}");
            assert!(!ok(p, ".."), "{p}");
            assert!(!ok(p, "a/b"), "{p}");
            assert!(!ok(p, "tab\there"), "{p}");
            assert!(!ok(p, &"x".repeat(256)), "{p}");
            assert!(ok(p, &"é".repeat(255)), "{p}");
        }
        assert!(!ok(ProviderType::OneDrive, "what?"));
        assert!(!ok(ProviderType::SharePoint, "a|b"));
        assert!(!ok(ProviderType::OneDrive, " lead"));
        assert!(!ok(ProviderType::OneDrive, "CON"));
        assert!(!ok(ProviderType::SharePoint, "x_vti_y"));
        assert!(!ok(ProviderType::OneDrive, "~$draft"));
        assert!(ok(ProviderType::GDrive, "what?"));
        assert!(ok(ProviderType::Box, "what?"));
        assert!(!ok(ProviderType::Dropbox, "what?"));
        assert!(!ok(ProviderType::Dropbox, "trailing."));
        assert!(!ok(ProviderType::Dropbox, "models 📈"));
        assert!(ok(ProviderType::OneDrive, "models 📈"));
        assert!(!ok(ProviderType::Box, "back\\slash"));
        assert!(!ok(ProviderType::Box, "trailing "));
        let why = check_name(ProviderType::OneDrive, "a:b").unwrap_err();
        assert_eq!(why, "onedrive does not allow `:` in a name");
    }

    #[test]
    fn child_paths_join_once() {
        assert_eq!(child_path("/", "Models"), "/Models");
        assert_eq!(child_path("/Models", "2026"), "/Models/2026");
    }
}
