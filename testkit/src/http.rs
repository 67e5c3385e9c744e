//! Driving a function's router the way Lambda does: an API Gateway HTTP API event from
//! `events/<function>/`, adjusted for the test (path, query, body, claims), parsed by
//! lambda_http into a request, and answered by the real router.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use shared::app::App;
use shared::config::{ConfigCache, ConfigSource};
use shared::db::Store;
use tower::ServiceExt as _;
use uuid::Uuid;

use crate::Tenant;

/// The repository's root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ is inside the repository").to_path_buf()
}

fn key_b64() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A configuration document with fresh random keys; `extra` is merged over it (providers,
/// allowlists).
pub fn config_json(database_url: &str, extra: Value) -> String {
    let mut doc = json!({
        "database_url": database_url,
        "token_keys": { "k1": key_b64() },
        "active_token_key": "k1",
        "oauth_state_key": key_b64(),
    });
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        doc.extend(extra);
    }
    doc.to_string()
}

/// A function's context over a fresh SQLite database in a temporary folder, with Quodsi's
/// object store in a directory beside it.
pub struct TestApp {
    pub app: Arc<App>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(json!({})).await
    }

    /// With extra configuration merged in (providers, allowlists, …).
    pub async fn with_config(extra: Value) -> TestApp {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite:{}", dir.path().join("quodsi.db").display());
        let cache = ConfigCache::new(
            ConfigSource::Inline(config_json(&url, extra).into()),
            std::time::Duration::from_secs(300),
        );
        let objects = shared::objects::Objects::from_url(&dir.path().join("objects").to_string_lossy())
            .expect("a local object store");
        let app = App::from_cache(cache).await.expect("test app").with_objects(objects);
        TestApp { app: Arc::new(app), _dir: dir }
    }

    /// The local object store's directory (keys are paths under it).
    pub fn objects_dir(&self) -> PathBuf {
        self._dir.path().join("objects")
    }

    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// Runs SQL on the test database past the store: to make a later statement fail (a
    /// trigger that aborts an INSERT), say.
    pub fn execute_sql(&self, sql: &str) {
        rusqlite::Connection::open(self.database_path()).expect("the test database").execute_batch(sql).expect(sql);
    }

    /// The SQLite file behind the store, for tests that read what is stored byte by byte.
    pub fn database_path(&self) -> PathBuf {
        self._dir.path().join("quodsi.db")
    }

    pub async fn tenant(&self) -> Tenant {
        Tenant::create(self.store()).await
    }
}

/// An API Gateway HTTP API event, loaded from `events/` and adjusted.
#[derive(Debug, Clone)]
pub struct ApiEvent(pub Value);

impl ApiEvent {
    /// `events/<name>.json`, e.g. `ApiEvent::load("sync-errors/list")`.
    pub fn load(name: &str) -> ApiEvent {
        let path = repo_root().join("events").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ApiEvent(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    /// The caller: `sub` and the tenant claim (named `tenant_id` by default).
    pub fn caller(mut self, t: &Tenant) -> ApiEvent {
        let claims = &mut self.0["requestContext"]["authorizer"]["jwt"]["claims"];
        claims["sub"] = json!(t.user.to_string());
        claims["tenant_id"] = json!(t.id.to_string());
        self
    }

    /// Sets or removes one claim.
    pub fn claim(mut self, name: &str, value: Option<&str>) -> ApiEvent {
        let claims = self.0["requestContext"]["authorizer"]["jwt"]["claims"].as_object_mut().expect("claims");
        match value {
            Some(v) => claims.insert(name.to_owned(), json!(v)),
            None => claims.remove(name),
        };
        self
    }

    /// No authorizer context at all (a public route, or a request that bypassed the
    /// authorizer).
    pub fn without_authorizer(mut self) -> ApiEvent {
        self.0["requestContext"].as_object_mut().expect("requestContext").remove("authorizer");
        self
    }

    pub fn method(mut self, method: &str) -> ApiEvent {
        self.0["requestContext"]["http"]["method"] = json!(method);
        self
    }

    pub fn path(mut self, path: &str) -> ApiEvent {
        self.0["rawPath"] = json!(path);
        self.0["requestContext"]["http"]["path"] = json!(path);
        self
    }

    /// Replaces the query string (`"a=1&b=2"`, already URL-encoded).
    pub fn query(mut self, query: &str) -> ApiEvent {
        self.0["rawQueryString"] = json!(query);
        let params: serde_json::Map<String, Value> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        if params.is_empty() {
            self.0.as_object_mut().expect("event").remove("queryStringParameters");
        } else {
            self.0["queryStringParameters"] = Value::Object(params);
        }
        self
    }

    /// Adds a cookie (`"name=value"`) the way API Gateway's v2 payload carries them: in the
    /// event's `cookies` list, which the runtime turns into the `Cookie` header.
    pub fn cookie(mut self, pair: &str) -> ApiEvent {
        let event = self.0.as_object_mut().expect("event");
        let cookies = event.entry("cookies").or_insert_with(|| json!([]));
        cookies.as_array_mut().expect("cookies is a list").push(json!(pair));
        self
    }

    /// A JSON body (sent as text, with its Content-Type).
    pub fn json(self, body: &Value) -> ApiEvent {
        self.raw_body(&body.to_string(), Some("application/json"))
    }

    /// A body as given, with the Content-Type given (or none).
    pub fn raw_body(mut self, body: &str, content_type: Option<&str>) -> ApiEvent {
        self.0["body"] = json!(body);
        self.0["isBase64Encoded"] = json!(false);
        let headers = self.0["headers"].as_object_mut().expect("headers");
        headers.insert("content-length".into(), json!(body.len().to_string()));
        match content_type {
            Some(ct) => headers.insert("content-type".into(), json!(ct)),
            None => headers.remove("content-type"),
        };
        self
    }

    pub fn without_body(mut self) -> ApiEvent {
        let ev = self.0.as_object_mut().expect("event");
        ev.remove("body");
        let headers = self.0["headers"].as_object_mut().expect("headers");
        headers.insert("content-length".into(), json!("0"));
        headers.remove("content-type");
        self
    }

    /// Parses the event the way the Lambda runtime does.
    pub fn request(&self) -> lambda_http::Request {
        lambda_http::request::from_str(&self.0.to_string()).expect("a valid API Gateway event")
    }
}

/// A router's answer, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error.code` of an error reply.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn error_field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `name=value` of the cookie the reply sets, as a browser would send it back.
    pub fn set_cookie_pair(&self) -> Option<&str> {
        self.header("set-cookie").and_then(|v| v.split(';').next())
    }
}

/// Sends the event through the router.
pub async fn call(router: &axum::Router, event: &ApiEvent) -> Reply {
    call_request(router, event.request()).await
}

/// Sends a request (an event's, with extensions added, such as the Lambda context) through
/// the router.
pub async fn call_request(router: &axum::Router, request: lambda_http::Request) -> Reply {
    let response = router.clone().oneshot(request).await.expect("routers are infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.expect("response body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}
