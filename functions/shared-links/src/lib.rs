//! The shared-links API: `POST /shared-links`, `GET /shared-links` (file_id, folder_id,
//! is_active, limit, cursor), `GET /shared-links/{id}` and `DELETE /shared-links/{id}`.
//! Every query is scoped to the caller's tenant; another tenant's link, file or folder id is
//! a 404 like an unknown one.
//!
//! A link is created at the provider first, through the connection of the file's or folder's
//! folder, and stored only once the provider has made it. A link password goes to the
//! provider and nowhere else: only `password_protected` is stored.
//!
//! Provider calls run under the request's deadline ([`shared::deadline`]) and keep its
//! reserve: a slow provider is a 504 in time, and a link the database would not take is
//! still removed again at the provider (and a failure to do so recorded) before the Lambda
//! is stopped, rather than left public and unrecorded.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use shared::api::openapi::{BearerJwt, ClosedVariants};
use shared::api::{
    ApiError, Caller, Cursor, ErrorEnvelope, JsonBody, Limit, ListResponse, PathId, QueryParams, Timestamp,
    page_request,
};
use shared::app::App;
use shared::config::DEFAULT_REQUEST_BUDGET;
use shared::db::{
    ConnectionPatch, ConnectionStatus, FileId, FolderId, LinkId, NewSharedLink, ResourceType, ShareType, SharedLink,
    SharedLinkFilter,
};
use shared::deadline::RequestClock;
use shared::error_rows::ErrorRow;
use shared::link_removal::{self, Need};
use shared::provider_call::{CallError, ProviderCall};
use shared::providers::{ExistingLink, ProviderError, SharedLinkRequest};
use utoipa::OpenApi as _;
use uuid::Uuid;

mod provider;

use provider::Resolved;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/shared-links", get(list).post(create))
            .route("/shared-links/{id}", get(read).delete(deactivate)),
        app,
    )
}

/// Unknown fields are refused in every shape of the create request.
const CLOSED_CREATE_REQUEST: ClosedVariants = ClosedVariants("SharedLinkCreateRequest");

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "shared-links", description = "Links to the caller's cloud files and folders, made at their providers."),
    paths(create, list, read, deactivate),
    modifiers(&BearerJwt, &CLOSED_CREATE_REQUEST)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the links to this file.
    file_id: Option<FileId>,
    /// Only the links to this folder.
    folder_id: Option<FolderId>,
    is_active: Option<bool>,
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
}

#[utoipa::path(
    get,
    path = "/shared-links",
    operation_id = "list_shared_links",
    tag = "shared-links",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the caller's links, oldest first", body = ListResponse<SharedLink>),
        (status = 400, description = "An invalid query parameter (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "file_id or folder_id names no file or folder of the caller's tenant (named; a deleted one still filters)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<ListResponse<SharedLink>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_ref())?;
    // Another tenant's (or an unknown) file or folder is a 404, as everywhere, not an empty page;
    // a deleted one of the tenant's still filters: its history stays listed.
    if let Some(id) = q.file_id {
        app.store.known_file(caller.tenant_id, id).await.map_err(ApiError::lookup("file_id"))?;
    }
    if let Some(id) = q.folder_id {
        app.store.known_folder(caller.tenant_id, id).await.map_err(ApiError::lookup("folder_id"))?;
    }
    let filter = SharedLinkFilter { file_id: q.file_id, folder_id: q.folder_id, is_active: q.is_active };
    let rows = app.store.list_links(caller.tenant_id, &filter, page).await?;
    Ok(axum::Json(ListResponse::from(rows)))
}

#[utoipa::path(
    get,
    path = "/shared-links/{id}",
    operation_id = "get_shared_link",
    tag = "shared-links",
    params(("id" = uuid::Uuid, Path, description = "The link's id")),
    responses(
        (status = 200, description = "The link", body = SharedLink),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No link of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<LinkId>,
) -> Result<axum::Json<SharedLink>, ApiError> {
    Ok(axum::Json(app.store.get_link(caller.tenant_id, id).await?))
}

// Every field is optional here so that a missing one is a 400 naming it, like a bad one.
// `SecretString` keeps the password out of Debug output and so out of any log line.
/// A link to make at the provider: for a file (file_id) or a folder (folder_id), one of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Required.
    resource_type: Option<ResourceType>,
    /// Required for a file link, absent for a folder link.
    file_id: Option<Uuid>,
    /// Required for a folder link, absent for a file link.
    folder_id: Option<Uuid>,
    /// Required; not every provider can make every type (400 naming share_type).
    share_type: Option<ShareType>,
    /// In the future; RFC 3339, before year 10000 (UTC).
    expires_at: Option<Timestamp>,
    /// Sent to the provider only, never stored; not every provider takes one (400 naming password).
    password: Option<SecretString>,
}

/// The create request as the OpenAPI document states it: one shape per `resource_type`, each
/// with the one id it needs. `CreateBody` parses the request (so a missing or wrong field is a
/// 400 naming it); this type only describes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "resource_type", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = SharedLinkCreateRequest)]
#[allow(dead_code)]
enum CreateRequestDoc {
    File {
        file_id: FileId,
        /// Not every provider can make every type (400 naming share_type).
        share_type: ShareType,
        /// In the future; RFC 3339, before year 10000 (UTC).
        #[schema(value_type = Option<String>, format = DateTime)]
        expires_at: Option<Timestamp>,
        /// Sent to the provider only, never stored; not every provider takes one (400 naming password).
        #[schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
        password: Option<String>,
    },
    Folder {
        folder_id: FolderId,
        /// Not every provider can make every type (400 naming share_type).
        share_type: ShareType,
        /// In the future; RFC 3339, before year 10000 (UTC).
        #[schema(value_type = Option<String>, format = DateTime)]
        expires_at: Option<Timestamp>,
        /// Sent to the provider only, never stored; not every provider takes one (400 naming password).
        #[schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
        password: Option<String>,
    },
}

/// Longest link password passed on (OneDrive's own limit is far above any sane password).
const MAX_PASSWORD_CHARS: usize = 256;

/// A create request that passed every check that needs no database or provider.
struct Checked {
    resource_type: ResourceType,
    resource_id: Uuid,
    request: SharedLinkRequest,
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid_field(field, "is required"))
}

impl CreateBody {
    fn check(self, now: DateTime<Utc>) -> Result<Checked, ApiError> {
        let resource_type = required(self.resource_type, "resource_type")?;
        let (wanted, wanted_name, other, other_name) = match resource_type {
            ResourceType::File => (self.file_id, "file_id", self.folder_id, "folder_id"),
            ResourceType::Folder => (self.folder_id, "folder_id", self.file_id, "file_id"),
        };
        if other.is_some() {
            return Err(ApiError::invalid_field(
                other_name,
                format!("must be absent for a {resource_type} link (give {wanted_name} only)"),
            ));
        }
        let resource_id = required(wanted, wanted_name)?;
        let share_type = required(self.share_type, "share_type")?;
        let expires_at = self.expires_at.map(Timestamp::into_inner);
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(ApiError::invalid_field("expires_at", "must be in the future"));
        }
        if let Some(p) = &self.password {
            let p = p.expose_secret();
            if p.is_empty() {
                return Err(ApiError::invalid_field("password", "must not be empty (leave it out for no password)"));
            }
            if p.chars().count() > MAX_PASSWORD_CHARS {
                return Err(ApiError::invalid_field(
                    "password",
                    format!("must be at most {MAX_PASSWORD_CHARS} characters"),
                ));
            }
            if p.contains('\0') {
                return Err(ApiError::invalid_field("password", "must not contain NUL characters"));
            }
        }
        Ok(Checked {
            resource_type,
            resource_id,
            request: SharedLinkRequest { share_type, password: self.password, expires_at },
        })
    }
}

#[utoipa::path(
    post,
    path = "/shared-links",
    operation_id = "create_shared_link",
    tag = "shared-links",
    request_body = CreateRequestDoc,
    responses(
        (status = 201, description = "The provider made the link and it is stored; `expiry_granted` says whether the expiry asked for is the one in force", body = Created),
        (status = 400, description = "Malformed JSON or an invalid field (named), including a password or share type the provider cannot do", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "file_id or folder_id names nothing the caller's tenant can reach (named)", body = ErrorEnvelope),
        (status = 409, description = "The item's connection is not active, or the provider keeps one link per item and already has it (Dropbox)", body = ErrorEnvelope),
        (status = 429, description = "The provider throttles the connection (Retry-After when it said); nothing is stored and the failure is recorded as a sync error", body = ErrorEnvelope),
        (status = 502, description = "The provider failed; nothing is stored and the failure is recorded as a sync error", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time; nothing is stored and the failure is recorded as a sync error", body = ErrorEnvelope),
        (status = 503, description = "The provider is not configured", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn create(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let checked = body.check(app.store.now())?;
    let tenant = caller.tenant_id;
    let resolved = Resolved::for_resource(&app, tenant, checked.resource_type, checked.resource_id).await?;
    if resolved.connection.status != ConnectionStatus::Active {
        return Err(ApiError::conflict(
            "connection_not_active",
            format!("the item's connection is {}; reconnect it to share its items", resolved.connection.status),
        ));
    }
    let provider = resolved.connection.provider_type;
    let call = ProviderCall::open(&app, resolved.connection.clone()).await?;
    if checked.request.password.is_some() && !call.provider().supports_link_password() {
        return Err(ApiError::invalid_field("password", format!("{provider} shared links cannot have a password")));
    }
    if let Some(password) = &checked.request.password {
        call.add_secret(password);
    }
    let deadline = clock.deadline(call.current().config.request_budget);
    let target = resolved.target();
    let request = &checked.request;
    let created = match call.run(&deadline, |a| a.provider.create_shared_link(a.token, &target, request)).await {
        Ok(created) => created,
        Err(CallError::Provider(ProviderError::Unsupported(message))) => {
            return Err(ApiError::invalid_field(unsupported_field(request, &message), message));
        }
        // Dropbox keeps one link per item and settings; a second one is the caller's conflict,
        // not a provider failure worth an error row.
        Err(CallError::Provider(ProviderError::Rejected { status: 409, code: Some(code), .. }))
            if code == "shared_link_already_exists" =>
        {
            return Err(ApiError::conflict(
                "link_exists_at_provider",
                format!("{provider} already has a shared link for this item"),
            ));
        }
        Err(e) => {
            record(&app, failure_row(&call, &resolved, "create_shared_link", &e)).await;
            return Err(e.into());
        }
    };
    let new = NewSharedLink {
        tenant_id: tenant,
        created_by_user_id: caller.user_id,
        resource_type: checked.resource_type,
        file_id: resolved.file_id(),
        folder_id: resolved.folder_id(),
        provider_share_id: created.provider_share_id.clone(),
        share_url: created.share_url.clone(),
        share_type: checked.request.share_type,
        password_protected: checked.request.password.is_some(),
        expires_at: in_force_expiry(call.provider().expires_links_natively(), checked.request.expires_at, &created),
    };
    match app.store.create_link(&new).await {
        Ok(link) => {
            touch_connection(&app, &resolved).await;
            Ok((StatusCode::CREATED, axum::Json(Created::new(link, checked.request.expires_at))))
        }
        Err(e) => {
            // Unrecorded, the provider's link would stay public with nothing here to remove it.
            let existing =
                ExistingLink { provider_share_id: created.provider_share_id.as_deref(), share_url: &created.share_url };
            // The undo may use half the reserve: the other half is for recording its failure.
            // A database that failed slowly may have left less than that; the undo is still
            // attempted, for at least MIN_UNDO but short of the Lambda's own deadline.
            let undo = call
                .undo(&deadline, deadline.reserve() / 2, |a| a.provider.delete_shared_link(a.token, &target, &existing))
                .await;
            if let Err(undo) = undo {
                record(&app, failure_row(&call, &resolved, "delete_unrecorded_shared_link", &undo)).await;
            }
            Err(e.into())
        }
    }
}

/// The expiry a new link has: the provider's own, as it reports it, where the provider expires
/// links (it may have capped the one asked for, or refused any); the one asked for where
/// link-expiry removes links itself (Drive).
fn in_force_expiry(
    provider_expires_links: bool,
    requested: Option<DateTime<Utc>>,
    created: &shared::providers::CreatedLink,
) -> Option<DateTime<Utc>> {
    if provider_expires_links { created.expires_at } else { requested }
}

/// A new link, and what became of the expiry the request asked for.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SharedLinkCreated)]
struct Created {
    #[serde(flatten)]
    link: SharedLink,
    /// The `expires_at` the request asked for; null when it asked for none.
    requested_expires_at: Option<DateTime<Utc>>,
    /// null when no expiry was asked for; false when the link's `expires_at` (the expiry in
    /// force, as the provider set it) is not the one asked for: earlier (a tenant policy
    /// capped it) or null (the account type takes no expiry).
    expiry_granted: Option<bool>,
}

impl Created {
    fn new(link: SharedLink, requested: Option<DateTime<Utc>>) -> Created {
        // Providers keep whole seconds.
        let same = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).num_milliseconds().abs() < 1000;
        let expiry_granted = requested.map(|asked| link.expires_at.is_some_and(|got| same(got, asked)));
        Created { link, requested_expires_at: requested, expiry_granted }
    }
}

/// The error row of a failed provider call about `resolved`'s item.
fn failure_row(call: &ProviderCall, resolved: &Resolved, operation: &str, e: &CallError) -> ErrorRow {
    let provider = resolved.connection.provider_type;
    let mut row = call.error_row(operation, e, &format!("{operation} at {provider} failed")).metadata(json!({
        "resource_type": resolved.resource_type,
        "file_id": resolved.file_id(),
        "folder_id": resolved.folder.base.id,
        "shared_link_id": null,
    }));
    if let Some(file) = resolved.file_id() {
        row = row.file(file);
    }
    row
}

async fn record(app: &App, row: ErrorRow) {
    row.record(&app.store).await;
}

/// Stamps last_used_at; a failure only loses that stamp, so it is logged, not returned.
async fn touch_connection(app: &App, resolved: &Resolved) {
    let patch = ConnectionPatch { last_used_at: Some(app.store.now()), ..Default::default() };
    let (tenant, id) = (resolved.connection.base.tenant_id, resolved.connection.base.id);
    if let Err(e) = app.store.update_connection(tenant, id, &patch).await {
        tracing::warn!(error = %shared::error_chain(&e), connection_id = %id, "could not stamp last_used_at");
    }
}

/// Turns the link off: removes it at the provider, then sets is_active = 0. The user asked for
/// the link to stop working, so a provider failure is recorded as a sync error but does not
/// keep the link active here (the redirect stops at once either way).
#[utoipa::path(
    delete,
    path = "/shared-links/{id}",
    operation_id = "deactivate_shared_link",
    tag = "shared-links",
    params(("id" = uuid::Uuid, Path, description = "The link's id")),
    responses(
        (status = 200, description = "The link, now inactive. A provider that fails to remove it is recorded as a sync error; the link is turned off here regardless", body = SharedLink),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No link of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn deactivate(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<LinkId>,
) -> Result<axum::Json<SharedLink>, ApiError> {
    let link = app.store.get_link(caller.tenant_id, id).await?;
    // Turned off here first, whatever the provider says (a failure is recorded by the
    // removal): of two rows standing for one provider link deleted at once, the later one then
    // finds no other active row and removes the provider link.
    let deactivated = app.store.deactivate_link(caller.tenant_id, id).await?;
    if link.is_active {
        let budget = app.current().await.map(|c| c.config.request_budget).unwrap_or(DEFAULT_REQUEST_BUDGET);
        let deadline = clock.deadline(budget);
        link_removal::remove_link(&app, &link, Need::Always, &deadline, Duration::ZERO, "delete_shared_link").await?;
    }
    Ok(axum::Json(deactivated))
}

/// Which request field a provider refusal is about. A password refusal can come from the
/// provider itself even after `supports_link_password` (OneDrive business drives take no link
/// passwords); every other refusal a provider makes before calling out is about the share type.
fn unsupported_field(request: &SharedLinkRequest, message: &str) -> &'static str {
    if request.password.is_some() && message.contains("password") { "password" } else { "share_type" }
}
