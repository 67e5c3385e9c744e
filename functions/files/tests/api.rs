//! The files API through its real router, fed API Gateway events from `events/files/`.

use std::collections::HashSet;

use serde_json::{Value, json};
use shared::db::{CloudFileFilter, FileId, FolderId, PageRequest, QuodsiFileType, SyncStatus};
use testkit::http::{ApiEvent, TestApp, call};
use testkit::{Graph, Tenant, new_connection, new_file, new_folder};
use uuid::Uuid;

fn create_body(folder_id: FolderId) -> Value {
    json!({
        "folder_id": folder_id.to_string(),
        "quodsi_file_type": "result",
        "provider_file_id": format!("file-{}", Uuid::new_v4().simple()),
        "file_name": "run-1.csv",
        "file_size_bytes": 10,
    })
}

fn create(t: &Tenant, body: &Value) -> ApiEvent {
    ApiEvent::load("files/create").caller(t).json(body)
}

fn at(name: &str, t: &Tenant, id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load(&format!("files/{name}")).caller(t).path(&format!("/files/{id}"))
}

async fn live_files(t: &TestApp, tenant: &Tenant) -> usize {
    t.store().list_files(tenant.id, &CloudFileFilter::default(), PageRequest::first(200)).await.unwrap().items.len()
}

async fn folder(t: &TestApp, tenant: &Tenant) -> FolderId {
    let conn = t.store().create_connection(&new_connection(tenant)).await.unwrap().base.id;
    t.store().create_folder(&new_folder(tenant, conn)).await.unwrap().base.id
}

#[tokio::test]
async fn the_event_file_records_a_file_in_the_callers_folder() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a).await;
    let event = ApiEvent::load("files/create").caller(&a);
    let mut body: Value = serde_json::from_str(event.0["body"].as_str().unwrap()).unwrap();
    body["folder_id"] = json!(folder_id.to_string());

    // Act
    let reply = call(&router, &event.json(&body)).await;

    // Assert
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["tenant_id"], json!(a.id.to_string()));
    assert_eq!(reply.body["folder_id"], json!(folder_id.to_string()));
    assert_eq!(reply.body["file_name"], "Factory line.qsm");
    assert_eq!(reply.body["file_size_bytes"], 48213);
    assert_eq!(reply.body["cloud_modified_at"], "2026-11-26T17:42:10Z");
    assert_eq!(reply.body["sync_status"], "synced");
    assert_eq!(reply.body["file_metadata"]["etag"], "\"{7C1A}\",3");
    assert!(reply.body["upload_url"].is_null());
    let id: FileId = reply.body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.store().get_file(a.id, id).await.unwrap().quodsi_file_type, QuodsiFileType::Model);
}

#[tokio::test]
async fn timestamps_with_an_offset_are_stored_in_utc() {
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let mut body = create_body(folder(&t, &a).await);
    body["cloud_created_at"] = json!("2026-11-27T05:30:00+02:00");

    let reply = call(&router, &create(&a, &body)).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["cloud_created_at"], "2026-11-27T03:30:00Z");
}

#[tokio::test]
async fn invalid_bodies_are_a_400_naming_the_field_and_write_nothing() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a).await;
    let with = |key: &str, value: Value| {
        let mut b = create_body(folder_id);
        b[key] = value;
        b
    };
    let without = |key: &str| {
        let mut b = create_body(folder_id);
        b.as_object_mut().unwrap().remove(key);
        b
    };
    let cases = [
        (with("file_name", json!("")), "file_name"),
        (with("file_name", json!("f".repeat(256))), "file_name"),
        // NVARCHAR(255) counts UTF-16 units: 128 emoji are 256 of them.
        (with("file_name", json!("😀".repeat(128))), "file_name"),
        (with("file_name", json!("a\u{0}.csv")), "file_name"),
        (without("file_name"), "file_name"),
        (with("provider_file_id", json!("")), "provider_file_id"),
        (with("provider_file_id", json!("p".repeat(256))), "provider_file_id"),
        (with("content_hash", json!("h".repeat(65))), "content_hash"),
        (with("mime_type", json!("m".repeat(256))), "mime_type"),
        (with("file_size_bytes", json!(-1)), "file_size_bytes"),
        (with("file_size_bytes", json!("10")), "file_size_bytes"),
        (without("file_size_bytes"), "file_size_bytes"),
        (with("quodsi_file_type", json!("video")), "quodsi_file_type"),
        (with("sync_status", json!("stale")), "sync_status"),
        (with("cloud_modified_at", json!("yesterday")), "cloud_modified_at"),
        (with("last_synced_at", json!("27/11/2026")), "last_synced_at"),
        (with("quodsi_entity_id", json!("model-7")), "quodsi_entity_id"),
        (with("file_metadata", json!(["a"])), "file_metadata"),
        (with("upload_url", json!("u".repeat(8193))), "upload_url"),
        (with("file_path", json!("p".repeat(4001))), "file_path"),
        (without("folder_id"), "folder_id"),
    ];

    for (body, field) in cases {
        // Act
        let reply = call(&router, &create(&a, &body)).await;

        // Assert
        assert_eq!(reply.status, 400, "{field}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
    }
    for key in ["tenant_id", "id", "is_deleted", "created_at"] {
        let reply = call(&router, &create(&a, &with(key, json!("2026-11-27T00:00:00Z")))).await;
        assert_eq!(reply.status, 400, "{key} is not accepted in a body: {}", reply.text);
    }
    let malformed = call(
        &router,
        &ApiEvent::load("files/create").caller(&a).raw_body("{\"file_name\": ", Some("application/json")),
    )
    .await;
    assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"));
    assert_eq!(live_files(&t, &a).await, 0, "nothing written");
    let boundary = call(&router, &create(&a, &with("content_hash", json!("h".repeat(64))))).await;
    assert_eq!(boundary.status, 201, "64 bytes fit: {}", boundary.text);
}

#[tokio::test]
async fn timestamps_outside_years_1_to_9999_are_a_400_naming_the_field_on_create() {
    // Arrange: year 0 fails SQL Server's encoding, year 10000 its DATETIME2, and both sort
    // wrongly as SQLite text; an offset can push an in-range local time out of range.
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a).await;
    let out_of_range = ["0000-06-01T00:00:00Z", "+10000-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00"];
    let mut cases = Vec::new();
    for field in ["cloud_created_at", "cloud_modified_at", "last_synced_at"] {
        for value in out_of_range {
            let mut body = create_body(folder_id);
            body[field] = json!(value);
            cases.push((field, value, body));
        }
    }

    for (field, value, body) in cases {
        // Act
        let reply = call(&router, &create(&a, &body)).await;

        // Assert
        assert_eq!((reply.status, reply.error_code()), (400, "invalid_field"), "{field}={value}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
        assert!(reply.body["error"]["message"].as_str().unwrap().contains("9999-12-31"), "{}", reply.text);
    }
    assert_eq!(live_files(&t, &a).await, 0, "nothing written");
    let mut edges = create_body(folder_id);
    edges["cloud_created_at"] = json!("0001-01-01T00:00:00Z");
    edges["cloud_modified_at"] = json!("9999-12-31T23:59:59.999999Z");
    let stored = call(&router, &create(&a, &edges)).await;
    assert_eq!(stored.status, 201, "the range's ends are accepted: {}", stored.text);
    assert_eq!(stored.body["cloud_created_at"], "0001-01-01T00:00:00Z");
    assert_eq!(stored.body["cloud_modified_at"], "9999-12-31T23:59:59.999999Z");
}

#[tokio::test]
async fn timestamps_outside_years_1_to_9999_are_a_400_naming_the_field_on_patch() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.file.base.id;

    for field in ["cloud_modified_at", "last_synced_at"] {
        for value in ["0000-12-31T23:59:59Z", "0001-01-01T00:00:00+00:01", "+10000-01-01T00:00:00Z"] {
            // Act
            let reply = call(&router, &at("patch", &a, id).json(&json!({ field: value }))).await;

            // Assert
            assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{field}={value}: {}", reply.text);
        }
    }
    assert_eq!(t.store().get_file(a.id, id).await.unwrap(), g.file, "nothing written");
}

#[tokio::test]
async fn a_body_with_anything_after_the_json_value_is_malformed_and_writes_nothing() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let body = create_body(folder(&t, &a).await).to_string();
    let trailing = [format!("{body} garbage"), format!("{body}{body}"), format!("{body}]")];

    for raw in &trailing {
        // Act
        let reply =
            call(&router, &ApiEvent::load("files/create").caller(&a).raw_body(raw, Some("application/json"))).await;

        // Assert
        assert_eq!((reply.status, reply.error_code()), (400, "malformed_json"), "{raw}: {}", reply.text);
    }
    assert_eq!(live_files(&t, &a).await, 0, "nothing written");
    let padded = call(
        &router,
        &ApiEvent::load("files/create").caller(&a).raw_body(&format!("{body} \n"), Some("application/json")),
    )
    .await;
    assert_eq!(padded.status, 201, "trailing whitespace is fine: {}", padded.text);
}

#[tokio::test]
async fn the_folder_must_be_a_live_folder_of_the_caller() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let theirs = folder(&t, &b).await;
    let deleted = folder(&t, &a).await;
    t.store().delete_folder(a.id, deleted).await.unwrap();

    // Act
    let replies = [
        call(&router, &create(&a, &create_body(theirs))).await,
        call(&router, &create(&a, &create_body(deleted))).await,
        call(&router, &create(&a, &create_body(FolderId::generate()))).await,
    ];

    // Assert
    for r in replies {
        assert_eq!((r.status, r.error_code(), r.error_field()), (404, "not_found", Some("folder_id")), "{}", r.text);
    }
    assert_eq!((live_files(&t, &a).await, live_files(&t, &b).await), (0, 0), "nothing written");
}

#[tokio::test]
async fn a_provider_file_is_recorded_once_per_folder() {
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let (one, two) = (folder(&t, &a).await, folder(&t, &a).await);
    let body = create_body(one);
    let mut elsewhere = body.clone();
    elsewhere["folder_id"] = json!(two.to_string());

    let first = call(&router, &create(&a, &body)).await;
    let again = call(&router, &create(&a, &body)).await;
    let other_folder = call(&router, &create(&a, &elsewhere)).await;

    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!((again.status, again.error_code(), again.error_field()), (409, "conflict", Some("provider_file_id")));
    assert_eq!(other_folder.status, 201, "{}", other_folder.text);
    assert_eq!(live_files(&t, &a).await, 2);
}

#[tokio::test]
async fn reads_changes_and_deletes_a_file() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.file.base.id;
    t.store()
        .update_file(
            a.id,
            id,
            &shared::db::CloudFilePatch { upload_url: Some(Some("https://up.example/x".into())), ..Default::default() },
        )
        .await
        .unwrap();

    // Act
    let read = call(&router, &at("get", &a, id)).await;
    let patched = call(&router, &ApiEvent::load("files/patch").caller(&a).path(&format!("/files/{id}"))).await;
    let cleared = call(
        &router,
        &at("patch", &a, id).json(&json!({"content_hash": null, "mime_type": null, "file_metadata": {"rev": 4}})),
    )
    .await;
    let deleted = call(&router, &at("delete", &a, id)).await;
    let after = call(&router, &at("get", &a, id)).await;
    let again = call(&router, &at("delete", &a, id)).await;

    // Assert
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["file_name"], "factory.qsm");
    assert_eq!(read.body["upload_url"], "https://up.example/x");
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["sync_status"], "needs_upload");
    assert_eq!(patched.body["file_size_bytes"], 50120);
    assert_eq!(patched.body["cloud_modified_at"], "2026-11-27T03:40:00Z");
    assert!(patched.body["upload_url"].is_null(), "explicit null clears it");
    assert_eq!(patched.body["file_name"], "factory.qsm", "absent fields are left alone");
    assert_eq!(patched.body["provider_file_id"], read.body["provider_file_id"]);
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert!(cleared.body["content_hash"].is_null() && cleared.body["mime_type"].is_null());
    assert_eq!(cleared.body["file_metadata"], json!({"rev": 4}));
    assert_eq!(cleared.body["sync_status"], "needs_upload");
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert!(deleted.body.get("is_deleted").is_none(), "deletion shows as the 404s after it: {}", deleted.text);
    assert_eq!((after.status, again.status), (404, 404));
    assert!(!t.store().get_link(a.id, g.link.base.id).await.unwrap().is_active, "links to the file are deactivated");
}

#[tokio::test]
async fn invalid_patches_are_a_400_naming_the_field_and_write_nothing() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.file.base.id;
    let cases = [
        (json!({"file_name": null}), "file_name"),
        (json!({"file_name": " "}), "file_name"),
        (json!({"file_name": "é".repeat(256)}), "file_name"),
        (json!({"file_size_bytes": -5}), "file_size_bytes"),
        (json!({"file_size_bytes": null}), "file_size_bytes"),
        (json!({"sync_status": null}), "sync_status"),
        (json!({"sync_status": "Synced"}), "sync_status"),
        (json!({"content_hash": "c".repeat(65)}), "content_hash"),
        (json!({"mime_type": "m".repeat(256)}), "mime_type"),
        (json!({"cloud_modified_at": "soon"}), "cloud_modified_at"),
        (json!({"last_synced_at": 1795751400}), "last_synced_at"),
        (json!({"download_url": "d".repeat(8193)}), "download_url"),
        (json!({"file_metadata": 3}), "file_metadata"),
    ];

    for (body, field) in cases {
        // Act
        let reply = call(&router, &at("patch", &a, id).json(&body)).await;

        // Assert
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{body}: {}", reply.text);
    }
    for key in ["tenant_id", "id", "folder_id", "provider_file_id", "quodsi_file_type", "cloud_created_at"] {
        let reply = call(&router, &at("patch", &a, id).json(&json!({ key: "x" }))).await;
        assert_eq!(reply.status, 400, "{key}: {}", reply.text);
    }
    let bad_id = call(&router, &at("patch", &a, "file-1").json(&json!({"file_name": "x"}))).await;
    assert_eq!((bad_id.status, bad_id.error_field()), (400, Some("id")));
    assert_eq!(t.store().get_file(a.id, id).await.unwrap(), g.file, "nothing written");
}

#[tokio::test]
async fn another_tenants_file_is_not_found_on_every_route() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.file.base.id;

    // Act
    let read = call(&router, &at("get", &b, id)).await;
    let patch = call(&router, &at("patch", &b, id).json(&json!({"sync_status": "conflict"}))).await;
    let delete = call(&router, &at("delete", &b, id)).await;
    let listed =
        call(&router, &ApiEvent::load("files/list").caller(&b).query(&format!("folder_id={}", g.folder.base.id))).await;
    let unknown =
        call(&router, &ApiEvent::load("files/list").caller(&b).query(&format!("folder_id={}", Uuid::new_v4()))).await;

    // Assert
    for r in [&read, &patch, &delete] {
        assert_eq!((r.status, r.error_code()), (404, "not_found"), "{}", r.text);
    }
    // A list filter naming another tenant's or an unknown folder is a 404 too (it was an
    // empty 200 page).
    for r in [&listed, &unknown] {
        assert_eq!((r.status, r.error_code(), r.error_field()), (404, "not_found", Some("folder_id")), "{}", r.text);
    }
    assert_eq!(t.store().get_file(a.id, id).await.unwrap(), g.file, "nothing written");
}

#[tokio::test]
async fn pages_return_every_file_exactly_once_and_filters_apply() {
    // Arrange
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    Graph::create(t.store(), &b).await;
    let folder_id = folder(&t, &a).await;
    let other_folder = folder(&t, &a).await;
    let entity = Uuid::new_v4();
    let mut expected = HashSet::new();
    for i in 0..8 {
        let mut f = new_file(&a, folder_id);
        if i % 2 == 0 {
            f.quodsi_file_type = QuodsiFileType::Result;
            f.sync_status = SyncStatus::NeedsUpload;
        }
        if i < 3 {
            f.quodsi_entity_id = Some(entity);
        }
        expected.insert(t.store().create_file(&f).await.unwrap().base.id.to_string());
    }
    t.store().create_file(&new_file(&a, other_folder)).await.unwrap();
    let list = |query: String| ApiEvent::load("files/list").caller(&a).query(&query);

    // Act
    let mut seen = Vec::new();
    let mut query = format!("folder_id={folder_id}&limit=3");
    let mut pages = 0;
    loop {
        let page = call(&router, &list(query.clone())).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => query = format!("folder_id={folder_id}&limit=3&cursor={c}"),
            None => break,
        }
    }
    // The event's folder is nobody's here (another tenant's or an unknown folder is a 404):
    // its query with the caller's folder instead.
    let event = ApiEvent::load("files/list").caller(&a);
    let event_query: Vec<String> = event.0["rawQueryString"]
        .as_str()
        .unwrap()
        .split('&')
        .map(|kv| if kv.starts_with("folder_id=") { format!("folder_id={folder_id}") } else { kv.to_owned() })
        .collect();
    let the_event = call(&router, &event.query(&event_query.join("&"))).await;
    let results = call(&router, &list("quodsi_file_type=result&sync_status=needs_upload".into())).await;
    let of_entity = call(&router, &list(format!("quodsi_entity_id={entity}"))).await;
    let everything = call(&router, &list(String::new())).await;

    // Assert
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);
    assert_eq!(the_event.status, 200, "{}", the_event.text);
    assert_eq!(results.body["items"].as_array().unwrap().len(), 4);
    assert_eq!(of_entity.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(everything.body["items"].as_array().unwrap().len(), 9, "both folders, none of tenant b");
    for (query, field) in [
        ("sync_status=dirty", "sync_status"),
        ("quodsi_file_type=movie", "quodsi_file_type"),
        ("quodsi_entity_id=7", "quodsi_entity_id"),
        ("folder_id=x", "folder_id"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let reply = call(&router, &list(query.into())).await;
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{query}: {}", reply.text);
    }
}

#[tokio::test]
async fn missing_claims_are_401() {
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;

    let no_token = call(&router, &ApiEvent::load("files/get").without_authorizer()).await;
    let no_sub = call(&router, &ApiEvent::load("files/list").caller(&a).claim("sub", None)).await;

    assert_eq!((no_token.status, no_token.error_code()), (401, "unauthorized"));
    assert_eq!((no_sub.status, no_sub.error_code()), (401, "unauthorized"));
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let t = TestApp::new().await;
    let router = files::router(t.app.clone());
    let a = t.tenant().await;

    // Act
    let reply = call(&router, &ApiEvent::load("files/patch").caller(&a).path("/files/%FF%FE")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}
