//! The folders API through its real router, fed API Gateway events from `events/folders/`.

use std::collections::HashSet;

use serde_json::{Value, json};
use shared::db::{
    Connection, ConnectionId, ConnectionPatch, ConnectionStatus, FolderFilter, FolderId, JobStatus, PageRequest,
    ProviderType,
};
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::providers::{ACCESS_TOKEN, REFRESH_TOKEN, mount_graph_folders, onedrive_at};
use testkit::{Graph, Tenant, connect_with_tokens, new_folder};
use uuid::Uuid;
use wiremock::MockServer;

/// The app with OneDrive at a fake drive in which every made-up id is a folder
/// (`testkit::providers::mount_graph_folders`): `POST /folders` asks the provider.
async fn app() -> (TestApp, MockServer) {
    let server = MockServer::start().await;
    mount_graph_folders(&server).await;
    (TestApp::with_config(onedrive_at(&server)).await, server)
}

/// An active OneDrive connection of `t` whose tokens the app can decrypt.
async fn connect(t: &TestApp, tenant: &Tenant) -> Connection {
    let metadata = json!({ "drive_id": "b!abc", "drive_type": "business" });
    connect_with_tokens(&t.app, tenant, ProviderType::OneDrive, ACCESS_TOKEN, Some(REFRESH_TOKEN), Some(metadata)).await
}

fn create_body(connection_id: ConnectionId) -> Value {
    json!({
        "connection_id": connection_id.to_string(),
        "folder_name": "Exports",
        "provider_folder_id": format!("fld-{}", Uuid::new_v4().simple()),
        "folder_type": "export",
    })
}

fn create(t: &Tenant, body: &Value) -> ApiEvent {
    ApiEvent::load("folders/create").caller(t).json(body)
}

fn at(name: &str, t: &Tenant, id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load(&format!("folders/{name}")).caller(t).path(&format!("/folders/{id}"))
}

async fn live_folders(t: &TestApp, tenant: &Tenant) -> usize {
    t.store().list_folders(tenant.id, &FolderFilter::default(), PageRequest::first(200)).await.unwrap().items.len()
}

fn defaults(reply: &Reply, flag: &str) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f[flag] == json!(true))
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn creates_a_folder_on_the_callers_active_connection() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await;

    // Act
    let reply = call(
        &router,
        &ApiEvent::load("folders/create").caller(&a).json(&json!({
            "connection_id": conn.base.id.to_string(),
            "folder_name": "Exports",
            "provider_folder_id": "01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K",
            "folder_path": "/Quodsi/Exports",
            "folder_type": "export",
            "auto_sync_enabled": true,
            "sync_frequency_minutes": 30,
        })),
    )
    .await;

    // Assert
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["tenant_id"], json!(a.id.to_string()));
    assert_eq!(reply.body["connection_id"], json!(conn.base.id.to_string()));
    assert_eq!(reply.body["folder_type"], "export");
    assert_eq!(reply.body["folder_permissions"], "read_write", "the seed's default");
    assert_eq!(reply.body["is_default_export_folder"], false);
    assert_eq!(reply.body["sync_frequency_minutes"], 30);
    assert!(reply.body["created_at"].as_str().unwrap().ends_with('Z'), "UTC RFC 3339");
    let id: FolderId = reply.body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.store().get_folder(a.id, id).await.unwrap().folder_name, "Exports");
}

#[tokio::test]
async fn the_event_file_creates_a_default_export_folder() {
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await;
    let mut event = ApiEvent::load("folders/create").caller(&a);
    let mut body: Value = serde_json::from_str(event.0["body"].as_str().unwrap()).unwrap();
    body["connection_id"] = json!(conn.base.id.to_string());
    event = event.json(&body);

    let reply = call(&router, &event).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["is_default_export_folder"], true);
    assert_eq!(reply.body["folder_path"], "/Folder 01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K", "the provider's path wins");
}

#[tokio::test]
async fn the_provider_folder_must_exist_as_a_folder_and_fills_in_name_path_and_canonical_id() {
    // Arrange
    let (t, drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await.base.id;
    let body = |id: &str| json!({ "connection_id": conn, "provider_folder_id": id, "folder_type": "models" });

    // Act
    let unknown = call(&router, &create(&a, &body("missing-01NKDM7H"))).await;
    let a_file = call(&router, &create(&a, &body("file-01NKDM7HKP7X"))).await;
    let named_by_provider = call(&router, &create(&a, &body("01NKDM7HBBQA4EIE"))).await;
    let root = call(&router, &create(&a, &body("root"))).await;
    let root_again = call(&router, &create(&a, &body("01ROOTFAKE0000000000000000000000AA"))).await;

    // Assert
    assert_eq!((unknown.status, unknown.error_field()), (404, Some("provider_folder_id")), "{}", unknown.text);
    assert_eq!((a_file.status, a_file.error_field()), (400, Some("provider_folder_id")), "{}", a_file.text);
    assert_eq!(named_by_provider.status, 201, "{}", named_by_provider.text);
    assert_eq!(named_by_provider.body["folder_name"], "Folder 01NKDM7HBBQA4EIE", "the provider's name by default");
    assert_eq!(named_by_provider.body["folder_path"], "/Folder 01NKDM7HBBQA4EIE");
    assert_eq!(root.status, 201, "{}", root.text);
    assert_eq!(
        root.body["provider_folder_id"], "01ROOTFAKE0000000000000000000000AA",
        "`root` is stored as its real id"
    );
    assert_eq!(root.body["folder_path"], "/");
    assert_eq!(
        (root_again.status, root_again.error_field()),
        (409, Some("provider_folder_id")),
        "the root named by its id is the same folder: {}",
        root_again.text
    );
    assert_eq!(live_folders(&t, &a).await, 2);
    let asked: Vec<String> = drive.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert!(asked.contains(&"/v1.0/drives/b!abc/items/missing-01NKDM7H".to_owned()), "{asked:?}");
}

#[tokio::test]
async fn a_provider_that_fails_is_answered_through_the_shared_mapping_and_nothing_is_written() {
    // Arrange
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(429)
                .insert_header("Retry-After", "12")
                .set_body_json(testkit::sync_fakes::fixture("graph/error_429.json", &server.uri())),
        )
        .mount(&server)
        .await;
    let t = TestApp::with_config(onedrive_at(&server)).await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await.base.id;

    // Act
    let reply = call(&router, &create(&a, &create_body(conn))).await;

    // Assert
    assert_eq!((reply.status, reply.error_code()), (429, "provider_rate_limited"), "{}", reply.text);
    assert_eq!(reply.header("retry-after"), Some("12"));
    assert_eq!(live_folders(&t, &a).await, 0);
}

#[tokio::test]
async fn invalid_bodies_are_a_400_naming_the_field_and_write_nothing() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await.base.id;
    let with = |key: &str, value: Value| {
        let mut b = create_body(conn);
        b[key] = value;
        b
    };
    let without = |key: &str| {
        let mut b = create_body(conn);
        b.as_object_mut().unwrap().remove(key);
        b
    };
    let cases = [
        (with("folder_name", json!("")), "folder_name"),
        (with("folder_name", json!("   ")), "folder_name"),
        (with("folder_name", json!("x".repeat(256))), "folder_name"),
        // VARCHAR(255) under a UTF-8 collation holds 255 bytes: 128 'é' are 256.
        (with("folder_name", json!("é".repeat(128))), "folder_name"),
        (with("folder_name", json!("a\u{0}b")), "folder_name"),
        (with("provider_folder_id", json!("")), "provider_folder_id"),
        (without("provider_folder_id"), "provider_folder_id"),
        (with("provider_folder_id", json!("p".repeat(256))), "provider_folder_id"),
        (with("provider_folder_id", json!("file-01NKDM7HKP7XY67AEMFYZEKICTPMXTIFNL")), "provider_folder_id"),
        (with("folder_type", json!("Export")), "folder_type"),
        (with("folder_type", json!("backup")), "folder_type"),
        (with("folder_permissions", json!("admin")), "folder_permissions"),
        (with("sync_frequency_minutes", json!(4)), "sync_frequency_minutes"),
        (with("sync_frequency_minutes", json!(10081)), "sync_frequency_minutes"),
        (with("connection_id", json!("not-a-uuid")), "connection_id"),
        (with("is_default_export_folder", json!("yes")), "is_default_export_folder"),
        (with("folder_path", json!("p".repeat(4001))), "folder_path"),
    ];

    for (body, field) in cases {
        // Act
        let reply = call(&router, &create(&a, &body)).await;

        // Assert
        assert_eq!(reply.status, 400, "{field}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
    }
    for key in ["tenant_id", "id", "index_id", "last_sync_at"] {
        let reply = call(&router, &create(&a, &with(key, json!(Uuid::new_v4().to_string())))).await;
        assert_eq!(reply.status, 400, "{key} is not accepted in a body: {}", reply.text);
    }
    let malformed = call(
        &router,
        &ApiEvent::load("folders/create").caller(&a).raw_body("{\"folder_name\":", Some("application/json")),
    )
    .await;
    assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"));
    let boundary = call(&router, &create(&a, &with("sync_frequency_minutes", json!(10080)))).await;
    assert_eq!(boundary.status, 201, "10080 is allowed: {}", boundary.text);
    assert_eq!(live_folders(&t, &a).await, 1, "only the boundary case was written");
}

#[tokio::test]
async fn the_connection_must_be_the_callers_and_active() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let theirs = connect(&t, &b).await.base.id;
    let revoked = connect(&t, &a).await.base.id;
    let patch = ConnectionPatch { status: Some(ConnectionStatus::Revoked), ..Default::default() };
    t.store().update_connection(a.id, revoked, &patch).await.unwrap();

    // Act
    let other_tenant = call(&router, &create(&a, &create_body(theirs))).await;
    let unknown = call(&router, &create(&a, &create_body(ConnectionId::generate()))).await;
    let inactive = call(&router, &create(&a, &create_body(revoked))).await;

    // Assert
    assert_eq!((other_tenant.status, other_tenant.error_code()), (404, "not_found"), "{}", other_tenant.text);
    assert_eq!(other_tenant.error_field(), Some("connection_id"));
    assert_eq!((unknown.status, unknown.error_field()), (404, Some("connection_id")));
    assert_eq!((inactive.status, inactive.error_code()), (409, "connection_not_active"), "{}", inactive.text);
    assert_eq!(inactive.error_field(), Some("connection_id"));
    assert_eq!(live_folders(&t, &a).await, 0);
    assert_eq!(live_folders(&t, &b).await, 0);
}

#[tokio::test]
async fn a_provider_folder_is_configured_once_per_connection() {
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await.base.id;
    let body = create_body(conn);

    let first = call(&router, &create(&a, &body)).await;
    let second = call(&router, &create(&a, &body)).await;

    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!((second.status, second.error_code()), (409, "conflict"), "{}", second.text);
    assert_eq!(second.error_field(), Some("provider_folder_id"));
    assert_eq!(live_folders(&t, &a).await, 1);
}

#[tokio::test]
async fn a_new_default_folder_replaces_the_previous_one() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await.base.id;
    let default_body = |flag: &str| {
        let mut b = create_body(conn);
        b[flag] = json!(true);
        b
    };

    // Act
    let first = call(&router, &create(&a, &default_body("is_default_export_folder"))).await;
    let second = call(&router, &create(&a, &default_body("is_default_export_folder"))).await;
    let import1 = call(&router, &create(&a, &default_body("is_default_import_folder"))).await;
    let import2 = call(&router, &create(&a, &default_body("is_default_import_folder"))).await;
    let back = call(
        &router,
        &at("patch", &a, first.body["id"].as_str().unwrap()).json(&json!({"is_default_export_folder": true})),
    )
    .await;
    let all = call(&router, &ApiEvent::load("folders/list").caller(&a).query(&format!("connection_id={conn}"))).await;

    // Assert
    for r in [&first, &second, &import1, &import2] {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(defaults(&all, "is_default_export_folder"), vec![first.body["id"].as_str().unwrap().to_owned()]);
    assert_eq!(defaults(&all, "is_default_import_folder"), vec![import2.body["id"].as_str().unwrap().to_owned()]);
}

// Two worker threads and spawned requests, so the two transactions really overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_requests_leave_exactly_one_default_export_folder() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let conn = connect(&t, &a).await.base.id;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(t.store().create_folder(&new_folder(&a, conn)).await.unwrap().base.id);
    }
    let make_default = |id: FolderId| at("patch", &a, id).json(&json!({"is_default_export_folder": true}));

    for round in 0..3 {
        // Act
        let spawn = |event: ApiEvent| {
            let router = router.clone();
            tokio::spawn(async move { call(&router, &event).await })
        };
        let (x, y) = (spawn(make_default(ids[round])), spawn(make_default(ids[round + 1])));
        let (rx, ry) = tokio::join!(x, y);
        let (rx, ry) = (rx.unwrap(), ry.unwrap());

        // Assert
        assert_eq!((rx.status, ry.status), (200, 200), "{} / {}", rx.text, ry.text);
        let all = call(&router, &ApiEvent::load("folders/list").caller(&a).query("")).await;
        let d = defaults(&all, "is_default_export_folder");
        assert_eq!(d.len(), 1, "round {round}: {d:?}");
        assert!([ids[round], ids[round + 1]].map(|i| i.to_string()).contains(&d[0]));
    }
}

#[tokio::test]
async fn reads_changes_and_deletes_a_folder() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.folder.base.id;

    // Act
    let read = call(&router, &at("get", &a, id)).await;
    let patched = call(&router, &ApiEvent::load("folders/patch").caller(&a).path(&format!("/folders/{id}"))).await;
    let permissions =
        call(&router, &at("patch", &a, id).json(&json!({"folder_permissions": "read_only", "folder_type": "archive"})))
            .await;
    let deleted = call(&router, &at("delete", &a, id)).await;
    let after = call(&router, &at("get", &a, id)).await;
    let again = call(&router, &at("delete", &a, id)).await;

    // Assert
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["folder_name"], "Models");
    assert_eq!(read.body["folder_path"], "/Quodsi/Models");
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["folder_name"], "Exports (archived)");
    assert!(patched.body["folder_path"].is_null(), "explicit null clears it");
    assert_eq!(patched.body["auto_sync_enabled"], true);
    assert_eq!(patched.body["sync_frequency_minutes"], 60);
    assert_eq!(patched.body["provider_folder_id"], read.body["provider_folder_id"]);
    assert_ne!(patched.body["updated_at"], read.body["updated_at"]);
    assert_eq!(permissions.body["folder_permissions"], "read_only");
    assert_eq!(permissions.body["folder_type"], "archive");
    assert_eq!(permissions.body["folder_name"], "Exports (archived)", "absent fields are left alone");
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert!(deleted.body.get("is_deleted").is_none(), "deletion shows as the 404s after it: {}", deleted.text);
    assert_eq!((after.status, again.status), (404, 404));
    let job = t.store().get_job(a.id, g.job.base.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled, "deleting the folder cancels its live job");
    assert!(!t.store().get_link(a.id, g.link.base.id).await.unwrap().is_active, "and deactivates links into it");
}

#[tokio::test]
async fn invalid_patches_are_a_400_naming_the_field_and_write_nothing() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.folder.base.id;
    let mut auto = new_folder(&a, g.connection.base.id);
    auto.auto_sync_enabled = true;
    auto.sync_frequency_minutes = Some(60);
    let auto = t.store().create_folder(&auto).await.unwrap().base.id;
    let cases = [
        (id, json!({"folder_name": null}), "folder_name"),
        (id, json!({"folder_name": ""}), "folder_name"),
        (id, json!({"folder_name": "n".repeat(256)}), "folder_name"),
        (id, json!({"folder_type": null}), "folder_type"),
        (id, json!({"folder_type": "Models"}), "folder_type"),
        (id, json!({"folder_permissions": "everything"}), "folder_permissions"),
        (id, json!({"is_default_export_folder": null}), "is_default_export_folder"),
        (id, json!({"auto_sync_enabled": true, "sync_frequency_minutes": 4}), "sync_frequency_minutes"),
        (auto, json!({"sync_frequency_minutes": 20000}), "sync_frequency_minutes"),
        (id, json!({"folder_path": 7}), "folder_path"),
    ];

    for (target, body, field) in cases {
        // Act
        let reply = call(&router, &at("patch", &a, target).json(&body)).await;

        // Assert
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
    }
    for key in ["tenant_id", "id", "connection_id", "provider_folder_id", "last_sync_at"] {
        let reply = call(&router, &at("patch", &a, id).json(&json!({ key: Uuid::new_v4().to_string() }))).await;
        assert_eq!(reply.status, 400, "{key}: {}", reply.text);
    }
    let bad_id = call(&router, &at("patch", &a, "not-a-uuid").json(&json!({"folder_name": "x"}))).await;
    assert_eq!((bad_id.status, bad_id.error_field()), (400, Some("id")));
    assert_eq!(t.store().get_folder(a.id, id).await.unwrap(), g.folder, "nothing written");
    let still_auto = t.store().get_folder(a.id, auto).await.unwrap();
    assert_eq!((still_auto.auto_sync_enabled, still_auto.sync_frequency_minutes), (true, Some(60)));
}

#[tokio::test]
async fn auto_sync_without_a_frequency_syncs_every_60_minutes() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let mut body = create_body(connect(&t, &a).await.base.id);
    body["auto_sync_enabled"] = json!(true);
    let existing = g.folder.base.id;

    // Act
    let created = call(&router, &create(&a, &body)).await;
    let switched_on = call(&router, &at("patch", &a, existing).json(&json!({"auto_sync_enabled": true}))).await;
    let cleared = call(&router, &at("patch", &a, existing).json(&json!({"sync_frequency_minutes": null}))).await;
    let switched_off = call(&router, &at("patch", &a, existing).json(&json!({"auto_sync_enabled": false}))).await;

    // Assert
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        (created.body["auto_sync_enabled"].clone(), created.body["sync_frequency_minutes"].clone()),
        (json!(true), json!(60))
    );
    assert_eq!(
        (switched_on.status, switched_on.body["sync_frequency_minutes"].clone()),
        (200, json!(60)),
        "{}",
        switched_on.text
    );
    assert_eq!((cleared.status, cleared.body["sync_frequency_minutes"].clone()), (200, json!(60)), "{}", cleared.text);
    assert_eq!(
        (switched_off.status, switched_off.body["sync_frequency_minutes"].clone()),
        (200, json!(60)),
        "{}",
        switched_off.text
    );
}

#[tokio::test]
async fn another_tenants_folder_is_not_found_on_every_route() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.folder.base.id;

    // Act
    let read = call(&router, &at("get", &b, id)).await;
    let patch = call(&router, &at("patch", &b, id).json(&json!({"is_default_export_folder": true}))).await;
    let delete = call(&router, &at("delete", &b, id)).await;
    let listed = call(
        &router,
        &ApiEvent::load("folders/list").caller(&b).query(&format!("connection_id={}", g.connection.base.id)),
    )
    .await;
    let unknown =
        call(&router, &ApiEvent::load("folders/list").caller(&b).query(&format!("connection_id={}", Uuid::new_v4())))
            .await;

    // Assert
    for r in [&read, &patch, &delete] {
        assert_eq!((r.status, r.error_code()), (404, "not_found"), "{}", r.text);
    }
    // A list filter naming another tenant's or an unknown connection is a 404 too (it was an
    // empty 200 page).
    for r in [&listed, &unknown] {
        assert_eq!(
            (r.status, r.error_code(), r.error_field()),
            (404, "not_found", Some("connection_id")),
            "{}",
            r.text
        );
    }
    assert_eq!(t.store().get_folder(a.id, id).await.unwrap(), g.folder, "nothing written");
}

#[tokio::test]
async fn pages_return_every_folder_exactly_once_and_filters_apply() {
    // Arrange
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let c1 = connect(&t, &a).await.base.id;
    let c2 = connect(&t, &a).await.base.id;
    let mut expected = HashSet::new();
    for i in 0..7 {
        let mut f = new_folder(&a, c1);
        if i % 3 == 0 {
            f.folder_type = shared::db::FolderType::Results;
        }
        expected.insert(t.store().create_folder(&f).await.unwrap().base.id.to_string());
    }
    t.store().create_folder(&new_folder(&a, c2)).await.unwrap();
    let cb = connect(&t, &b).await.base.id;
    t.store().create_folder(&new_folder(&b, cb)).await.unwrap();

    // Act
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("connection_id={c1}&limit=3&cursor={c}"),
            None => format!("connection_id={c1}&limit=3"),
        };
        let page = call(&router, &ApiEvent::load("folders/list").caller(&a).query(&query)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let results = call(&router, &ApiEvent::load("folders/list").caller(&a).query("folder_type=results")).await;
    let everything = call(&router, &ApiEvent::load("folders/list").caller(&a).query("")).await;

    // Assert
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(results.body["items"].as_array().unwrap().len(), 3);
    assert!(results.body["items"].as_array().unwrap().iter().all(|f| f["folder_type"] == "results"));
    assert_eq!(everything.body["items"].as_array().unwrap().len(), 8, "both connections, none of tenant b");
}

#[tokio::test]
async fn bad_list_queries_are_a_400_naming_the_parameter() {
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=bogus", "cursor"),
        ("connection_id=42", "connection_id"),
        ("folder_type=music", "folder_type"),
    ] {
        let reply = call(&router, &ApiEvent::load("folders/list").caller(&a).query(query)).await;
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{query}: {}", reply.text);
    }
    let unknown = call(&router, &ApiEvent::load("folders/list").caller(&a).query("tenant_id=x")).await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
}

#[tokio::test]
async fn missing_claims_are_401_and_unknown_routes_404() {
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;

    let no_token = call(&router, &ApiEvent::load("folders/list").without_authorizer()).await;
    let no_tenant = call(&router, &ApiEvent::load("folders/list").caller(&a).claim("tenant_id", None)).await;
    let nowhere = call(&router, &ApiEvent::load("folders/list").caller(&a).path("/folderz")).await;

    assert_eq!((no_token.status, no_token.error_code()), (401, "unauthorized"));
    assert_eq!((no_tenant.status, no_tenant.error_code()), (401, "unauthorized"));
    assert_eq!((nowhere.status, nowhere.error_code()), (404, "not_found"));
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let (t, _drive) = app().await;
    let router = folders::router(t.app.clone());
    let a = t.tenant().await;

    // Act
    let reply = call(&router, &ApiEvent::load("folders/get").caller(&a).path("/folders/%FF")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}
