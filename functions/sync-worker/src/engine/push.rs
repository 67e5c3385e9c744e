//! The push half of a run (upload and bidirectional jobs): Quodsi's copies that changed since
//! the last sync go to the provider, and nothing at the provider is ever overwritten unless it
//! is still the version that sync saw (research note §6.2).
//!
//! A copy has changed when its entity tag in the object store is not the one recorded when it
//! was last downloaded or uploaded (`file_metadata.object_etag`); what the client says about it
//! is not asked. For each changed copy, by the file's state:
//! - `synced`: a new version, conditional on the base revision (Graph `If-Match`, …). If the
//!   provider's copy changed since, that refusal leads to the next case.
//! - changed at the provider too (a refused condition, a pull that found both changed, a
//!   download still owed): the provider's current version is read; if its hash is the copy's,
//!   the two agree and the file is `synced` with no transfer; if they differ, Quodsi's version
//!   goes up beside it as `name (Quodsi conflict YYYY-MM-DD HHMM).ext` and the file is
//!   `conflict` with one error row; if the provider's file is gone, Quodsi's version goes back
//!   under its own name (a change beats a delete).
//!
//! Bytes go up in parts read from the object store (one part in memory), the provider's hash
//! computed on the way and compared with the one it answers: a mismatch leaves the file
//! `error`, never `synced`. A session outlives the invocation: its handle (encrypted) and
//! offset are in the checkpoint, and the next run asks the provider where to go on.

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use shared::content_hash::ContentHasher;
use shared::db::{CloudFileFilter, PageRequest};
use shared::objects::{ObjectMeta, ObjectsError};
use shared::providers::{Replace, Sent, UploadSession, UploadTarget, WholeFile, upload::conflict_name};
use shared::vault::TokenContext;

use super::*;
use crate::checkpoint::Upload;

/// Files looked at per query.
const PUSH_BATCH: u16 = 50;
/// The longest name the providers take (OneDrive and Dropbox 255 characters).
pub(super) const MAX_NAME_CHARS: usize = 255;

/// Where an upload's bytes go.
#[derive(Debug, Clone, Default)]
pub(super) struct Destination {
    /// A new file of this name in the parent; `None`: a new version of the row's file.
    pub(super) new_name: Option<String>,
    pub(super) parent_id: Option<String>,
    /// The parent's path from the drive root (Dropbox writes by path).
    pub(super) parent_path: Option<String>,
}

/// How an upload ended, when the run goes on.
pub(super) enum Pushed {
    /// The provider has it: the file as it now lists it, and the hash of the bytes sent.
    Done { item: Box<RemoteItem>, hash: String },
    /// The provider refused it for what it holds (a changed base, a taken name).
    Conflict(String),
    /// It failed for this file alone; the run goes on.
    Failed { error_type: ErrorType, code: String, why: String },
    /// Quodsi's copy changed or went while it was being sent: the next run sends what is there.
    CopyChanged,
}

impl Run<'_> {
    /// One batch of the folder's files in index order: each whose Quodsi copy changed is sent.
    pub(super) async fn push_batch(&mut self) -> Result<(), Stop> {
        let (tenant, folder_id) = (self.job().base.tenant_id, self.folder.base.id);
        let filter = CloudFileFilter { folder_id: Some(folder_id), ..CloudFileFilter::default() };
        let page = PageRequest { after: Some(self.checkpoint.push_after), limit: PUSH_BATCH };
        let files = self.app.store.list_files(tenant, &filter, page).await?.items;
        if files.is_empty() {
            self.delete_deleted().await?;
            self.checkpoint.stage = Stage::Finishing;
            return Ok(());
        }
        for file in files {
            self.beat(false).await?;
            self.push_file(&file).await?;
            self.checkpoint.push_after = file.base.index_id;
        }
        Ok(())
    }

    /// Sends one file's Quodsi copy if it changed, as its state says (see the module).
    async fn push_file(&mut self, file: &CloudFile) -> Result<(), Stop> {
        let resuming = self.checkpoint.upload.as_ref().is_some_and(|u| u.subject == subject_of(file));
        let Some(key) = self.stored_key(file) else { return Ok(()) };
        let Some(copy) = self.head(&key).await? else {
            // Quodsi's copy of a synced file is gone: deleted in Quodsi. The provider's file
            // goes too, at the end, behind the mass-delete guard.
            let synced = file.sync_status == SyncStatus::Synced && meta_str(file, "object_etag").is_some();
            if synced && !self.checkpoint.quodsi_deleted.contains(&file.base.id) {
                self.checkpoint.quodsi_deleted.push(file.base.id);
            }
            return Ok(());
        };
        let base = meta_str(file, "object_etag");
        if base.is_none() && file.sync_status != SyncStatus::NeedsUpload {
            // Downloaded before copies were tracked: this copy is the synced one from now on.
            let mut metadata = object_map(file);
            metadata.insert("object_etag".into(), json!(copy.e_tag));
            let patch = CloudFilePatch { file_metadata: Some(Some(Value::Object(metadata))), ..Default::default() };
            self.app.store.update_file(self.job().base.tenant_id, file.base.id, &patch).await?;
            return Ok(());
        }
        // `needs_upload`: new bytes arrived through an upload URL (files::upload::settle).
        let changed = copy.e_tag != base || file.sync_status == SyncStatus::NeedsUpload;
        if !changed && !resuming {
            return Ok(());
        }
        if file.sync_status == SyncStatus::Conflict && meta_str(file, "conflict_copy_id").is_some() {
            // Both versions are at the provider already; the user decides.
            return Ok(());
        }
        self.checkpoint.files_total += i32::from(!resuming);
        let outcome = match file.sync_status {
            // A new version only on a known base revision: without one, nothing is written blind.
            SyncStatus::Synced | SyncStatus::NeedsUpload if meta_str(file, "revision").is_some() => {
                let replace = Destination::default();
                match self.upload(&subject_of(file), Some(file), &key, &copy, &replace).await? {
                    Pushed::Conflict(why) => self.reconcile_conflict(file, &key, &copy, &why).await,
                    pushed => self.pushed(file, &copy, &replace, pushed).await,
                }
            }
            // Changed at the provider as well, its version never arrived, or no base to write on:
            // never a blind write.
            _ => self.reconcile_conflict(file, &key, &copy, "the provider's copy changed since the last sync").await,
        };
        self.checkpoint.upload = None;
        self.checkpoint.files_processed = (self.checkpoint.files_processed + 1).min(self.checkpoint.files_total.max(1));
        outcome
    }

    /// Deletes at the provider the files deleted in Quodsi, each only if unchanged there (a
    /// change there beats the delete: the file waits for the next pull to bring it back). The
    /// mass-delete guard: more than half the folder's files deleted in Quodsi at once is a store
    /// gone wrong more likely than a user; nothing is deleted and the job fails.
    async fn delete_deleted(&mut self) -> Result<(), Stop> {
        let ids = std::mem::take(&mut self.checkpoint.quodsi_deleted);
        if ids.is_empty() {
            return Ok(());
        }
        let tenant = self.job().base.tenant_id;
        let tracked = self.app.store.count_live_files(tenant, self.folder.base.id).await?;
        if ids.len() as u64 * 2 > tracked {
            return Err(Stop::Fail {
                error_type: ErrorType::Validation,
                code: Some("mass_delete_guard".into()),
                message: format!(
                    "Quodsi's copies of {} of the folder's {tracked} files are gone; nothing was deleted at the provider",
                    ids.len()
                ),
            });
        }
        for (at, &id) in ids.iter().enumerate() {
            if let Err(stop) = self.beat(false).await {
                self.checkpoint.quodsi_deleted = ids[at..].to_vec();
                return Err(stop);
            }
            let file = match self.app.store.get_file(tenant, id).await {
                Ok(file) => file,
                Err(DbError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            let (revision, path) = (meta_str(&file, "revision"), meta_str(&file, "path_lower"));
            let base = Replace {
                id: &file.provider_file_id,
                revision: revision.as_deref(),
                hash: file.content_hash.as_deref(),
                path: path.as_deref(),
            };
            if base.revision.is_none() {
                continue;
            }
            let scope = self.scope();
            let deleted =
                self.provider_raw(|a| a.provider.delete_file(a.token, &scope, &base), "delete the file").await;
            match deleted {
                Ok(()) => match self.app.store.delete_file(tenant, id).await {
                    Ok(_) | Err(DbError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                },
                Err(CallError::Provider(ProviderError::Conflict(_))) => {
                    // Changed at the provider: its version comes back to Quodsi.
                    let mut metadata = object_map(&file);
                    metadata.remove("object_etag");
                    let patch = CloudFilePatch {
                        sync_status: Some(SyncStatus::NeedsDownload),
                        file_metadata: Some(Some(Value::Object(metadata))),
                        ..CloudFilePatch::default()
                    };
                    self.app.store.update_file(tenant, id, &patch).await?;
                }
                Err(e @ CallError::Provider(_)) if !e.is_transient() => {
                    let why = self.call.scrub(&format!("deleting it at the provider failed: {e}"), 2000);
                    self.file_failed(&file, e.error_type(), e.error_code().as_deref(), &why).await?;
                }
                Err(e) => {
                    // Passing: this one and the rest are deleted by the continuation.
                    self.checkpoint.quodsi_deleted = ids[at..].to_vec();
                    return Err(self.provider_stop(e, "delete a file"));
                }
            }
        }
        Ok(())
    }

    /// Both sides changed: the provider's version is read, and the two are made to agree
    /// without losing either (see the module).
    async fn reconcile_conflict(
        &mut self,
        file: &CloudFile,
        key: &ObjectKey,
        copy: &ObjectMeta,
        why: &str,
    ) -> Result<(), Stop> {
        let metadata = self.scope().connection_metadata.cloned();
        let id = file.provider_file_id.clone();
        let remote = self
            .provider(|a| a.provider.item(a.token, metadata.as_ref(), &id), "read the file's current version")
            .await?
            .map(|entry| entry.item)
            .filter(|item| item.kind == ItemKind::File);
        let parent_id =
            remote.as_ref().and_then(|r| r.parent_id.clone()).or_else(|| meta_str(file, "parent_id")).or_else(|| {
                (!file.file_path.as_deref().unwrap_or_default().contains('/'))
                    .then(|| self.folder.provider_folder_id.clone())
            });
        let parent_path = remote
            .as_ref()
            .and_then(|r| r.path_display.as_deref().and_then(parent_of).map(str::to_owned))
            .or_else(|| meta_str(file, "path_lower").as_deref().and_then(parent_of).map(str::to_owned))
            .or_else(|| {
                let folder = self.folder.folder_path.as_deref()?.trim_end_matches('/');
                let within = file.file_path.as_deref().and_then(parent_of).filter(|p| !p.is_empty());
                Some(within.map_or_else(|| folder.to_owned(), |within| format!("{folder}/{within}")))
            });
        if parent_id.is_none() && parent_path.is_none() {
            let why = "the folder the file was in at the provider is unknown; Quodsi's version was kept here";
            return self.file_failed(file, ErrorType::Validation, Some("parent_unknown"), why).await;
        }
        let Some(remote) = remote else {
            // Gone at the provider but changed here: Quodsi's version goes back (a change beats a
            // delete), as a new file of the same name.
            let back = Destination { new_name: Some(file.file_name.clone()), parent_id, parent_path };
            let pushed = self.upload(&subject_of(file), Some(file), key, copy, &back).await?;
            return self.pushed(file, copy, &back, pushed).await;
        };
        let local = self.hash_copy(key, copy).await?;
        if let Some(local) = local
            && remote.hash.as_deref() == Some(local.as_str())
        {
            // Changed the same way on both sides: nothing to send.
            return self.agree(file, copy, &remote, local).await;
        }
        let name = conflict_name(&file.file_name, self.app.store.now(), MAX_NAME_CHARS);
        let beside = Destination { new_name: Some(name.clone()), parent_id, parent_path };
        match self.upload(&subject_of(file), Some(file), key, copy, &beside).await? {
            Pushed::Done { item, hash, .. } if item.hash.as_ref().is_none_or(|h| *h == hash) => {
                let mut metadata = object_map(file);
                metadata.insert("conflict_copy_id".into(), json!(item.id));
                metadata.insert("conflict_copy_name".into(), json!(item.name));
                let patch = CloudFilePatch {
                    sync_status: Some(SyncStatus::Conflict),
                    file_metadata: Some(Some(Value::Object(metadata))),
                    ..CloudFilePatch::default()
                };
                self.app.store.update_file(self.job().base.tenant_id, file.base.id, &patch).await?;
                let message = format!(
                    "{} ({}): changed both in Quodsi and at the provider since the last sync ({why}); both were kept: \
                     Quodsi's version is `{}` beside it",
                    file.file_name, file.provider_file_id, item.name
                );
                self.record_file_error(Some(file), ErrorType::Validation, Some("conflict"), &message).await;
                Ok(())
            }
            pushed => self.pushed(file, copy, &beside, pushed).await,
        }
    }

    /// Records a finished upload on the file's row (a new version, or Quodsi's version put back
    /// under its name), or what kept it from finishing.
    async fn pushed(
        &mut self,
        file: &CloudFile,
        copy: &ObjectMeta,
        destination: &Destination,
        pushed: Pushed,
    ) -> Result<(), Stop> {
        match pushed {
            Pushed::Done { item, hash } => {
                if item.hash.as_ref().is_some_and(|h| *h != hash) {
                    let why = format!(
                        "the provider holds {} for the uploaded bytes, which hash to {hash} ({}): not marked synced",
                        item.hash.as_deref().unwrap_or_default(),
                        self.hash_alg.name()
                    );
                    return self.file_failed(file, ErrorType::Api, Some("hash_mismatch"), &why).await;
                }
                if destination.new_name.is_some() && item.id != file.provider_file_id {
                    return self.moved_to(file, copy, &item, hash).await;
                }
                self.agree(file, copy, &item, hash).await
            }
            Pushed::Conflict(why) => {
                let why = format!("the provider refused Quodsi's version: {why}");
                self.file_failed(file, ErrorType::Validation, Some("conflict"), &why).await
            }
            Pushed::Failed { error_type, code, why } => self.file_failed(file, error_type, Some(&code), &why).await,
            Pushed::CopyChanged => Ok(()),
        }
    }

    /// The provider's file and Quodsi's copy are the same version now: the row says so.
    async fn agree(
        &mut self,
        file: &CloudFile,
        copy: &ObjectMeta,
        item: &RemoteItem,
        hash: String,
    ) -> Result<(), Stop> {
        let mut metadata = object_map(file);
        metadata.insert("object_etag".into(), json!(copy.e_tag));
        metadata.insert("revision".into(), json!(item.revision));
        if let Some(parent) = &item.parent_id {
            metadata.insert("parent_id".into(), json!(parent));
        }
        metadata.remove("conflict_copy_id");
        metadata.remove("conflict_copy_name");
        // An upload URL's bytes are what was just sent (files::upload::settle has no more to do).
        metadata.remove("upload_url_expires_at");
        metadata.remove("upload_base_etag");
        let patch = CloudFilePatch {
            upload_url: Some(None),
            file_size_bytes: Some(copy.size as i64),
            content_hash: Some(Some(hash)),
            cloud_modified_at: Some(item.modified_at),
            last_synced_at: Some(Some(self.app.store.now())),
            sync_status: Some(SyncStatus::Synced),
            file_metadata: Some(Some(Value::Object(metadata))),
            ..CloudFilePatch::default()
        };
        self.app.store.update_file(self.job().base.tenant_id, file.base.id, &patch).await?;
        Ok(())
    }

    /// Quodsi's version went back as a new provider file (the old one was deleted there): the
    /// new file takes the row's place, keeping Quodsi's copy where it is.
    async fn moved_to(
        &mut self,
        file: &CloudFile,
        copy: &ObjectMeta,
        item: &RemoteItem,
        hash: String,
    ) -> Result<(), Stop> {
        let tenant = self.job().base.tenant_id;
        let mut metadata = object_map(file);
        metadata.insert("object_etag".into(), json!(copy.e_tag));
        metadata.insert("revision".into(), json!(item.revision));
        metadata.insert("parent_id".into(), json!(item.parent_id));
        let row = SyncedFile {
            tenant_id: tenant,
            folder_id: self.folder.base.id,
            quodsi_file_type: file.quodsi_file_type,
            provider_file_id: item.id.clone(),
            file_name: item.name.clone(),
            file_path: file.file_path.clone(),
            file_size_bytes: copy.size as i64,
            content_hash: Some(hash),
            mime_type: file.mime_type.clone(),
            cloud_created_at: item.created_at,
            cloud_modified_at: item.modified_at,
            sync_status: SyncStatus::Synced,
            file_metadata: Some(Value::Object(metadata)),
            seen_by_job_id: None,
        };
        self.app.store.upsert_synced_file(&row).await?;
        match self.app.store.delete_file(tenant, file.base.id).await {
            Ok(_) | Err(DbError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    // ---- sending bytes ------------------------------------------------------------------

    /// Sends the object at `key` (as `copy` describes it) to `destination`: a new version of
    /// `row`'s provider file, or a new file of the destination's name; in one request up to a
    /// part, else through a session that survives the invocation. `subject` names what is sent
    /// in the checkpoint, so only the same upload resumes the session.
    pub(super) async fn upload(
        &mut self,
        subject: &str,
        row: Option<&CloudFile>,
        key: &ObjectKey,
        copy: &ObjectMeta,
        destination: &Destination,
    ) -> Result<Pushed, Stop> {
        let rules = self.call.provider().upload_rules();
        let part = rules.part_size(self.settings.upload_part, None);
        let revision = row.and_then(|f| meta_str(f, "revision"));
        let path = row.and_then(|f| meta_str(f, "path_lower"));
        let parent = destination.parent_id.clone().unwrap_or_default();
        let name = destination.new_name.clone().or_else(|| row.map(|f| f.file_name.clone())).unwrap_or_default();
        let replace = match (&destination.new_name, row) {
            (None, Some(file)) => Some(Replace {
                id: &file.provider_file_id,
                revision: revision.as_deref(),
                hash: file.content_hash.as_deref(),
                path: path.as_deref(),
            }),
            _ => None,
        };
        let target = UploadTarget {
            parent_id: &parent,
            parent_path: destination.parent_path.as_deref(),
            name: &name,
            replace,
            size: copy.size,
        };
        let e_tag = copy.e_tag.as_deref();
        if !rules.needs_session(copy.size, part) {
            let body = match self.objects.get_range(key, 0..copy.size, e_tag).await {
                Ok(body) => body,
                Err(e) => return Ok(copy_unreadable(e)),
            };
            let mut hasher = ContentHasher::new(self.hash_alg);
            hasher.update(&body);
            let scope = self.scope();
            let sent = self
                .provider_raw(|a| a.provider.upload_small(a.token, &scope, &target, body.clone()), "upload the file")
                .await;
            if sent.is_ok() {
                self.checkpoint.bytes_transferred = self.checkpoint.bytes_transferred.saturating_add(copy.size as i64);
            }
            return self.sent(sent, hasher, "upload the file");
        }
        self.upload_in_parts(subject, key, copy, destination, &target).await
    }

    async fn upload_in_parts(
        &mut self,
        subject: &str,
        key: &ObjectKey,
        copy: &ObjectMeta,
        destination: &Destination,
        target: &UploadTarget<'_>,
    ) -> Result<Pushed, Stop> {
        let rules = self.call.provider().upload_rules();
        let e_tag = copy.e_tag.as_deref();
        let mut restarted = false;
        'session: loop {
            let (session, mut offset) = match self.resumable(subject, copy, destination) {
                Some(session) => {
                    let scope = self.scope();
                    let at = self
                        .provider_raw(
                            |a| a.provider.upload_offset(a.token, &scope, target, &session),
                            "ask where the upload stands",
                        )
                        .await;
                    match at {
                        Ok(offset) => (session, offset),
                        Err(CallError::Provider(ProviderError::UploadSessionGone)) if !restarted => {
                            restarted = true;
                            self.checkpoint.upload = None;
                            continue 'session;
                        }
                        Err(e) => return self.call_failed(e, "resume the upload"),
                    }
                }
                None => {
                    let scope = self.scope();
                    let opened = self
                        .provider_raw(|a| a.provider.start_upload(a.token, &scope, target), "open an upload session")
                        .await;
                    let session = match opened {
                        Ok(session) => session,
                        Err(e) => return self.call_failed(e, "open an upload session"),
                    };
                    self.checkpoint.upload = Some(Upload {
                        subject: subject.to_owned(),
                        new_name: destination.new_name.clone(),
                        parent_id: destination.parent_id.clone(),
                        size: copy.size,
                        e_tag: copy.e_tag.clone(),
                        session: self.seal(&session),
                        offset: 0,
                    });
                    // Kept at once: a run that dies now leaves a session the next one resumes.
                    self.heartbeat().await?;
                    (session, 0)
                }
            };
            // Box sets the part size of its sessions; the others take the worker's.
            let part = rules.part_size(self.settings.upload_part, Some(&session));
            // The provider's hash covers the whole file: what was sent before is hashed again
            // from Quodsi's copy, which is the same version (its entity tag is checked).
            let mut hasher = ContentHasher::new(self.hash_alg);
            if let Err(e) = self.hash_range(key, 0..offset.min(copy.size), e_tag, &mut hasher, part).await {
                return Ok(copy_unreadable(e));
            }
            let mut read_ahead: Option<(u64, Result<bytes::Bytes, ObjectsError>)> = None;
            loop {
                if offset >= copy.size {
                    // Every byte is there: the providers that commit separately do it now.
                    let whole = WholeFile { hash: hasher.clone().finish().provider };
                    let scope = self.scope();
                    let finished = self
                        .provider_raw(
                            |a| a.provider.finish_upload(a.token, &scope, target, &session, &whole),
                            "commit the upload",
                        )
                        .await;
                    return self.sent(finished, hasher, "commit the upload");
                }
                let end = (offset + part).min(copy.size);
                let read = match read_ahead.take() {
                    Some((at, body)) if at == offset => body,
                    _ => self.objects.get_range(key, offset..end, e_tag).await,
                };
                let body = match read {
                    Ok(body) => body,
                    Err(e) => {
                        self.cancel(&session).await;
                        return Ok(copy_unreadable(e));
                    }
                };
                let scope = self.scope();
                // The part is hashed on a thread of its own while it is on its way: the hash
                // costs the transfer nothing as long as it is the faster of the two.
                let hashing = {
                    let (mut hasher, body) = (hasher, body.clone());
                    tokio::task::spawn_blocking(move || {
                        hasher.update(&body);
                        hasher
                    })
                };
                // And the next part is read from the store meanwhile (two parts in memory).
                let objects = self.objects.clone();
                let following = async {
                    if end >= copy.size {
                        return None;
                    }
                    Some((end, objects.get_range(key, end..(end + part).min(copy.size), e_tag).await))
                };
                let send = self.provider_raw(
                    |a| a.provider.upload_part(a.token, &scope, target, &session, offset, body.clone()),
                    "send a part of the file",
                );
                let (sent, following) = tokio::join!(send, following);
                read_ahead = following;
                hasher = hashing.await.expect("hashing a part never panics");
                match sent {
                    Ok(Sent::Next(next)) => {
                        if next != end {
                            // The provider kept less (or more) than was sent: hash from its offset.
                            hasher = ContentHasher::new(self.hash_alg);
                            if let Err(e) = self.hash_range(key, 0..next.min(copy.size), e_tag, &mut hasher, part).await
                            {
                                return Ok(copy_unreadable(e));
                            }
                        }
                        self.checkpoint.bytes_transferred =
                            self.checkpoint.bytes_transferred.saturating_add(next.saturating_sub(offset) as i64);
                        offset = next;
                        if let Some(upload) = &mut self.checkpoint.upload {
                            upload.offset = offset;
                        }
                        if let Err(stop) = self.beat(false).await {
                            if matches!(stop, Stop::LeaseLost) {
                                // Cancelled (or taken): the session is given up at the provider now rather
                                // than left to expire. Out of time, it is kept for the next invocation.
                                self.cancel(&session).await;
                            }
                            return Err(stop);
                        }
                    }
                    Ok(Sent::Done(item)) => {
                        self.checkpoint.bytes_transferred =
                            self.checkpoint.bytes_transferred.saturating_add(body.len() as i64);
                        return Ok(Pushed::Done { item, hash: hasher.finish().provider });
                    }
                    Err(CallError::Provider(ProviderError::UploadSessionGone)) if !restarted => {
                        restarted = true;
                        self.checkpoint.upload = None;
                        continue 'session;
                    }
                    Err(e) => return self.call_failed(e, "send a part of the file"),
                }
            }
        }
    }

    /// The session of the checkpoint's upload, if it is this file's to the same place and of
    /// the same version of Quodsi's copy; another is cancelled.
    fn resumable(&mut self, subject: &str, copy: &ObjectMeta, destination: &Destination) -> Option<UploadSession> {
        let upload = self.checkpoint.upload.clone()?;
        let same = upload.subject == subject
            && upload.new_name == destination.new_name
            && upload.size == copy.size
            && upload.e_tag == copy.e_tag;
        let session = self.unseal(&upload.session);
        if !same {
            self.checkpoint.upload = None;
            return None;
        }
        session
    }

    /// The outcome of the call that ended an upload.
    fn sent(&self, sent: Result<RemoteItem, CallError>, hasher: ContentHasher, what: &str) -> Result<Pushed, Stop> {
        match sent {
            Ok(item) => Ok(Pushed::Done { item: Box::new(item), hash: hasher.finish().provider }),
            Err(e) => self.call_failed(e, what),
        }
    }

    /// A failed upload call: a conflict, this file's failure, or the run's (a passing fault
    /// continues the job later; the checkpoint keeps the session).
    fn call_failed(&self, e: CallError, what: &str) -> Result<Pushed, Stop> {
        match e {
            CallError::Provider(ProviderError::Conflict(why)) => Ok(Pushed::Conflict(why)),
            e @ CallError::Provider(_) if !e.is_transient() => Ok(Pushed::Failed {
                error_type: e.error_type(),
                code: e.error_code().unwrap_or_else(|| "upload_failed".to_owned()),
                why: self.call.scrub(&format!("could not {what}: {e}"), 2000),
            }),
            e => Err(self.provider_stop(e, what)),
        }
    }

    async fn cancel(&self, session: &UploadSession) {
        let deadline = Deadline::at(Instant::now() + Duration::from_secs(10));
        if let Err(e) = self.call.run(&deadline, |a| a.provider.cancel_upload(a.token, session)).await {
            tracing::warn!(job_id = %self.job().base.id, error = %e, "cancelling an upload session failed; it expires by itself");
        }
    }

    // ---- Quodsi's copies ----------------------------------------------------------------

    /// The key of the row's Quodsi copy, if it has one under its tenant's and folder's prefix.
    fn stored_key(&self, file: &CloudFile) -> Option<ObjectKey> {
        let stored = meta_str(file, "object_key")?;
        ObjectKey::stored_under(&stored, self.job().base.tenant_id, self.folder.base.id)
    }

    pub(super) async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Stop> {
        self.objects.head(key).await.map_err(|e| Stop::Fail {
            error_type: ErrorType::Network,
            code: Some("object_store_failed".into()),
            message: format!("Quodsi's file store cannot be read: {}", shared::error_chain(&e)),
        })
    }

    /// Whether Quodsi's copy of `file` changed since the last sync recorded it: its metadata
    /// now, or `None` when it did not (or there is no record to compare with).
    pub(super) async fn copy_changed(&self, file: &CloudFile) -> Result<Option<ObjectMeta>, Stop> {
        let (Some(key), Some(base)) = (self.stored_key(file), meta_str(file, "object_etag")) else {
            return Ok(None);
        };
        Ok(self.head(&key).await?.filter(|now| now.e_tag.as_deref() != Some(base.as_str())))
    }

    /// A pull found the file changed at the provider while Quodsi's copy changed too: the copy
    /// is kept, the file is `conflict` with an error row, and a run that pushes resolves it.
    pub(super) async fn changed_on_both_sides(&mut self, file: &CloudFile) -> Result<(), Stop> {
        let patch = CloudFilePatch { sync_status: Some(SyncStatus::Conflict), ..CloudFilePatch::default() };
        self.app.store.update_file(self.job().base.tenant_id, file.base.id, &patch).await?;
        if self.pushes {
            // The push half of this run settles it (both versions kept, or found identical).
            return Ok(());
        }
        let message = format!(
            "{} ({}): changed both in Quodsi and at the provider since the last sync; Quodsi's version was kept \
             and the provider's not downloaded (an upload or bidirectional job keeps both)",
            file.file_name, file.provider_file_id
        );
        self.record_file_error(Some(file), ErrorType::Validation, Some("conflict"), &message).await;
        Ok(())
    }

    /// The provider's hash of Quodsi's copy, read whole (in parts); `None` if it changed or
    /// went meanwhile.
    async fn hash_copy(&self, key: &ObjectKey, copy: &ObjectMeta) -> Result<Option<String>, Stop> {
        let mut hasher = ContentHasher::new(self.hash_alg);
        let part = self.settings.upload_part.max(1);
        match self.hash_range(key, 0..copy.size, copy.e_tag.as_deref(), &mut hasher, part).await {
            Ok(()) => Ok(Some(hasher.finish().provider)),
            Err(_) => Ok(None),
        }
    }

    async fn hash_range(
        &self,
        key: &ObjectKey,
        range: std::ops::Range<u64>,
        e_tag: Option<&str>,
        hasher: &mut ContentHasher,
        part: u64,
    ) -> Result<(), ObjectsError> {
        let mut at = range.start;
        while at < range.end {
            let end = (at + part).min(range.end);
            hasher.update(&self.objects.get_range(key, at..end, e_tag).await?);
            at = end;
        }
        Ok(())
    }

    // ---- the session, sealed ------------------------------------------------------------

    fn session_context(&self) -> TokenContext {
        TokenContext::upload_session(self.job().base.tenant_id, self.connection.base.id)
    }

    fn seal(&self, session: &UploadSession) -> String {
        let plain = SecretString::from(serde_json::to_string(session).expect("a session always serialises"));
        let sealed = self.call.current().vault.encrypt(self.session_context(), &plain);
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }

    /// The checkpoint's session; `None` when it cannot be opened (a retired key): the upload
    /// starts over, and the provider drops the abandoned session when it expires.
    fn unseal(&self, sealed: &str) -> Option<UploadSession> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(sealed).ok()?;
        let plain = self.call.current().vault.decrypt(self.session_context(), &bytes).ok()?;
        serde_json::from_str(plain.expose_secret()).ok()
    }
}

/// What a row's upload is called in the checkpoint.
fn subject_of(file: &CloudFile) -> String {
    format!("file:{}", file.base.id)
}

/// The folder part of a `/`-separated path (`""` for an item at the top).
fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(parent, _)| parent)
}

/// The row's metadata as a map to change.
fn object_map(file: &CloudFile) -> serde_json::Map<String, Value> {
    match file.file_metadata.clone() {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Quodsi's copy could not be read as the version the upload began with: it changed or went,
/// and the next run sends what is there then.
fn copy_unreadable(e: ObjectsError) -> Pushed {
    match e {
        ObjectsError::Changed { .. } | ObjectsError::NotFound { .. } => Pushed::CopyChanged,
        e => Pushed::Failed {
            error_type: ErrorType::Network,
            code: "object_store_failed".into(),
            why: format!("Quodsi's copy could not be read: {}", shared::error_chain(&e)),
        },
    }
}
