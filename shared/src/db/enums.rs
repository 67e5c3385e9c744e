//! The seed's enumerated columns. Each enum serialises to exactly the seed's strings, and
//! parsing rejects anything else, so a value that reaches SQL is always one the CHECK accepts.

use std::fmt;
use std::str::FromStr;

/// A string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of: {allowed}")]
pub struct UnknownVariant {
    pub value: String,
    pub allowed: &'static str,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            const ALLOWED: &'static str = concat!($($text, " "),+);

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { value: s.to_owned(), allowed: Self::ALLOWED.trim_end() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        // Written by hand because serde is implemented by hand: the document lists exactly
        // the strings the CHECK constraint accepts.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .build()
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_enum!(
    /// `cloud_connections.provider_type` (ck_cloud_connections_provider_type).
    ProviderType {
        OneDrive => "onedrive",
        GDrive => "gdrive",
        Dropbox => "dropbox",
        Box => "box",
        SharePoint => "sharepoint",
    }
);

string_enum!(
    /// `cloud_connections.status`.
    ConnectionStatus {
        Active => "active",
        Revoked => "revoked",
        Expired => "expired",
        Error => "error",
    }
);

string_enum!(
    /// `cloud_folders.folder_type` (ck_cloud_folders_folder_type).
    FolderType {
        Export => "export",
        Import => "import",
        Archive => "archive",
        Models => "models",
        Results => "results",
        General => "general",
    }
);

string_enum!(
    /// `cloud_folders.folder_permissions` (ck_cloud_folders_permissions).
    FolderPermissions {
        ReadOnly => "read_only",
        ReadWrite => "read_write",
        WriteOnly => "write_only",
    }
);

string_enum!(
    /// `cloud_sync_jobs.job_type` (ck_cloud_sync_jobs_job_type).
    JobType {
        Upload => "upload",
        Download => "download",
        Bidirectional => "bidirectional",
        Export => "export",
        Import => "import",
    }
);

string_enum!(
    /// `cloud_sync_jobs.status` (ck_cloud_sync_jobs_status).
    JobStatus {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// `cloud_files.quodsi_file_type` (ck_cloud_files_file_type).
    QuodsiFileType {
        Model => "model",
        Result => "result",
        Animation => "animation",
        Export => "export",
        Import => "import",
        Document => "document",
        Image => "image",
    }
);

string_enum!(
    /// `cloud_files.sync_status` (ck_cloud_files_sync_status).
    SyncStatus {
        Synced => "synced",
        NeedsUpload => "needs_upload",
        NeedsDownload => "needs_download",
        Conflict => "conflict",
        Error => "error",
    }
);

string_enum!(
    /// `cloud_shared_links.resource_type` (ck_cloud_shared_links_resource).
    ResourceType {
        File => "file",
        Folder => "folder",
    }
);

string_enum!(
    /// `cloud_shared_links.share_type` (ck_cloud_shared_links_share_type).
    ShareType {
        View => "view",
        Edit => "edit",
        Download => "download",
        Comment => "comment",
    }
);

string_enum!(
    /// `cloud_sync_errors.error_type` (ck_cloud_sync_errors_error_type).
    ErrorType {
        Auth => "auth",
        Network => "network",
        Quota => "quota",
        Permission => "permission",
        Api => "api",
        Validation => "validation",
        Timeout => "timeout",
    }
);

impl JobStatus {
    /// pending → running → completed | failed, and pending | running → cancelled.
    /// running → running is allowed: it is how a worker reports progress.
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Pending, Running)
                | (Running, Running)
                | (Running, Completed)
                | (Running, Failed)
                | (Pending, Cancelled)
                | (Running, Cancelled)
        )
    }

    pub fn is_live(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Running)
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

string_enum!(
    /// `cloud_sync_cursors.cursor_kind` (ck_cloud_sync_cursors_kind): which provider feed a
    /// cursor belongs to.
    CursorKind {
        GraphDelta => "graph_delta",
        DriveChanges => "drive_changes",
        DropboxListFolder => "dropbox_list_folder",
        BoxEvents => "box_events",
    }
);

string_enum!(
    /// `cloud_sync_subscriptions.subscription_kind` (ck_cloud_sync_subscriptions_kind): what a
    /// provider's change subscription is.
    SubscriptionKind {
        GraphSubscription => "graph_subscription",
        DriveChannel => "drive_channel",
        BoxWebhook => "box_webhook",
    }
);

impl CursorKind {
    /// The feed a provider's changes come from.
    pub fn of(provider: ProviderType) -> CursorKind {
        match provider {
            ProviderType::OneDrive | ProviderType::SharePoint => CursorKind::GraphDelta,
            ProviderType::GDrive => CursorKind::DriveChanges,
            ProviderType::Dropbox => CursorKind::DropboxListFolder,
            ProviderType::Box => CursorKind::BoxEvents,
        }
    }
}

impl FolderType {
    /// What a file synced from a folder of this type is to Quodsi (`quodsi_file_type`), when
    /// nothing about the file itself says otherwise.
    pub fn file_type(self) -> QuodsiFileType {
        match self {
            FolderType::Models => QuodsiFileType::Model,
            FolderType::Results => QuodsiFileType::Result,
            FolderType::Export => QuodsiFileType::Export,
            FolderType::Import => QuodsiFileType::Import,
            FolderType::Archive | FolderType::General => QuodsiFileType::Document,
        }
    }
}

impl FolderPermissions {
    /// Whether a job of this type may run against a folder with these permissions: a
    /// read_only folder is never written to, a write_only folder never read from.
    pub fn allows(self, job: JobType) -> bool {
        let reads = matches!(job, JobType::Download | JobType::Import | JobType::Bidirectional);
        let writes = matches!(job, JobType::Upload | JobType::Export | JobType::Bidirectional);
        match self {
            FolderPermissions::ReadWrite => true,
            FolderPermissions::ReadOnly => !writes,
            FolderPermissions::WriteOnly => !reads,
        }
    }

    /// The job the auto-sync trigger starts for a folder with these permissions.
    pub fn auto_sync_job(self) -> JobType {
        match self {
            FolderPermissions::ReadWrite => JobType::Bidirectional,
            FolderPermissions::ReadOnly => JobType::Download,
            FolderPermissions::WriteOnly => JobType::Upload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_seed_string() {
        for p in ProviderType::ALL {
            assert_eq!(p.as_str().parse::<ProviderType>().unwrap(), *p);
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{}\"", p.as_str()));
        }
        for s in JobStatus::ALL {
            let back: JobStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(back, *s);
        }
    }

    #[test]
    fn unknown_strings_are_rejected_with_the_allowed_list() {
        let err = "OneDrive".parse::<ProviderType>().unwrap_err();
        assert_eq!(err.allowed, "onedrive gdrive dropbox box sharepoint");
        assert!(serde_json::from_str::<ShareType>("\"owner\"").is_err());
    }

    #[test]
    fn job_transitions_follow_the_lifecycle() {
        use JobStatus::*;
        assert!(Pending.can_become(Running));
        assert!(Running.can_become(Completed));
        assert!(Running.can_become(Cancelled));
        assert!(!Pending.can_become(Completed));
        assert!(!Completed.can_become(Running));
        assert!(!Cancelled.can_become(Cancelled));
        assert!(!Failed.can_become(Pending));
    }

    #[test]
    fn permissions_gate_job_direction() {
        assert!(!FolderPermissions::ReadOnly.allows(JobType::Upload));
        assert!(!FolderPermissions::ReadOnly.allows(JobType::Bidirectional));
        assert!(FolderPermissions::ReadOnly.allows(JobType::Download));
        assert!(!FolderPermissions::WriteOnly.allows(JobType::Import));
        assert!(FolderPermissions::WriteOnly.allows(JobType::Export));
        assert_eq!(FolderPermissions::WriteOnly.auto_sync_job(), JobType::Upload);
    }
}
