//! The local run: every HTTP function's router behind one listener, with the same routes as
//! `template.yaml` (a test holds the two together), the development authorizer in front of
//! the routes API Gateway protects, and the timed functions on their schedules.

pub mod auth;
pub mod setup;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::{MethodFilter, on};
use shared::app::App;
use tower::ServiceExt as _;

pub use auth::DevAuth;

/// The app and authorizer of the local run in `dir` (made on first use: configuration, keys,
/// database): the configuration file's, with Quodsi's copies of synced files in a directory
/// beside the database unless the environment names another store.
pub async fn open(dir: &std::path::Path) -> Result<(Arc<App>, DevAuth), String> {
    use shared::config::{ConfigCache, ConfigSource, DEFAULT_TTL};

    let files = setup::ensure(dir).map_err(|e| format!("cannot prepare {}: {e}", dir.display()))?;
    let cache = ConfigCache::new(ConfigSource::File(files.config.clone()), DEFAULT_TTL);
    let mut app =
        App::from_cache(cache).await.map_err(|e| format!("{}: {}", files.config.display(), shared::error_chain(&e)))?;
    if std::env::var(shared::app::OBJECTS_URL_ENV).is_err() {
        let objects = shared::objects::Objects::from_url(&files.objects.to_string_lossy())
            .map_err(|e| format!("{}: {}", files.objects.display(), shared::error_chain(&e)))?;
        app = app.with_objects(objects);
    }
    let secret = setup::read_jwt_secret(&files.jwt_secret).map_err(|e| e.to_string())?;
    let claim = app.current().await.map_err(|e| e.to_string())?.config.tenant_claim.clone();
    Ok((Arc::new(app), DevAuth::new(secret, claim)))
}

/// Who answers a route, and whether API Gateway's JWT authorizer guards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub function: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub public: bool,
}

const fn private(function: &'static str, method: &'static str, path: &'static str) -> Route {
    Route { function, method, path, public: false }
}

const fn public(function: &'static str, method: &'static str, path: &'static str) -> Route {
    Route { function, method, path, public: true }
}

/// The HTTP API of `template.yaml`, route by route.
pub const ROUTES: &[Route] = &[
    private("oauth-authorize", "POST", "/connections/{provider}/authorize"),
    public("oauth-callback", "GET", "/oauth/callback/{provider}"),
    private("connections", "GET", "/connections"),
    private("connections", "GET", "/connections/{id}"),
    private("connections", "PATCH", "/connections/{id}"),
    private("connections", "DELETE", "/connections/{id}"),
    private("browse", "GET", "/connections/{id}/items"),
    private("browse", "POST", "/connections/{id}/items"),
    private("browse", "GET", "/connections/{id}/sites"),
    private("browse", "GET", "/connections/{id}/sites/{site_id}/drives"),
    private("folders", "POST", "/folders"),
    private("folders", "GET", "/folders"),
    private("folders", "GET", "/folders/{id}"),
    private("folders", "PATCH", "/folders/{id}"),
    private("folders", "DELETE", "/folders/{id}"),
    private("sync-jobs", "POST", "/sync-jobs"),
    private("sync-jobs", "GET", "/sync-jobs"),
    private("sync-jobs", "GET", "/sync-jobs/{id}"),
    private("sync-jobs", "PATCH", "/sync-jobs/{id}"),
    private("sync-jobs", "POST", "/sync-jobs/{id}/cancel"),
    private("files", "POST", "/files"),
    private("files", "GET", "/files"),
    private("files", "GET", "/files/{id}"),
    private("files", "GET", "/files/{id}/content"),
    private("files", "POST", "/files/{id}/upload-url"),
    private("files", "PATCH", "/files/{id}"),
    private("files", "DELETE", "/files/{id}"),
    private("shared-links", "POST", "/shared-links"),
    private("shared-links", "GET", "/shared-links"),
    private("shared-links", "GET", "/shared-links/{id}"),
    private("shared-links", "DELETE", "/shared-links/{id}"),
    public("link-redirect", "GET", "/links/{id}"),
    private("sync-errors", "GET", "/sync-errors"),
    private("sync-errors", "GET", "/sync-errors/{id}"),
    private("sync-errors", "POST", "/sync-errors/{id}/resolve"),
    public("webhooks", "POST", "/webhooks/graph"),
    public("webhooks", "GET", "/webhooks/dropbox"),
    public("webhooks", "POST", "/webhooks/dropbox"),
    public("webhooks", "POST", "/webhooks/box"),
    public("webhooks", "POST", "/webhooks/gdrive"),
];

/// The router of one function, by its name.
fn router_of(name: &str, app: &Arc<App>) -> Router {
    match name {
        "oauth-authorize" => oauth_authorize::router(app.clone()),
        "oauth-callback" => oauth_callback::router(app.clone()),
        "connections" => connections::router(app.clone()),
        "browse" => browse::router(app.clone()),
        "folders" => folders::router(app.clone()),
        "sync-jobs" => sync_jobs::router(app.clone()),
        "files" => files::router(app.clone()),
        "shared-links" => shared_links::router(app.clone()),
        "link-redirect" => link_redirect::router(app.clone()),
        "sync-errors" => sync_errors::router(app.clone()),
        "webhooks" => webhooks::router(app.clone()),
        other => unreachable!("ROUTES names a function the local run does not know: {other}"),
    }
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PATCH" => MethodFilter::PATCH,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => unreachable!("ROUTES uses a method the local run does not map: {other}"),
    }
}

/// The timed functions of `template.yaml` and how often EventBridge fires them.
pub const SCHEDULES: &[(&str, std::time::Duration)] = &[
    (token_refresh::FUNCTION, std::time::Duration::from_secs(5 * 60)),
    (auto_sync_trigger::FUNCTION, std::time::Duration::from_secs(60)),
    (link_expiry::FUNCTION, std::time::Duration::from_secs(15 * 60)),
];

/// Settings of the timed functions and the sync worker, read from the environment once, as
/// each Lambda does at cold start.
pub struct TimedSettings {
    token_refresh: token_refresh::Settings,
    auto_sync_trigger: auto_sync_trigger::Settings,
    link_expiry: link_expiry::Settings,
    sync_worker: sync_worker::Settings,
}

impl TimedSettings {
    pub fn from_env() -> Result<TimedSettings, String> {
        Ok(TimedSettings {
            token_refresh: token_refresh::Settings::from_env().map_err(|e| e.to_string())?,
            auto_sync_trigger: auto_sync_trigger::Settings::from_env().map_err(|e| e.to_string())?,
            link_expiry: link_expiry::Settings::from_env().map_err(|e| e.to_string())?,
            sync_worker: sync_worker::Settings::from_env().map_err(|e| e.to_string())?,
        })
    }
}

/// Runs one timed function once, as its schedule would, and returns its report.
pub async fn run_timed(app: &App, settings: &TimedSettings, name: &str) -> Option<shared::schedule::Report> {
    Some(match name {
        token_refresh::FUNCTION => token_refresh::run(app, &settings.token_refresh).await,
        auto_sync_trigger::FUNCTION => auto_sync_trigger::run(app, &settings.auto_sync_trigger).await,
        link_expiry::FUNCTION => link_expiry::run(app, &settings.link_expiry).await,
        sync_worker::FUNCTION => sync_worker::run_waiting(app, &settings.sync_worker, WORKER_BATCH).await,
        _ => return None,
    })
}

/// Jobs the local worker takes per round.
const WORKER_BATCH: u16 = 10;
/// How often the local worker looks for waiting jobs: no queue wakes it, so it polls.
pub const WORKER_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The sync worker, in-process: every [`WORKER_POLL`] it runs the jobs waiting for a worker
/// (in AWS an SQS queue hands them to the `sync-worker` function).
pub fn spawn_worker(app: Arc<App>, settings: Arc<TimedSettings>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(WORKER_POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let report = sync_worker::run_waiting(&app, &settings.sync_worker, WORKER_BATCH).await;
            if report.scanned > 0 {
                tracing::info!(
                    function = sync_worker::FUNCTION,
                    scanned = report.scanned,
                    acted = report.acted,
                    failed = report.failed,
                    "sync jobs run"
                );
            }
        }
    });
}

/// Fires every timed function on its schedule until the process ends.
pub fn spawn_schedules(app: Arc<App>, settings: Arc<TimedSettings>) {
    for &(name, every) in SCHEDULES {
        let (app, settings) = (Arc::clone(&app), Arc::clone(&settings));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                if let Some(report) = run_timed(&app, &settings, name).await {
                    tracing::info!(
                        function = name,
                        scanned = report.scanned,
                        acted = report.acted,
                        skipped = report.skipped,
                        failed = report.failed,
                        duration_ms = report.duration_ms,
                        "scheduled run"
                    );
                }
            }
        });
    }
}

/// The request as API Gateway would deliver it to the function: this router's own
/// extensions (its matched path parameters above all, which the function's router would
/// otherwise see twice) are dropped; only the verified claims travel on.
fn as_delivered(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    let claims = parts.extensions.remove::<shared::api::VerifiedClaims>();
    parts.extensions = axum::http::Extensions::new();
    if let Some(claims) = claims {
        parts.extensions.insert(claims);
    }
    Request::from_parts(parts, body)
}

/// Every route of [`ROUTES`], each handed whole (path and all) to its function's router, as
/// API Gateway hands the event to the function.
pub fn router(app: Arc<App>, auth: DevAuth) -> Router {
    let mut guarded = Router::new();
    let mut open = Router::new();
    for route in ROUTES {
        let target = router_of(route.function, &app);
        let handler = on(method_filter(route.method), move |req: Request| {
            let target = target.clone();
            async move { target.oneshot(as_delivered(req)).await.unwrap_or_else(|never| match never {}) }
        });
        if route.public {
            open = open.route(route.path, handler);
        } else {
            guarded = guarded.route(route.path, handler);
        }
    }
    // S3 takes the PUT of a presigned upload URL in AWS; locally this does, on the sealed token
    // the files function put in the URL (it is the credential, as S3's signature is).
    let uploads = {
        let app = app.clone();
        axum::routing::put(move |axum::extract::Path(token): axum::extract::Path<String>, body: axum::body::Body| {
            local_upload(app.clone(), token, body)
        })
    };
    // Outside the request span, which logs the path: the token in it is a credential.
    let uploads = Router::new().route(&format!("{}/{{token}}", files::upload::LOCAL_UPLOAD_PATH), uploads);
    let guarded =
        guarded.layer(axum::middleware::from_fn(move |req, next| auth::require_token(auth.clone(), req, next)));
    open.merge(guarded)
        .fallback(shared::api::no_route)
        .layer(axum::middleware::from_fn(shared::telemetry::request_span))
        .merge(uploads)
}

/// `PUT /local-uploads/{token}`: the bytes of an upload URL the files function made, written to
/// the key its token names; a token that does not open or has expired is a 403, as S3 answers a
/// bad or expired signature.
async fn local_upload(app: Arc<App>, token: String, body: axum::body::Body) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    let refused = |status: StatusCode, message: &str| {
        (status, axum::Json(serde_json::json!({ "error": { "code": "upload_refused", "message": message } })))
            .into_response()
    };
    let Ok(current) = app.current().await else {
        return refused(StatusCode::SERVICE_UNAVAILABLE, "the configuration cannot be read");
    };
    let Some((_, key)) = files::upload::open(&current.state_sealer, &token, app.store.now()) else {
        return refused(StatusCode::FORBIDDEN, "the upload URL is not valid or has expired");
    };
    let Ok(objects) = app.objects() else {
        return refused(StatusCode::SERVICE_UNAVAILABLE, "no object store is configured");
    };
    match objects.put_stream(&key, body.into_data_stream()).await {
        Ok(put) => {
            let mut answer = StatusCode::OK.into_response();
            if let Some(tag) = put.e_tag.and_then(|t| axum::http::HeaderValue::from_str(&t).ok()) {
                answer.headers_mut().insert(axum::http::header::ETAG, tag);
            }
            answer
        }
        Err(e) => {
            tracing::error!(error = %shared::error_chain(&e), "a local upload failed");
            refused(StatusCode::SERVICE_UNAVAILABLE, "the bytes could not be stored")
        }
    }
}
