//! Where an item a provider reports sits relative to the synced folder. Change feeds of Graph
//! (Business, SharePoint), Drive and Box cover the whole account and name an item's parent by
//! id: an item belongs to the folder when its parent is one of the subtree's known folders.
//! Dropbox's feed is already scoped to the folder and names items by path instead.

use shared::providers::RemoteItem;

use crate::checkpoint::Checkpoint;

/// An item's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The synced folder itself.
    Root,
    /// Inside the synced folder, at this path under it (`Scenarios/line-2.qsim`).
    Inside(String),
    /// Outside the synced folder (or nowhere this run can tell).
    Outside,
}

/// `parent/name`, or `name` under the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") }
}

/// The place of `item` given what the run knows of the subtree.
pub fn place(item: &RemoteItem, synced_folder_id: &str, checkpoint: &Checkpoint) -> Place {
    if item.id == synced_folder_id {
        return Place::Root;
    }
    if let Some(parent) = &item.parent_id {
        return match checkpoint.folders.get(parent) {
            Some(path) => Place::Inside(join(path, &item.name)),
            None => Place::Outside,
        };
    }
    match (&checkpoint.root_path_lower, &item.path_lower) {
        (Some(root), Some(lower)) => {
            if lower == root {
                return Place::Root;
            }
            match relative_path(lower, root) {
                Some(relative_lower) => {
                    let depth = relative_lower.split('/').count();
                    Place::Inside(display_tail(item, depth).unwrap_or_else(|| relative_lower.to_owned()))
                }
                None => Place::Outside,
            }
        }
        _ => Place::Outside,
    }
}

/// `path_lower` under `root` (both lower-cased, absolute), without the leading slash.
pub fn relative_path<'a>(path_lower: &'a str, root: &str) -> Option<&'a str> {
    let rest = path_lower.strip_prefix(root)?.strip_prefix('/')?;
    (!rest.is_empty()).then_some(rest)
}

/// The last `depth` components of the item's display path: the relative path with the
/// provider's letter case (lower-casing may change byte lengths, so the display path is not
/// cut at the lower path's offsets).
fn display_tail(item: &RemoteItem, depth: usize) -> Option<String> {
    let display = item.path_display.as_deref()?;
    let parts: Vec<&str> = display.split('/').filter(|p| !p.is_empty()).collect();
    (parts.len() >= depth).then(|| parts[parts.len() - depth..].join("/"))
}

/// The Dropbox root learned from a child listed directly under it: its path less the name.
pub fn parent_path_lower(item: &RemoteItem) -> Option<String> {
    let lower = item.path_lower.as_deref()?;
    let (parent, _) = lower.rsplit_once('/')?;
    Some(parent.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::providers::ItemKind;
    use std::collections::BTreeMap;

    fn item(id: &str, name: &str, parent: Option<&str>, lower: Option<&str>, display: Option<&str>) -> RemoteItem {
        RemoteItem {
            id: id.into(),
            name: name.into(),
            kind: ItemKind::File,
            parent_id: parent.map(Into::into),
            path_lower: lower.map(Into::into),
            path_display: display.map(Into::into),
            size: Some(1),
            hash: None,
            revision: None,
            mime_type: None,
            created_at: None,
            modified_at: None,
            downloadable: true,
        }
    }

    #[test]
    fn items_are_placed_by_known_parent_or_by_path_under_the_root() {
        // Arrange
        let checkpoint = Checkpoint {
            folders: BTreeMap::from([("root".to_owned(), String::new()), ("sc".to_owned(), "Scenarios".to_owned())]),
            root_path_lower: Some("/quodsi/models".into()),
            ..Checkpoint::default()
        };

        // Act
        let by_parent = place(&item("f1", "line-2.qsim", Some("sc"), None, None), "root", &checkpoint);
        let at_root = place(&item("f2", "a.qsim", Some("root"), None, None), "root", &checkpoint);
        let elsewhere = place(&item("f3", "x", Some("other"), None, None), "root", &checkpoint);
        let by_path = place(
            &item(
                "id:9",
                "Öl.qsim",
                None,
                Some("/quodsi/models/scenarios/öl.qsim"),
                Some("/Quodsi/Models/Scenarios/Öl.qsim"),
            ),
            "root",
            &checkpoint,
        );
        let lookalike = place(
            &item("id:8", "x", None, Some("/quodsi/models-old/x"), Some("/Quodsi/Models-old/x")),
            "root",
            &checkpoint,
        );
        let root = place(&item("root", "Models", None, None, None), "root", &checkpoint);

        // Assert
        assert_eq!(by_parent, Place::Inside("Scenarios/line-2.qsim".into()));
        assert_eq!(at_root, Place::Inside("a.qsim".into()));
        assert_eq!(elsewhere, Place::Outside);
        assert_eq!(by_path, Place::Inside("Scenarios/Öl.qsim".into()), "the display case is kept");
        assert_eq!(lookalike, Place::Outside, "a sibling whose name starts like the folder is outside");
        assert_eq!(root, Place::Root);
    }
}
