//! The item a new link is for: the file or folder the request names, that folder's connection,
//! and what the provider needs to address the item.

use shared::api::ApiError;
use shared::app::App;
use shared::db::{CloudFile, Connection, DbError, FileId, Folder, FolderId, ResourceType, TenantId};
use shared::providers::LinkTarget;
use uuid::Uuid;

/// The item a link is for, with the folder and connection it lives in.
pub(crate) struct Resolved {
    pub resource_type: ResourceType,
    pub file: Option<CloudFile>,
    pub folder: Folder,
    pub connection: Connection,
}

impl Resolved {
    /// The item named in a create request; any of the three rows missing (or another
    /// tenant's) is a 404 naming the body field, since the item cannot be reached either way.
    pub async fn for_resource(
        app: &App,
        tenant: TenantId,
        resource_type: ResourceType,
        id: Uuid,
    ) -> Result<Resolved, ApiError> {
        let field = match resource_type {
            ResourceType::File => "file_id",
            ResourceType::Folder => "folder_id",
        };
        let named = |e: DbError| match e {
            DbError::NotFound => ApiError::not_found_field(field),
            other => other.into(),
        };
        let (file, folder) = match resource_type {
            ResourceType::File => {
                let file = app.store.get_file(tenant, FileId(id)).await.map_err(named)?;
                let folder = app.store.get_folder(tenant, file.folder_id).await.map_err(named)?;
                (Some(file), folder)
            }
            ResourceType::Folder => (None, app.store.get_folder(tenant, FolderId(id)).await.map_err(named)?),
        };
        let connection = app.store.get_connection(tenant, folder.connection_id).await.map_err(named)?;
        Ok(Resolved { resource_type, file, folder, connection })
    }

    pub fn target(&self) -> LinkTarget<'_> {
        let item_id = match &self.file {
            Some(file) => file.provider_file_id.as_str(),
            None => self.folder.provider_folder_id.as_str(),
        };
        LinkTarget {
            resource_type: self.resource_type,
            item_id,
            connection_metadata: self.connection.connection_metadata.as_ref(),
        }
    }

    pub fn file_id(&self) -> Option<FileId> {
        self.file.as_ref().map(|f| f.base.id)
    }

    pub fn folder_id(&self) -> Option<FolderId> {
        self.file.is_none().then_some(self.folder.base.id)
    }
}
