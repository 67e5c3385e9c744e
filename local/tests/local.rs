//! The local run: its routes are template.yaml's, its authorizer lets through only tokens it
//! signed, and it serves over real TCP.

use std::collections::BTreeSet;
use std::sync::Arc;

use quodsi_local::{DevAuth, ROUTES};
use serde_yaml_ng::Value;
use shared::app::App;
use testkit::Tenant;

/// (function, method, path, public) of every HttpApi event in template.yaml.
fn template_routes() -> BTreeSet<(String, String, String, bool)> {
    let path = testkit::http::repo_root().join("template.yaml");
    let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for (_, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
        for (_, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            let public = p["Auth"]["Authorizer"].as_str() == Some("NONE");
            out.insert((
                binary.clone(),
                p["Method"].as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
                public,
            ));
        }
    }
    out
}

#[test]
fn the_local_routes_are_the_templates() {
    let local: BTreeSet<_> =
        ROUTES.iter().map(|r| (r.function.to_owned(), r.method.to_owned(), r.path.to_owned(), r.public)).collect();

    let template = template_routes();

    assert!(!template.is_empty());
    let only_template: Vec<_> = template.difference(&local).collect();
    let only_local: Vec<_> = local.difference(&template).collect();
    assert!(
        only_template.is_empty() && only_local.is_empty(),
        "routes in template.yaml only: {only_template:?}\nroutes in the local run only: {only_local:?}"
    );
}

async fn local_app(dir: &std::path::Path) -> (Arc<App>, DevAuth) {
    quodsi_local::open(dir).await.expect("the local run opens")
}

#[tokio::test]
async fn first_start_writes_private_files_and_a_second_keeps_them() {
    let dir = tempfile::tempdir().unwrap();

    let first = quodsi_local::setup::ensure(dir.path()).unwrap();
    let config = std::fs::read_to_string(&first.config).unwrap();
    let again = quodsi_local::setup::ensure(dir.path()).unwrap();

    assert_eq!(std::fs::read_to_string(&again.config).unwrap(), config, "never overwritten");
    shared::config::Config::from_json(&config).expect("a valid configuration");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&first.jwt_secret).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&first.config).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn serves_over_tcp_with_the_development_authorizer() {
    // Arrange: the local server on a free loopback port.
    let dir = tempfile::tempdir().unwrap();
    let (app, auth) = local_app(dir.path()).await;
    let tenant = Tenant::create(&app.store).await;
    let token = auth.sign(tenant.id.0, tenant.user.0, chrono::Duration::minutes(5));
    let expired = auth.sign(tenant.id.0, tenant.user.0, chrono::Duration::minutes(-5));
    let foreign = DevAuth::new(vec![7; 32], "tenant_id").sign(tenant.id.0, tenant.user.0, chrono::Duration::minutes(5));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, quodsi_local::router(app, auth)).into_future());
    let http = reqwest::Client::new();
    let get = |bearer: Option<String>| {
        let mut req = http.get(format!("{base}/sync-errors?limit=5"));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };

    // Act
    let auth_token = token.clone();
    let ok = get(Some(token)).await.unwrap();
    let ok_status = ok.status().as_u16();
    let ok_body: serde_json::Value = ok.json().await.unwrap();
    let missing = get(None).await.unwrap().status().as_u16();
    let stale = get(Some(expired)).await.unwrap().status().as_u16();
    let forged = get(Some(foreign)).await.unwrap().status().as_u16();
    let unknown = http.get(format!("{base}/nope")).send().await.unwrap().status().as_u16();
    // A route with a path parameter reaches the function with exactly its own parameters.
    let by_id = http
        .get(format!("{base}/sync-errors/{}", uuid::Uuid::new_v4()))
        .bearer_auth(auth_token.clone())
        .send()
        .await
        .unwrap();
    let by_id_status = by_id.status().as_u16();
    let by_id_body: serde_json::Value = by_id.json().await.unwrap();
    server.abort();

    // Assert
    assert_eq!(ok_status, 200, "{ok_body}");
    assert_eq!(ok_body["items"], serde_json::json!([]));
    assert_eq!((missing, stale, forged), (401, 401, 401));
    assert_eq!(unknown, 404);
    assert_eq!((by_id_status, by_id_body["error"]["code"].as_str()), (404, Some("not_found")), "{by_id_body}");
}

#[tokio::test]
async fn an_upload_url_takes_the_new_bytes_locally_and_the_file_then_needs_upload() {
    // Arrange: a synced file whose Quodsi copy is in the local store, the server on loopback.
    let dir = tempfile::tempdir().unwrap();
    let (app, auth) = local_app(dir.path()).await;
    let tenant = Tenant::create(&app.store).await;
    let other = Tenant::create(&app.store).await;
    let connection = app.store.create_connection(&testkit::new_connection(&tenant)).await.unwrap();
    let folder = app.store.create_folder(&testkit::new_folder(&tenant, connection.base.id)).await.unwrap();
    let key = shared::objects::ObjectKey::for_file(tenant.id, folder.base.id, &["model.qsim"]).unwrap();
    let objects = app.objects().unwrap().clone();
    let old = objects
        .put_stream(&key, futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"v1"))]))
        .await
        .unwrap();
    let mut new = testkit::new_file(&tenant, folder.base.id);
    new.file_path = Some("model.qsim".into());
    new.file_metadata = Some(serde_json::json!({ "object_key": key.as_str(), "object_etag": old.e_tag }));
    let file = app.store.create_file(&new).await.unwrap();
    let token = auth.sign(tenant.id.0, tenant.user.0, chrono::Duration::minutes(5));
    let others = auth.sign(other.id.0, other.user.0, chrono::Duration::minutes(5));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, quodsi_local::router(app.clone(), auth)).into_future());
    let http = reqwest::Client::new();
    let ask =
        |bearer: String| http.post(format!("{base}/files/{}/upload-url", file.base.id)).bearer_auth(bearer).send();
    let read = || http.get(format!("{base}/files/{}", file.base.id)).bearer_auth(token.clone()).send();

    // Act
    let foreign = ask(others).await.unwrap().status().as_u16();
    let made = ask(token.clone()).await.unwrap();
    let (made_status, no_store) =
        (made.status().as_u16(), made.headers()["cache-control"].to_str().unwrap().to_owned());
    let made: serde_json::Value = made.json().await.unwrap();
    let url = reqwest::Url::parse(made["upload_url"].as_str().unwrap()).unwrap();
    let before: serde_json::Value = read().await.unwrap().json().await.unwrap();
    // The token with its last character changed (to another one, always).
    let mut forged_path = url.path().to_owned();
    let last = forged_path.pop().unwrap();
    forged_path.push(if last == 'A' { 'B' } else { 'A' });
    let forged = http.put(format!("{base}{forged_path}")).body("evil").send().await.unwrap().status().as_u16();
    let put = http.put(format!("{base}{}", url.path())).body("version two").send().await.unwrap();
    let put_status = put.status().as_u16();
    let after: serde_json::Value = read().await.unwrap().json().await.unwrap();
    // A file in conflict keeps its state when new bytes arrive: a sync settles it.
    app.store
        .update_file(
            tenant.id,
            file.base.id,
            &shared::db::CloudFilePatch { sync_status: Some(shared::db::SyncStatus::Conflict), ..Default::default() },
        )
        .await
        .unwrap();
    let again: serde_json::Value = ask(token.clone()).await.unwrap().json().await.unwrap();
    let again = reqwest::Url::parse(again["upload_url"].as_str().unwrap()).unwrap();
    http.put(format!("{base}{}", again.path())).body("version three").send().await.unwrap();
    let conflict: serde_json::Value = read().await.unwrap().json().await.unwrap();
    server.abort();

    // Assert
    assert_eq!(foreign, 404, "another tenant's file");
    assert_eq!((made_status, no_store.as_str(), made["method"].as_str()), (201, "no-store", Some("PUT")), "{made}");
    assert!(url.path().starts_with("/local-uploads/"), "{url}");
    assert_eq!(before["sync_status"], "synced", "nothing arrived yet");
    let kept = before["upload_url"].as_str().unwrap();
    assert!(!kept.contains(url.path().rsplit('/').next().unwrap()), "the row keeps no token: {kept}");
    assert_eq!(forged, 403, "an altered token writes nothing");
    assert_eq!(put_status, 200);
    assert_eq!(after["sync_status"], "needs_upload", "recognised by the object's new entity tag: {after}");
    assert!(after["upload_url"].is_null());
    assert_eq!((conflict["sync_status"].as_str(), conflict["upload_url"].is_null()), (Some("conflict"), true));
    let stored = objects.get_range(&key, 0..13, None).await.unwrap();
    assert_eq!(&stored[..], b"version three");
}
