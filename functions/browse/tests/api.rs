//! The folder picker through its real router, fed API Gateway events from `events/browse/`,
//! against the wiremock fakes of every provider (`testkit::sync_fakes`: bodies shaped like
//! each provider's documented JSON, a model drive behind them).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use shared::db::{Connection, ConnectionPatch, ConnectionStatus, ProviderType};
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::providers::{ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN};
use testkit::sync_fakes::{
    Endpoint, FAKE_SITE, Fault, OTHER_LIBRARY, PREAUTH_SECRET, RemoteTree, SYNCED_FOLDER, mount,
};
use testkit::{Tenant, connect_with_tokens};
use wiremock::MockServer;

const ALL: [ProviderType; 5] =
    [ProviderType::OneDrive, ProviderType::SharePoint, ProviderType::GDrive, ProviderType::Dropbox, ProviderType::Box];

/// A tenant's connection to a fake provider whose drive is the fixtures' tree.
struct World {
    t: TestApp,
    server: MockServer,
    tree: RemoteTree,
    tenant: Tenant,
    connection: Connection,
    router: axum::Router,
}

async fn world(provider: ProviderType) -> World {
    let tree = RemoteTree::scenario(provider);
    let server = MockServer::start().await;
    let uri = server.uri();
    let t = TestApp::with_config(json!({ "providers": { provider.as_str(): {
        "client_id": "browse-client",
        "client_secret": CLIENT_SECRET,
        "token_url": format!("{uri}/token"),
        "api_base_url": uri,
    }}}))
    .await;
    mount(&server, &tree).await;
    let tenant = t.tenant().await;
    let metadata = tree.scope().connection_metadata;
    let connection =
        connect_with_tokens(&t.app, &tenant, provider, ACCESS_TOKEN, Some(REFRESH_TOKEN), Some(metadata)).await;
    let router = browse::router(t.app.clone());
    World { t, server, tree, tenant, connection, router }
}

impl World {
    fn items(&self, query: &str) -> ApiEvent {
        ApiEvent::load("browse/list-items")
            .caller(&self.tenant)
            .path(&format!("/connections/{}/items", self.connection.base.id))
            .query(query)
    }

    async fn list(&self, query: &str) -> Reply {
        call(&self.router, &self.items(query)).await
    }

    /// Every page of a listing, following `next_cursor`: the items' names in order.
    async fn list_all(&self, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut reply = self.list(query).await;
        loop {
            assert_eq!(reply.status, 200, "{}", reply.text);
            items.extend(reply.body["items"].as_array().unwrap().iter().cloned());
            match reply.body["next_cursor"].as_str() {
                Some(cursor) => reply = self.list(&format!("cursor={}", encode(cursor))).await,
                None => return items,
            }
        }
    }

    async fn create(&self, body: &Value) -> Reply {
        let event = ApiEvent::load("browse/create-folder")
            .caller(&self.tenant)
            .path(&format!("/connections/{}/items", self.connection.base.id))
            .json(body);
        call(&self.router, &event).await
    }

    async fn post_requests(&self) -> usize {
        self.server.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "POST").count()
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_provider_lists_the_root_and_a_folder_page_by_page() {
    for provider in ALL {
        // Arrange: the fakes answer two items a page, so every listing pages.
        let w = world(provider).await;
        let synced = w.tree.synced_folder_id();

        // Act
        let root = w.list_all("").await;
        let inside = w.list_all(&format!("parent_id={}&limit=2", encode(&synced))).await;
        let first = w.list(&format!("parent_id={}", encode(&synced))).await;

        // Assert
        assert_eq!(names(&root), ["Elsewhere", SYNCED_FOLDER], "{provider}: the root's children, folders first");
        assert!(root.iter().all(|i| i["kind"] == "folder"), "{provider}");
        assert_eq!(root[1]["id"], json!(synced), "{provider}: the id POST /folders takes");
        assert_eq!(root[1]["path"], json!(format!("/{SYNCED_FOLDER}")), "{provider}: a root child's path");
        let mut expected = vec!["Scenarios", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"];
        if provider == ProviderType::GDrive {
            expected.insert(1, "Model assumptions");
        }
        let mut listed = names(&inside);
        listed.sort_by_key(|n| (*n != "Scenarios", n.to_string()));
        let mut sorted = expected.clone();
        sorted.sort_by_key(|n| (*n != "Scenarios", n.to_string()));
        assert_eq!(listed, sorted, "{provider}: every child exactly once across the pages");
        let factory = inside.iter().find(|i| i["name"] == "factory-line.qsim").unwrap();
        let known = w.tree.expect("factory-line.qsim");
        assert_eq!(factory["id"], json!(known.id), "{provider}");
        assert_eq!(factory["kind"], "file", "{provider}");
        assert_eq!(factory["size"], json!(known.size), "{provider}");
        assert_eq!(factory["hash"], json!(known.hash), "{provider}: the provider's hash, lowercase hex");
        let algorithm = shared::content_hash::HashAlg::for_provider(provider).name();
        assert_eq!(factory["hash_algorithm"], json!(algorithm), "{provider}");
        let expected_path = json!(format!("/{SYNCED_FOLDER}/factory-line.qsim"));
        if provider == ProviderType::GDrive {
            // Drive keeps no paths; below the root it has none to give.
            assert_eq!(factory["path"], Value::Null, "{provider}");
        } else {
            assert_eq!(factory["path"], expected_path, "{provider}");
        }
        assert_eq!(first.body["parent"]["id"], json!(synced), "{provider}: the first page names the folder");
        assert_eq!(first.body["parent"]["kind"], "folder", "{provider}");
        assert!(!first.text.contains(PREAUTH_SECRET) && !first.text.contains(ACCESS_TOKEN), "{provider}");
    }
}

#[tokio::test]
async fn folders_only_keeps_the_folders() {
    for provider in ALL {
        // Arrange
        let w = world(provider).await;
        let synced = w.tree.synced_folder_id();

        // Act
        let folders = w.list_all(&format!("parent_id={}&folders_only=true", encode(&synced))).await;

        // Assert
        assert_eq!(names(&folders), ["Scenarios"], "{provider}");
        assert_eq!(folders[0]["id"], json!(w.tree.expect("Scenarios").id), "{provider}");
    }
}

#[tokio::test]
async fn a_parent_that_is_a_file_is_a_400_and_an_unknown_or_deleted_one_a_404() {
    for provider in ALL {
        // Arrange
        let w = world(provider).await;
        let file = w.tree.expect("factory-line.qsim").id;
        let scenarios = w.tree.expect("Scenarios").id;
        w.tree.delete("Scenarios");
        let unknown = match provider {
            ProviderType::Box => "999999999999".to_owned(),
            ProviderType::Dropbox => "id:NoSuchItem000".to_owned(),
            _ => "NoSuchItem000".to_owned(),
        };

        // Act
        let a_file = w.list(&format!("parent_id={}", encode(&file))).await;
        let deleted = w.list(&format!("parent_id={}", encode(&scenarios))).await;
        let nothing = w.list(&format!("parent_id={}", encode(&unknown))).await;

        // Assert
        assert_eq!((a_file.status, a_file.error_field()), (400, Some("parent_id")), "{provider}: {}", a_file.text);
        assert_eq!((deleted.status, deleted.error_field()), (404, Some("parent_id")), "{provider}: {}", deleted.text);
        assert_eq!((nothing.status, nothing.error_field()), (404, Some("parent_id")), "{provider}: {}", nothing.text);
    }
}

#[tokio::test]
async fn an_empty_folder_is_an_empty_page_without_a_cursor() {
    // Arrange
    let w = world(ProviderType::Box).await;
    let empty = w.tree.add_folder("Empty");

    // Act
    let reply = w.list(&format!("parent_id={empty}")).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["items"], json!([]));
    assert_eq!(reply.body["next_cursor"], Value::Null);
    assert_eq!(reply.body["parent"]["path"], json!(format!("/{SYNCED_FOLDER}/Empty")));
}

#[tokio::test]
async fn a_cursor_is_bound_to_its_connection_and_listing_and_cannot_be_altered() {
    // Arrange: a cursor of one connection, a second connection of the same tenant.
    let w = world(ProviderType::OneDrive).await;
    let first = w.list("limit=1").await;
    let cursor = first.body["next_cursor"].as_str().expect("the root pages").to_owned();
    let other = connect_with_tokens(
        &w.t.app,
        &w.tenant,
        ProviderType::OneDrive,
        ACCESS_TOKEN,
        Some(REFRESH_TOKEN),
        Some(w.tree.scope().connection_metadata),
    )
    .await;
    let mut altered = cursor.clone().into_bytes();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();

    // Act
    let on_other = call(
        &w.router,
        &w.items(&format!("cursor={}", encode(&cursor))).path(&format!("/connections/{}/items", other.base.id)),
    )
    .await;
    let tampered = w.list(&format!("cursor={}", encode(&altered))).await;
    let other_parent = w.list(&format!("cursor={}&parent_id=Elsewhere", encode(&cursor))).await;
    let same = w.list(&format!("cursor={}", encode(&cursor))).await;

    // Assert
    assert_eq!((on_other.status, on_other.error_field()), (400, Some("cursor")), "{}", on_other.text);
    assert!(on_other.text.contains("another connection"), "{}", on_other.text);
    assert_eq!((tampered.status, tampered.error_field()), (400, Some("cursor")), "{}", tampered.text);
    assert_eq!((other_parent.status, other_parent.error_field()), (400, Some("parent_id")), "{}", other_parent.text);
    assert_eq!(same.status, 200, "{}", same.text);
    assert_eq!(names(same.body["items"].as_array().unwrap()), [SYNCED_FOLDER]);
    assert!(!first.text.contains(&w.tree.drive_id()), "the cursor does not show the provider's link");
}

#[tokio::test]
async fn another_tenants_connection_is_not_found_on_every_route() {
    // Arrange
    let w = world(ProviderType::SharePoint).await;
    let stranger = w.t.tenant().await;
    let base = format!("/connections/{}", w.connection.base.id);

    // Act
    let replies = [
        call(&w.router, &w.items("").caller(&stranger)).await,
        call(&w.router, &ApiEvent::load("browse/create-folder").caller(&stranger).path(&format!("{base}/items"))).await,
        call(&w.router, &ApiEvent::load("browse/list-sites").caller(&stranger).path(&format!("{base}/sites"))).await,
        call(
            &w.router,
            &ApiEvent::load("browse/list-libraries")
                .caller(&stranger)
                .path(&format!("{base}/sites/{FAKE_SITE}/drives")),
        )
        .await,
    ];

    // Assert
    for reply in replies {
        assert_eq!((reply.status, reply.error_code()), (404, "not_found"), "{}", reply.text);
    }
    assert!(w.server.received_requests().await.unwrap().is_empty(), "nothing reached the provider");
}

#[tokio::test]
async fn every_provider_creates_a_folder_once_and_answers_the_existing_one_after() {
    for provider in ALL {
        // Arrange
        let w = world(provider).await;
        let synced = w.tree.synced_folder_id();

        // Act
        let created = w.create(&json!({ "parent_id": synced, "name": "Exports" })).await;
        let again = w.create(&json!({ "parent_id": synced, "name": "Exports" })).await;
        let at_root = w.create(&json!({ "name": "Quodsi Results" })).await;

        // Assert
        assert_eq!(created.status, 201, "{provider}: {}", created.text);
        let made = w.tree.expect("Exports");
        assert_eq!(created.body["id"], json!(made.id), "{provider}");
        assert_eq!(created.body["kind"], "folder", "{provider}");
        if provider != ProviderType::GDrive {
            assert_eq!(created.body["path"], json!(format!("/{SYNCED_FOLDER}/Exports")), "{provider}");
        }
        assert_eq!((again.status, again.error_code()), (409, "name_exists"), "{provider}: {}", again.text);
        assert_eq!(again.error_field(), Some("name"), "{provider}");
        assert_eq!(again.body["error"]["existing_id"], json!(made.id), "{provider}");
        let twins = w.list_all(&format!("parent_id={}", encode(&synced))).await;
        assert_eq!(names(&twins).iter().filter(|n| **n == "Exports").count(), 1, "{provider}: no twin");
        assert_eq!(at_root.status, 201, "{provider}: {}", at_root.text);
        assert_eq!(at_root.body["path"], json!("/Quodsi Results"), "{provider}");
        assert_eq!(w.tree.expect("/Quodsi Results").id, at_root.body["id"].as_str().unwrap(), "{provider}");
    }
}

#[tokio::test]
async fn a_name_the_provider_refuses_is_a_400_naming_it_before_any_provider_call() {
    let refused: [(ProviderType, &[&str]); 5] = [
        (ProviderType::OneDrive, &["a:b", "what?", " lead", "CON", "x_vti_y", "~$lock"]),
        (ProviderType::SharePoint, &["pipe|d", "quote\"d", "desktop.ini"]),
        (ProviderType::GDrive, &["a/b", ".."]),
        (ProviderType::Dropbox, &["star*", "trailing.", "models 📈"]),
        (ProviderType::Box, &["back\\slash", "trailing ", "."]),
    ];
    for (provider, names) in refused {
        // Arrange
        let w = world(provider).await;
        let before = w.post_requests().await;
        let long = "x".repeat(256);

        for name in names.iter().copied().chain([long.as_str(), "", "tab\tname"]) {
            // Act
            let reply = w.create(&json!({ "name": name })).await;

            // Assert
            assert_eq!((reply.status, reply.error_field()), (400, Some("name")), "{provider} {name:?}: {}", reply.text);
        }
        assert_eq!(w.post_requests().await, before, "{provider}: no folder creation reached the provider");
    }
}

#[tokio::test]
async fn bad_bodies_and_queries_are_a_400_naming_the_field() {
    // Arrange
    let w = world(ProviderType::Dropbox).await;

    // Act
    let unknown_field = w.create(&json!({ "name": "A", "color": "red" })).await;
    let missing_name = w.create(&json!({ "parent_id": "id:x" })).await;
    let empty_parent = w.create(&json!({ "parent_id": "", "name": "A" })).await;
    let bad_limit = w.list("limit=0").await;
    let empty_cursor = w.list("cursor=").await;
    let control = w.list("parent_id=%01").await;
    let bad_id = call(&w.router, &w.items("").path("/connections/not-a-uuid/items")).await;

    // Assert
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.text);
    assert_eq!(missing_name.status, 400, "{}", missing_name.text);
    assert_eq!((empty_parent.status, empty_parent.error_field()), (400, Some("parent_id")));
    assert_eq!((bad_limit.status, bad_limit.error_field()), (400, Some("limit")));
    assert_eq!((empty_cursor.status, empty_cursor.error_field()), (400, Some("cursor")));
    assert_eq!((control.status, control.error_field()), (400, Some("parent_id")));
    assert_eq!((bad_id.status, bad_id.error_field()), (400, Some("id")));
    assert_eq!(w.post_requests().await, 0, "nothing reached the provider");
}

#[tokio::test]
async fn sharepoint_sites_and_libraries_and_a_second_library_browsed_by_its_root_id() {
    // Arrange
    let w = world(ProviderType::SharePoint).await;
    let sites = |query: &str| {
        ApiEvent::load("browse/list-sites")
            .caller(&w.tenant)
            .path(&format!("/connections/{}/sites", w.connection.base.id))
            .query(query)
    };
    let libraries = ApiEvent::load("browse/list-libraries")
        .caller(&w.tenant)
        .path(&format!("/connections/{}/sites/{FAKE_SITE}/drives", w.connection.base.id));

    // Act
    let searched = call(&w.router, &sites("search=team%20a")).await;
    let all = call(&w.router, &sites("")).await;
    let listed = call(&w.router, &libraries).await;
    let other_root = listed.body["items"][1]["root_id"].as_str().unwrap_or_default().to_owned();
    let in_other = w.list_all(&format!("parent_id={}", encode(&other_root))).await;

    // Assert
    assert_eq!(searched.status, 200, "{}", searched.text);
    assert_eq!(names(searched.body["items"].as_array().unwrap()), ["Team A Site"]);
    assert_eq!(searched.body["items"][0]["id"], json!(FAKE_SITE));
    assert_eq!(searched.body["items"][0]["web_url"], "https://contoso.sharepoint.com/sites/siteA");
    assert_eq!(names(all.body["items"].as_array().unwrap()), ["Team A Site", "Team B Site"]);
    assert_eq!(listed.status, 200, "{}", listed.text);
    let libs = listed.body["items"].as_array().unwrap();
    assert_eq!(names(libs), ["Documents", "Models Library"]);
    assert_eq!(libs[0]["id"], json!(w.tree.drive_id()));
    assert_eq!(libs[0]["root_id"], "root", "the connection's own library keeps plain ids");
    assert_eq!(libs[1]["drive_type"], "documentLibrary");
    assert_eq!(other_root, format!("{OTHER_LIBRARY}:root"));
    let synced = in_other.iter().find(|i| i["name"] == SYNCED_FOLDER).expect("the library's root is listed");
    assert_eq!(
        synced["id"],
        json!(format!("{OTHER_LIBRARY}:{}", w.tree.synced_folder_id())),
        "an item of another library carries it"
    );
    let paths: BTreeSet<_> =
        w.server.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert!(
        paths.contains(&format!("/v1.0/drives/{OTHER_LIBRARY}/root")),
        "the root_id is read in its library: {paths:?}"
    );
    let root_children = format!("/v1.0/drives/{OTHER_LIBRARY}/items/01QDSIFAKEROOT0000000000000000000A/children");
    assert!(paths.contains(&root_children), "and listed there by its own id: {paths:?}");
}

#[tokio::test]
async fn sites_of_a_connection_that_is_not_sharepoint_are_a_400_and_an_unknown_site_a_404() {
    // Arrange
    let onedrive = world(ProviderType::OneDrive).await;
    let sharepoint = world(ProviderType::SharePoint).await;

    // Act
    let not_sharepoint = call(
        &onedrive.router,
        &ApiEvent::load("browse/list-sites")
            .caller(&onedrive.tenant)
            .path(&format!("/connections/{}/sites", onedrive.connection.base.id)),
    )
    .await;
    let unknown_site = call(
        &sharepoint.router,
        &ApiEvent::load("browse/list-libraries").caller(&sharepoint.tenant).path(&format!(
            "/connections/{}/sites/contoso.sharepoint.com,nope,nope/drives",
            sharepoint.connection.base.id
        )),
    )
    .await;

    // Assert
    assert_eq!((not_sharepoint.status, not_sharepoint.error_code()), (400, "unsupported_by_provider"));
    assert_eq!((unknown_site.status, unknown_site.error_field()), (404, Some("site_id")), "{}", unknown_site.text);
}

#[tokio::test]
async fn provider_failures_answer_429_with_retry_after_502_and_a_refresh_on_401() {
    for provider in ALL {
        // Arrange
        let w = world(provider).await;
        w.tree.inject(Endpoint::Children, Fault::RateLimited { retry_after_secs: 7 });
        let throttled = w.list("").await;
        w.tree.inject(Endpoint::Children, Fault::ServerError);
        let down = w.list("").await;
        w.tree.inject(Endpoint::Children, Fault::Unauthorized);

        // Act
        let refreshed = w.list("").await;

        // Assert
        assert_eq!((throttled.status, throttled.error_code()), (429, "provider_rate_limited"), "{provider}");
        assert_eq!(throttled.header("retry-after"), Some("7"), "{provider}");
        assert_eq!((down.status, down.error_code()), (502, "provider_error"), "{provider}: {}", down.text);
        assert_eq!(
            refreshed.status, 200,
            "{provider}: a 401 is answered by one refresh and a retry: {}",
            refreshed.text
        );
        assert!(w.tree.faults_served(), "{provider}");
    }
}

#[tokio::test]
async fn a_connection_that_is_not_active_is_a_409_and_an_unconfigured_provider_a_503() {
    // Arrange
    let w = world(ProviderType::Box).await;
    let patch = ConnectionPatch { status: Some(ConnectionStatus::Expired), ..ConnectionPatch::default() };
    w.t.store().update_connection(w.tenant.id, w.connection.base.id, &patch).await.unwrap();
    let unconfigured = connect_with_tokens(&w.t.app, &w.tenant, ProviderType::Dropbox, ACCESS_TOKEN, None, None).await;

    // Act
    let expired = w.list("").await;
    let no_provider = call(&w.router, &w.items("").path(&format!("/connections/{}/items", unconfigured.base.id))).await;

    // Assert
    assert_eq!((expired.status, expired.error_code()), (409, "connection_not_active"), "{}", expired.text);
    assert_eq!((no_provider.status, no_provider.error_code()), (503, "provider_unavailable"), "{}", no_provider.text);
    assert!(w.server.received_requests().await.unwrap().is_empty());
}
