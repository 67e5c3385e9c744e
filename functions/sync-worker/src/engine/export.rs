//! Export jobs: the Quodsi objects `job_metadata.objects` names (`{"key": …, "name": …}`, keys
//! relative to the tenant's prefix, checked when the job was created) go into the folder at
//! the provider, under their names, and become tracked files of the folder.
//!
//! A name the folder already tracks, unchanged at the provider, gets a new version on the
//! base revision (a re-export); one changed there, or a name taken by a file the folder does
//! not track yet, keeps the provider's file and puts the export beside it under a conflict name,
//! with an error row. Nothing at the provider is overwritten. Each exported object is also
//! copied into the folder's own prefix, so Quodsi's copy of the new file is where the folder's
//! other copies are.

use std::collections::HashMap;

use shared::db::{CloudFileFilter, PageRequest, QuodsiFileType};
use shared::objects::ObjectMeta;
use shared::providers::browse::check_name;
use shared::providers::upload::conflict_name;

use super::push::{Destination, MAX_NAME_CHARS, Pushed};
use super::*;

/// One object an export names.
#[derive(Debug, Clone)]
struct Named {
    key: String,
    name: Option<String>,
}

/// The objects of an export job's metadata, in order.
fn named_objects(metadata: Option<&Value>) -> Vec<Named> {
    metadata
        .and_then(|m| m.get("objects"))
        .and_then(Value::as_array)
        .map(|objects| {
            objects
                .iter()
                .map(|o| Named {
                    key: o.get("key").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    name: o.get("name").and_then(Value::as_str).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an export job's metadata names any object.
pub(super) fn names_objects(metadata: Option<&Value>) -> bool {
    !named_objects(metadata).is_empty()
}

impl Run<'_> {
    /// Exports the next named object; the stage ends after the last.
    pub(super) async fn export_next(&mut self) -> Result<(), Stop> {
        let objects = named_objects(self.job().job_metadata.as_ref());
        let Some(named) = objects.get(self.checkpoint.export_next).cloned() else {
            self.checkpoint.stage = Stage::Finishing;
            return Ok(());
        };
        self.checkpoint.files_total = objects.len().try_into().unwrap_or(i32::MAX);
        let index = self.checkpoint.export_next;
        self.export(index, &named).await?;
        self.checkpoint.upload = None;
        self.checkpoint.export_next += 1;
        self.checkpoint.files_processed = self.checkpoint.export_next.try_into().unwrap_or(i32::MAX);
        Ok(())
    }

    async fn export(&mut self, index: usize, named: &Named) -> Result<(), Stop> {
        let tenant = self.job().base.tenant_id;
        let name = named.name.clone().unwrap_or_else(|| named.key.rsplit('/').next().unwrap_or_default().to_owned());
        let key = match ObjectKey::of_tenant(tenant, &named.key) {
            Ok(key) => key,
            Err(e) => {
                return self.export_failed(&named.key, "invalid_object_key", &format!("cannot be exported: {e}")).await;
            }
        };
        if let Err(why) = check_name(self.connection.provider_type, &name) {
            return self
                .export_failed(&named.key, "invalid_name", &format!("cannot be exported as `{name}`: {why}"))
                .await;
        }
        let Some(copy) = self.head(&key).await? else {
            return self.export_failed(&named.key, "object_not_found", "is no longer in Quodsi's store").await;
        };
        let subject = format!("export:{index}");
        let here = Destination {
            new_name: Some(name.clone()),
            parent_id: Some(self.folder.provider_folder_id.clone()),
            parent_path: self.folder.folder_path.clone(),
        };
        let tracked = self.tracked(&name).await?;
        let pushed = match &tracked {
            Some(row) if row.sync_status == SyncStatus::Synced => {
                self.upload(&subject, Some(row), &key, &copy, &Destination::default()).await?
            }
            Some(_) => Pushed::Conflict("the folder's file of that name changed since the last sync".to_owned()),
            None => self.upload(&subject, None, &key, &copy, &here).await?,
        };
        match pushed {
            Pushed::Done { item, hash } => self.exported(&key, &copy, &item, hash).await,
            Pushed::Conflict(why) => {
                let beside =
                    Destination { new_name: Some(conflict_name(&name, self.app.store.now(), MAX_NAME_CHARS)), ..here };
                match self.upload(&format!("{subject}:beside"), None, &key, &copy, &beside).await? {
                    Pushed::Done { item, hash } => {
                        self.exported(&key, &copy, &item, hash).await?;
                        let message = format!(
                            "{}: the folder's `{name}` changed at the provider or is not synced yet ({why}); the export \
                             was put beside it as `{}`",
                            named.key, item.name
                        );
                        self.record_file_error(None, ErrorType::Validation, Some("conflict"), &message).await;
                        Ok(())
                    }
                    other => self.export_outcome(&named.key, other).await,
                }
            }
            other => self.export_outcome(&named.key, other).await,
        }
    }

    /// Records an exported file: Quodsi's copy under the folder's prefix and the row, synced.
    async fn exported(
        &mut self,
        key: &ObjectKey,
        copy: &ObjectMeta,
        item: &RemoteItem,
        hash: String,
    ) -> Result<(), Stop> {
        if item.hash.as_ref().is_some_and(|h| *h != hash) {
            let why = format!(
                "the provider holds {} for the exported bytes, which hash to {hash}: not marked synced",
                item.hash.as_deref().unwrap_or_default()
            );
            return self.export_failed(key.as_str(), "hash_mismatch", &why).await;
        }
        let tenant = self.job().base.tenant_id;
        let target = match self.key_of(&item.name) {
            Ok(target) => target,
            Err(e) => return self.export_failed(key.as_str(), "unstorable_path", &e.to_string()).await,
        };
        let stored = match self.objects.copy(key, &target).await {
            Ok(()) => self.head(&target).await?,
            Err(e) => {
                tracing::warn!(job_id = %self.job().base.id, error = %shared::error_chain(&e), "copying an export into its folder failed; the next sync downloads it");
                None
            }
        };
        let mut metadata = serde_json::Map::new();
        metadata.insert("revision".into(), json!(item.revision));
        metadata.insert("hash_alg".into(), json!(self.hash_alg.name()));
        metadata.insert("downloadable".into(), json!(true));
        if let Some(parent) = &item.parent_id {
            metadata.insert("parent_id".into(), json!(parent));
        }
        if let Some(lower) = item.path_lower.clone().or_else(|| item.path_display.as_ref().map(|p| p.to_lowercase())) {
            metadata.insert("path_lower".into(), json!(lower));
        }
        if let Some(stored) = &stored {
            metadata.insert("object_key".into(), json!(target.as_str()));
            metadata.insert("object_etag".into(), json!(stored.e_tag));
        }
        let row = SyncedFile {
            tenant_id: tenant,
            folder_id: self.folder.base.id,
            quodsi_file_type: QuodsiFileType::Export,
            provider_file_id: item.id.clone(),
            file_name: item.name.clone(),
            file_path: Some(item.name.clone()),
            file_size_bytes: copy.size as i64,
            content_hash: Some(hash),
            mime_type: item.mime_type.clone(),
            cloud_created_at: item.created_at,
            cloud_modified_at: item.modified_at,
            // Without Quodsi's copy in the folder, the next pull fetches it.
            sync_status: if stored.is_some() { SyncStatus::Synced } else { SyncStatus::NeedsDownload },
            file_metadata: Some(Value::Object(metadata)),
            seen_by_job_id: None,
        };
        // The view of the folder's files is not read again: an export's names are distinct, so
        // no later object of this export looks this one up.
        self.app.store.upsert_synced_file(&row).await?;
        Ok(())
    }

    async fn export_outcome(&mut self, key: &str, pushed: Pushed) -> Result<(), Stop> {
        match pushed {
            Pushed::Failed { error_type, code, why } => {
                self.record_file_error(None, error_type, Some(&code), &format!("{key}: {why}")).await;
                Ok(())
            }
            Pushed::Conflict(why) => {
                self.export_failed(key, "conflict", &format!("was refused by the provider: {why}")).await
            }
            Pushed::CopyChanged => {
                self.export_failed(key, "object_changed", "changed while it was being exported").await
            }
            Pushed::Done { .. } => Ok(()),
        }
    }

    async fn export_failed(&mut self, key: &str, code: &str, why: &str) -> Result<(), Stop> {
        self.record_file_error(None, ErrorType::Validation, Some(code), &format!("{key}: {why}")).await;
        Ok(())
    }

    /// The folder's live file at `path` (its top level), if it tracks one; the folder's files are
    /// read once per invocation.
    async fn tracked(&mut self, path: &str) -> Result<Option<CloudFile>, Stop> {
        if self.export_rows.is_none() {
            let (tenant, folder_id) = (self.job().base.tenant_id, self.folder.base.id);
            let filter = CloudFileFilter { folder_id: Some(folder_id), ..CloudFileFilter::default() };
            let mut rows = HashMap::new();
            let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
            loop {
                let files = self.app.store.list_files(tenant, &filter, page).await?;
                rows.extend(files.items.into_iter().filter_map(|f| f.file_path.clone().map(|p| (p, f))));
                match files.next_after {
                    Some(after) => page = PageRequest { after: Some(after), ..page },
                    None => break,
                }
            }
            self.export_rows = Some(rows);
        }
        Ok(self.export_rows.as_ref().and_then(|rows| rows.get(path)).cloned())
    }
}
