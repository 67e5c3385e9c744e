//! The providers' sync calls (start cursor, children pages, change pages, streamed downloads)
//! through the `Registry` against the test kit's tree fakes (`testkit::sync_fakes`), and
//! known-answer parsing of the documented bodies in `testkit/fixtures/`.
//!
//! Expected items come from the fake's model (`RemoteTree::expect`), and the hashes of the
//! fixture contents are also checked against the fixture README's table, so a model and a
//! parser that agree on a wrong value still fail.

use std::time::Duration;

use futures_util::StreamExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use shared::content_hash::{ContentHasher, HashAlg};
use shared::db::ProviderType;
use shared::providers::{Change, ChangePage, ItemKind, Provider, ProviderError, Registry, RemoteItem, SyncScope};
use testkit::providers::{ACCESS_TOKEN, NEW_ACCESS_TOKEN, REFRESH_TOKEN};
use testkit::sync_fakes::{
    Endpoint, Family, Fault, PREAUTH_PATH, PREAUTH_SECRET, RemoteTree, Scope, TreeItem, access_token, fixture,
    fixture_content, mount, registry,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fake of one provider with its tree mounted, and a registry pointed at it.
struct Setup {
    server: MockServer,
    tree: RemoteTree,
    registry: Registry,
    kind: ProviderType,
    scope: Scope,
}

impl Setup {
    async fn scenario(kind: ProviderType) -> Setup {
        Setup::with_tree(RemoteTree::scenario(kind)).await
    }

    async fn with_tree(tree: RemoteTree) -> Setup {
        let server = MockServer::start().await;
        mount(&server, &tree).await;
        let kind = tree.kind();
        let registry = registry(&server, kind);
        let scope = tree.scope();
        Setup { server, tree, registry, kind, scope }
    }

    fn provider(&self) -> &dyn Provider {
        self.registry.get(self.kind).expect("configured provider")
    }

    fn scope(&self) -> SyncScope<'_> {
        self.scope.as_scope()
    }

    /// Every page of `folder_id`'s children, and how many pages there were.
    async fn crawl_folder(&self, folder_id: &str) -> (Vec<RemoteItem>, usize) {
        let (mut items, mut pages, mut next) = (Vec::new(), 0, None::<String>);
        loop {
            let page = self
                .provider()
                .list_children(&access_token(), &self.scope(), folder_id, next.as_deref())
                .await
                .unwrap_or_else(|e| panic!("{}: children of {folder_id}: {e}", self.kind));
            pages += 1;
            items.extend(page.items);
            match page.next {
                Some(n) => next = Some(n),
                None => return (items, pages),
            }
            assert!(pages < 100, "{}: paging does not end", self.kind);
        }
    }

    /// Every change page from `cursor` until the one that carries the next cursor (Box's
    /// stream pages carry it on every page: followed while `next` is set).
    async fn changes_from(&self, cursor: &str) -> (Vec<Change>, Vec<ChangePage>, String) {
        let (mut changes, mut pages, mut at) = (Vec::new(), Vec::new(), cursor.to_owned());
        loop {
            let page = self
                .provider()
                .changes(&access_token(), &self.scope(), &at)
                .await
                .unwrap_or_else(|e| panic!("{}: changes: {e}", self.kind));
            changes.extend(page.changes.clone());
            pages.push(page.clone());
            match (page.next, page.cursor) {
                (Some(next), _) => at = next,
                (None, Some(cursor)) => return (changes, pages, cursor),
                (None, None) => panic!("{}: a change page with neither next nor cursor", self.kind),
            }
            assert!(pages.len() < 100, "{}: change paging does not end", self.kind);
        }
    }

    async fn start_cursor(&self) -> String {
        self.provider()
            .start_cursor(&access_token(), &self.scope())
            .await
            .unwrap_or_else(|e| panic!("{}: start cursor: {e}", self.kind))
    }

    async fn one_change_page(&self, cursor: &str) -> Result<ChangePage, ProviderError> {
        self.provider().changes(&access_token(), &self.scope(), cursor).await
    }
}

/// What the provider must report for an item of the model. Dropbox names no parent in a
/// change (`in_change`); in a listing the parent is the folder listed.
fn expected(kind: ProviderType, item: &TreeItem, in_change: bool) -> RemoteItem {
    let dropbox = Family::of(kind) == Family::Dropbox;
    let file = item.kind == ItemKind::File;
    RemoteItem {
        id: item.id.clone(),
        name: item.name.clone(),
        kind: item.kind,
        parent_id: if dropbox && in_change { None } else { item.parent_id.clone() },
        path_lower: dropbox.then(|| item.path.to_lowercase()),
        path_display: dropbox.then(|| item.path.clone()),
        size: file.then_some(item.size),
        hash: item.hash.clone(),
        revision: item.revision.clone(),
        mime_type: item.mime_type.clone(),
        created_at: item.created_at,
        modified_at: item.modified_at,
        downloadable: item.downloadable,
    }
}

fn by_name(items: &[RemoteItem], name: &str) -> RemoteItem {
    items.iter().find(|i| i.name == name).cloned().unwrap_or_else(|| panic!("no `{name}` in {items:#?}"))
}

/// The fixture README's hashes of the scenario's contents, for `kind`'s algorithm (hex).
fn readme_hash(kind: ProviderType, unit: &str) -> &'static str {
    let table: &[(&str, [&str; 4])] = &[
        // (unit, [md5, sha1, dropbox, quickXor hex])
        (
            "factory-line.qsim",
            [
                "80f04d187565e0859384366ef0e35af1",
                "f56e4f9049be25e44cc4880f82f6623a51ef52f0",
                "33bb8ecab82ab0c39912a1539a84a213ba3a5f8d14b6038183d764e2787b0370",
                "79dc4f749276d0261aa5dbc3f0ddcd8b2cc4e8fc",
            ],
        ),
        (
            "factory-line.qsim v2",
            [
                "f8da00468c2048e1e5a21d09e3714f3a",
                "712342dba881d11a12648548ce3899607b4371d2",
                "bc786784c479622f7ff963dd7a11586e29c0b8d2a5712900ee461cf90fab18c0",
                "55f4f6ff05423b557750ef9155d77b523b21d321",
            ],
        ),
        (
            "throughput-results.csv",
            [
                "1571e51f399add6f27dbc39f0bb6ba1f",
                "7f72b56b5b29a8f5df458d66b44f301ffa933afe",
                "447df9e8bbdc8f9c1badd0c01d6db1caa34d9494e870afec599ce3283d713b7c",
                "a18a535a283eb2672e176fcfeab695543bad5134",
            ],
        ),
        (
            "baseline.qsim",
            [
                "b831c1bc359ce8d39ddf2a2d9cce54b7",
                "86b63575aad7c50a5e55d3c305b65c00a7a99d15",
                "40119745fcce93211aa36a3126c173940c75e759e76314af252e66193b4a90e1",
                "5696331c86e344d175df976549ea7e9aaad25459",
            ],
        ),
    ];
    let column = match HashAlg::for_provider(kind) {
        HashAlg::Md5 => 0,
        HashAlg::Sha1 => 1,
        HashAlg::Dropbox => 2,
        HashAlg::QuickXor => 3,
    };
    table.iter().find(|(u, _)| *u == unit).map(|(_, h)| h[column]).unwrap_or_else(|| panic!("no README row {unit}"))
}

/// Reads a download to the end: the bytes and the number of chunks the stream yielded.
async fn read_download(download: shared::providers::Download) -> (Vec<u8>, usize) {
    let mut body = download.body;
    let (mut bytes, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.expect("download chunk"));
        chunks += 1;
    }
    (bytes, chunks)
}

fn provider_hash(kind: ProviderType, bytes: &[u8]) -> String {
    let mut hasher = ContentHasher::new(HashAlg::for_provider(kind));
    hasher.update(bytes);
    hasher.finish().provider
}

fn assert_no_secret(kind: ProviderType, text: &str) {
    for secret in [ACCESS_TOKEN, PREAUTH_SECRET, PREAUTH_PATH] {
        assert!(!text.contains(secret), "{kind}: `{secret}` leaked into: {text}");
    }
}

fn upserted(changes: &[Change]) -> Vec<&RemoteItem> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(item) => Some(item),
            Change::Deleted { .. } => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Dropbox

#[tokio::test]
async fn dropbox_crawl_pages_through_both_levels() {
    // Arrange
    let s = Setup::scenario(ProviderType::Dropbox).await;
    let synced = s.tree.synced_folder_id();

    // Act
    let (top, top_pages) = s.crawl_folder(&synced).await;
    let scenarios = by_name(&top, "Scenarios");
    let (below, below_pages) = s.crawl_folder(&scenarios.id).await;

    // Assert
    assert_eq!(top_pages, 2, "4 children in pages of 2");
    assert_eq!(below_pages, 1);
    let expected_top: Vec<RemoteItem> =
        ["Scenarios", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"]
            .iter()
            .map(|p| expected(s.kind, &s.tree.expect(p), false))
            .collect();
    assert_eq!(top, expected_top);
    assert_eq!(below, vec![expected(s.kind, &s.tree.expect("Scenarios/baseline.qsim"), false)]);
    // Anchors independent of the model: the README's hash, Dropbox's path keys, the types.
    let factory = by_name(&top, "factory-line.qsim");
    assert_eq!(factory.hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim")));
    assert_eq!(factory.size, Some(48213));
    assert_eq!(factory.path_lower.as_deref(), Some("/quodsi models/factory-line.qsim"));
    assert_eq!(factory.parent_id.as_deref(), Some(synced.as_str()));
    assert_eq!(below[0].hash.as_deref(), Some(readme_hash(s.kind, "baseline.qsim")));
    assert_eq!(below[0].parent_id.as_deref(), Some(scenarios.id.as_str()));
    assert_eq!(
        (scenarios.kind, scenarios.size, scenarios.hash.clone(), scenarios.revision.clone()),
        (ItemKind::Folder, None, None, None)
    );
    assert!(!scenarios.downloadable);

    // The documented request shapes: a non-recursive first page with the maximum limit, then
    // `continue` with the cursor.
    let requests = s.server.received_requests().await.unwrap();
    let first = requests.iter().find(|r| r.url.path() == "/2/files/list_folder").unwrap();
    assert_eq!(
        first.body_json::<Value>().unwrap(),
        json!({ "path": synced, "recursive": false, "include_deleted": false, "limit": 2000 })
    );
    assert!(requests.iter().any(|r| r.url.path() == "/2/files/list_folder/continue"));
}

#[tokio::test]
async fn dropbox_changes_are_the_edit_the_move_the_rename_and_the_delete_only() {
    // Arrange
    let s = Setup::scenario(ProviderType::Dropbox).await;
    s.tree.set_page_size(100);
    let cursor = s.start_cursor().await;
    s.tree.modify("factory-line.qsim", fixture_content("factory-line.qsim v2", 49877));
    s.tree.move_to("warehouse-layout.qsim", "Scenarios");
    s.tree.rename("Scenarios/baseline.qsim", "baseline-v1.qsim");
    s.tree.delete("throughput-results.csv");
    s.tree.modify("/Elsewhere/notes.txt", "outside the synced folder");

    // Act
    let (changes, pages, next_cursor) = s.changes_from(&cursor).await;

    // Assert
    let deleted = |path: &str| Change::Deleted { id: None, path_lower: Some(path.to_owned()) };
    let upsert = |p: &str| Change::Upsert(expected(s.kind, &s.tree.expect(p), true));
    assert_eq!(
        changes,
        vec![
            deleted("/quodsi models/scenarios/baseline.qsim"),
            deleted("/quodsi models/throughput-results.csv"),
            deleted("/quodsi models/warehouse-layout.qsim"),
            upsert("factory-line.qsim"),
            upsert("Scenarios/baseline-v1.qsim"),
            upsert("Scenarios/warehouse-layout.qsim"),
        ]
    );
    assert_eq!(pages.len(), 1);
    let factory = upserted(&changes)[0].clone();
    assert_eq!(factory.hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim v2")));
    assert_eq!(factory.parent_id, None, "Dropbox changes name paths, not parents");
    assert_ne!(next_cursor, cursor);
    let (after, _, _) = s.changes_from(&next_cursor).await;
    assert_eq!(after, vec![], "nothing changed since the new cursor");

    // The cursor was taken recursively on the folder's path, with deleted entries.
    let requests = s.server.received_requests().await.unwrap();
    let latest = requests.iter().find(|r| r.url.path() == "/2/files/list_folder/get_latest_cursor").unwrap();
    assert_eq!(
        latest.body_json::<Value>().unwrap(),
        json!({ "path": "/Quodsi Models", "recursive": true, "include_deleted": true })
    );
}

#[tokio::test]
async fn dropbox_change_pages_carry_next_until_the_last_carries_the_cursor() {
    // Arrange
    let s = Setup::scenario(ProviderType::Dropbox).await;
    let cursor = s.start_cursor().await;
    for i in 0..5 {
        s.tree.add_file(&format!("new-{i}.qsim"), format!("model {i}"));
    }

    // Act
    let (changes, pages, _) = s.changes_from(&cursor).await;

    // Assert: 5 entries in pages of 2: next, next, then the cursor.
    let shape: Vec<(usize, bool, bool)> =
        pages.iter().map(|p| (p.changes.len(), p.next.is_some(), p.cursor.is_some())).collect();
    assert_eq!(shape, vec![(2, true, false), (2, true, false), (1, false, true)]);
    let names: Vec<&str> = upserted(&changes).iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["new-0.qsim", "new-1.qsim", "new-2.qsim", "new-3.qsim", "new-4.qsim"]);
}

#[tokio::test]
async fn dropbox_reset_is_a_resync() {
    // Arrange
    let s = Setup::scenario(ProviderType::Dropbox).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::Resync);

    // Act
    let error = s.one_change_page(&cursor).await.unwrap_err();

    // Assert
    assert!(matches!(error, ProviderError::ResyncRequired(_)), "{error:?}");
    assert_eq!(error.error_code().as_deref(), Some("resync_required"));
    assert!(s.tree.faults_served());
}

#[tokio::test]
async fn dropbox_download_streams_the_bytes_whose_hash_was_listed() {
    // Arrange: a file over one 4 MiB block, so Dropbox's block hash and the streaming matter.
    let s = Setup::scenario(ProviderType::Dropbox).await;
    let content = fixture_content("big.qsim", 4 * 1024 * 1024 + 1000);
    s.tree.add_file("big.qsim", content.clone());
    let (items, _) = s.crawl_folder(&s.tree.synced_folder_id()).await;
    let big = by_name(&items, "big.qsim");

    // Act
    let download = s.provider().download(&access_token(), &s.scope(), &big).await.unwrap();
    let size = download.size;
    let (bytes, chunks) = read_download(download).await;

    // Assert
    assert_eq!(bytes, content);
    assert_eq!(size, Some(content.len() as u64));
    assert!(chunks > 1, "the body arrives in chunks, not as one buffer ({chunks})");
    assert_eq!(Some(provider_hash(s.kind, &bytes)), big.hash);
    let requests = s.server.received_requests().await.unwrap();
    let call = requests.iter().find(|r| r.url.path() == "/2/files/download").unwrap();
    assert_eq!(call.headers["dropbox-api-arg"].to_str().unwrap(), format!(r#"{{"path":"{}"}}"#, big.id));
    assert_eq!(call.headers["authorization"].to_str().unwrap(), format!("Bearer {ACCESS_TOKEN}"));
}

#[tokio::test]
async fn dropbox_throttling_and_expired_tokens_are_classified() {
    // Arrange
    let s = Setup::scenario(ProviderType::Dropbox).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::RateLimited { retry_after_secs: 7 });
    s.tree.inject(Endpoint::Changes, Fault::Unauthorized);
    s.tree.inject(Endpoint::Download, Fault::RateLimited { retry_after_secs: 3 });
    let file = expected(s.kind, &s.tree.expect("factory-line.qsim"), false);

    // Act
    let throttled = s.one_change_page(&cursor).await.unwrap_err();
    let expired = s.one_change_page(&cursor).await.unwrap_err();
    let throttled_download = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap_err();
    let recovered = s.one_change_page(&cursor).await;

    // Assert
    assert_eq!(throttled, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(7)) });
    assert!(
        matches!(&expired, ProviderError::Rejected { status: 401, code: Some(c), .. } if c == "expired_access_token"),
        "{expired:?}"
    );
    assert_eq!(throttled_download, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(3)) });
    assert!(recovered.is_ok(), "each fault is served once: {recovered:?}");
}

#[tokio::test]
async fn dropbox_rate_limit_without_header_takes_the_bodys_retry_after() {
    // Arrange: the fixture body (retry_after 300) without a Retry-After header.
    let s = Setup::scenario(ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/files/list_folder/continue"))
        .respond_with(ResponseTemplate::new(429).set_body_json(fixture("dropbox/error_429.json", &s.server.uri())))
        .mount(&s.server)
        .await;

    // Act
    let error = s.one_change_page("AAF-any-cursor").await.unwrap_err();

    // Assert
    assert_eq!(error, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(300)) });
}

#[tokio::test]
async fn dropbox_fixture_continue_page_is_read_as_documented() {
    // Arrange: list_folder_continue.json: a changed file and a deleted entry, has_more false.
    let server = MockServer::start().await;
    let body = fixture("dropbox/list_folder_continue.json", &server.uri());
    Mock::given(method("POST"))
        .and(path("/2/files/list_folder/continue"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
        .mount(&server)
        .await;
    let registry = registry(&server, ProviderType::Dropbox);
    let scope = SyncScope { folder_id: "id:QM", folder_path: Some("/Quodsi/Models"), connection_metadata: None };

    // Act
    let page =
        registry.get(ProviderType::Dropbox).unwrap().changes(&access_token(), &scope, "AAF-cursor").await.unwrap();

    // Assert
    let modified = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc));
    assert_eq!(
        page.changes,
        vec![
            Change::Upsert(RemoteItem {
                id: "id:elUUpH6GYEycDyd_Mnt27R".into(),
                name: "factory-line.qsim".into(),
                kind: ItemKind::File,
                parent_id: None,
                path_lower: Some("/quodsi/models/factory-line.qsim".into()),
                path_display: Some("/Quodsi/Models/factory-line.qsim".into()),
                size: Some(49877),
                hash: Some("bc786784c479622f7ff963dd7a11586e29c0b8d2a5712900ee461cf90fab18c0".into()),
                revision: Some("6cd2872c08687c97852c746666ca6".into()),
                mime_type: None,
                created_at: None,
                modified_at: modified("2026-03-02T09:14:27Z"),
                downloadable: true,
            }),
            Change::Deleted { id: None, path_lower: Some("/quodsi/models/throughput-results.csv".into()) },
        ]
    );
    assert_eq!(page.next, None);
    assert_eq!(page.cursor.as_deref(), body["cursor"].as_str());
}

#[tokio::test]
async fn dropbox_fixture_list_folder_with_more_pages_gives_next() {
    // Arrange: list_folder.json (has_more true) answers the first page of a crawl.
    let server = MockServer::start().await;
    let body = fixture("dropbox/list_folder.json", &server.uri());
    Mock::given(method("POST"))
        .and(path("/2/files/list_folder"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
        .mount(&server)
        .await;
    let registry = registry(&server, ProviderType::Dropbox);
    let scope = SyncScope { folder_id: "id:QM", folder_path: None, connection_metadata: None };

    // Act
    let page = registry
        .get(ProviderType::Dropbox)
        .unwrap()
        .list_children(&access_token(), &scope, "id:QM", None)
        .await
        .unwrap();

    // Assert
    let kinds: Vec<(&str, ItemKind, Option<&str>)> =
        page.items.iter().map(|i| (i.name.as_str(), i.kind, i.parent_id.as_deref())).collect();
    assert_eq!(
        kinds,
        [
            ("factory-line.qsim", ItemKind::File, Some("id:QM")),
            ("throughput-results.csv", ItemKind::File, Some("id:QM")),
            ("Scenarios", ItemKind::Folder, Some("id:QM")),
            ("baseline.qsim", ItemKind::File, Some("id:QM")),
        ]
    );
    assert_eq!(page.items[0].hash.as_deref(), Some(readme_hash(ProviderType::Dropbox, "factory-line.qsim")));
    assert_eq!(page.next.as_deref(), body["cursor"].as_str());
}

// ---------------------------------------------------------------------------------------------
// Microsoft Graph (OneDrive for Business, SharePoint, OneDrive Personal)

/// The model items at `paths`, as a Graph change feed or listing reports them.
fn graph_upserts(s: &Setup, paths: &[&str]) -> Vec<Change> {
    paths.iter().map(|p| Change::Upsert(expected(s.kind, &s.tree.expect(p), true))).collect()
}

#[tokio::test]
async fn graph_crawl_pages_through_both_levels() {
    // Arrange
    let s = Setup::scenario(ProviderType::SharePoint).await;
    let synced = s.tree.synced_folder_id();

    // Act
    let (top, top_pages) = s.crawl_folder(&synced).await;
    let scenarios = by_name(&top, "Scenarios");
    let (below, below_pages) = s.crawl_folder(&scenarios.id).await;

    // Assert
    assert_eq!((top_pages, below_pages), (2, 1));
    let expected_top: Vec<RemoteItem> =
        ["Scenarios", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"]
            .iter()
            .map(|p| expected(s.kind, &s.tree.expect(p), false))
            .collect();
    assert_eq!(top, expected_top);
    assert_eq!(below, vec![expected(s.kind, &s.tree.expect("Scenarios/baseline.qsim"), false)]);
    let factory = by_name(&top, "factory-line.qsim");
    assert_eq!(factory.hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim")), "quickXorHash as 40 hex");
    assert_eq!(factory.mime_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(factory.parent_id.as_deref(), Some(synced.as_str()));
    assert!(factory.revision.as_deref().is_some_and(|e| e.starts_with("\"{") && e.ends_with(",1\"")), "{factory:?}");
    assert_eq!((scenarios.kind, scenarios.size, scenarios.hash.clone()), (ItemKind::Folder, None, None));

    // `$top` and `$select` on the first page; the next page is the nextLink as given.
    let requests = s.server.received_requests().await.unwrap();
    let first = &requests[0];
    assert_eq!(first.url.path(), format!("/v1.0/drives/{}/items/{synced}/children", s.tree.drive_id()));
    let query: Vec<(String, String)> = first.url.query_pairs().into_owned().collect();
    assert!(query.contains(&("$top".into(), "1000".into())), "{query:?}");
    assert!(query.iter().any(|(k, v)| k == "$select" && v.contains("parentReference")), "{query:?}");
    assert_eq!(
        requests[1].url.query_pairs().find(|(k, _)| k == "$skiptoken").map(|(_, v)| v.into_owned()).as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn graph_business_changes_come_from_the_root_delta_with_parents_and_outside_items() {
    // Arrange
    let s = Setup::scenario(ProviderType::OneDrive).await;
    s.tree.set_page_size(100);
    let cursor = s.start_cursor().await;
    s.tree.modify("factory-line.qsim", fixture_content("factory-line.qsim v2", 49877));
    s.tree.move_to("warehouse-layout.qsim", "Scenarios");
    s.tree.rename("Scenarios/baseline.qsim", "baseline-v1.qsim");
    let gone = s.tree.expect("throughput-results.csv").id;
    s.tree.delete("throughput-results.csv");
    s.tree.modify("/Elsewhere/notes.txt", "outside the synced folder");

    // Act
    let (changes, pages, next_cursor) = s.changes_from(&cursor).await;

    // Assert: the latest state of each changed item after its parent chain (Graph returns
    // the hierarchy), the delete by id, and the change outside the folder (a root delta sees
    // the whole drive; the worker keeps what is in the folder).
    let mut want = graph_upserts(&s, &["/", "", "factory-line.qsim", "Scenarios", "Scenarios/warehouse-layout.qsim"]);
    want.extend(graph_upserts(&s, &["Scenarios/baseline-v1.qsim"]));
    want.push(Change::Deleted { id: Some(gone), path_lower: None });
    want.extend(graph_upserts(&s, &["/Elsewhere", "/Elsewhere/notes.txt"]));
    assert_eq!(changes, want);
    assert_eq!(pages.len(), 1);
    let factory = upserted(&changes)[2].clone();
    assert_eq!(factory.hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim v2")));
    assert_eq!(factory.revision, s.tree.expect("factory-line.qsim").revision);
    assert!(cursor.starts_with(&format!("{}/v1.0/drives/", s.server.uri())), "the whole deltaLink: {cursor}");
    assert_ne!(next_cursor, cursor);
    let (after, _, _) = s.changes_from(&next_cursor).await;
    assert_eq!(after, vec![]);

    // Business: the start cursor is the root's delta, never the folder's.
    let requests = s.server.received_requests().await.unwrap();
    assert_eq!(requests[0].url.path(), format!("/v1.0/drives/{}/root/delta", s.tree.drive_id()));
    assert_eq!(requests[0].url.query_pairs().find(|(k, _)| k == "token").unwrap().1, "latest");
}

#[tokio::test]
async fn graph_personal_changes_come_from_the_folders_own_delta() {
    // Arrange
    let s = Setup::with_tree(RemoteTree::new_onedrive_personal().with_scenario()).await;
    s.tree.set_page_size(100);
    let cursor = s.start_cursor().await;
    s.tree.modify("factory-line.qsim", fixture_content("factory-line.qsim v2", 49877));
    s.tree.move_to("warehouse-layout.qsim", "Scenarios");
    let gone = s.tree.expect("throughput-results.csv").id;
    s.tree.delete("throughput-results.csv");
    s.tree.modify("/Elsewhere/notes.txt", "outside the synced folder");

    // Act
    let (changes, _, _) = s.changes_from(&cursor).await;

    // Assert: scoped to the folder, so nothing from outside it.
    let mut want = graph_upserts(&s, &["", "factory-line.qsim", "Scenarios", "Scenarios/warehouse-layout.qsim"]);
    want.push(Change::Deleted { id: Some(gone), path_lower: None });
    assert_eq!(changes, want);
    let synced = s.tree.synced_folder_id();
    assert!(synced.contains('!'), "Personal ids look like Personal's: {synced}");
    let requests = s.server.received_requests().await.unwrap();
    assert_eq!(requests[0].url.path(), format!("/v1.0/drives/{}/items/{synced}/delta", s.tree.drive_id()));
}

#[tokio::test]
async fn graph_change_pages_follow_next_links_until_the_delta_link() {
    // Arrange
    let s = Setup::scenario(ProviderType::SharePoint).await;
    let cursor = s.start_cursor().await;
    for i in 0..5 {
        s.tree.add_file(&format!("new-{i}.qsim"), format!("model {i}"));
    }

    // Act
    let (changes, pages, _) = s.changes_from(&cursor).await;

    // Assert: root and folder, then 5 files, in pages of 2.
    let shape: Vec<(usize, bool, bool)> =
        pages.iter().map(|p| (p.changes.len(), p.next.is_some(), p.cursor.is_some())).collect();
    assert_eq!(shape, vec![(2, true, false), (2, true, false), (2, true, false), (1, false, true)]);
    let names: Vec<&str> = upserted(&changes).iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["root", "Quodsi Models", "new-0.qsim", "new-1.qsim", "new-2.qsim", "new-3.qsim", "new-4.qsim"]);
}

#[tokio::test]
async fn graph_410_and_resync_codes_are_a_resync() {
    // Arrange: the injected 410 (Location + resyncChangesApplyDifferences), then 410s with the
    // other documented code, the observed `resyncRequired`, no body at all, and a resync code
    // under another status.
    let s = Setup::scenario(ProviderType::OneDrive).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::Resync);
    let base = s.server.uri();
    let answers = [
        ResponseTemplate::new(410).set_body_json(fixture("graph/error_resync_410_upload.json", &base)),
        ResponseTemplate::new(410).set_body_json(fixture("graph/error_resync_410_observed.json", &base)),
        ResponseTemplate::new(410),
        ResponseTemplate::new(400).set_body_json(
            json!({ "error": { "code": "x", "innerError": { "code": "resyncChangesApplyDifferences" } } }),
        ),
    ];

    // Act
    let injected = s.one_change_page(&cursor).await.unwrap_err();
    let mut others = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let route = format!("/v1.0/drives/{}/root/delta/expired-{i}", s.tree.drive_id());
        Mock::given(method("GET")).and(path(route.clone())).respond_with(answer).mount(&s.server).await;
        others.push(s.one_change_page(&format!("{base}{route}")).await.unwrap_err());
    }

    // Assert
    for error in std::iter::once(&injected).chain(&others) {
        assert!(matches!(error, ProviderError::ResyncRequired(_)), "{error:?}");
    }
    assert_eq!(
        injected.to_string(),
        "the provider asks for a full resync: Graph delta answered resyncChangesApplyDifferences"
    );
    assert!(!injected.to_string().contains(&base), "no link in the message: {injected}");
}

#[tokio::test]
async fn graph_delta_link_on_another_host_is_never_sent_the_token() {
    // Arrange
    let s = Setup::scenario(ProviderType::OneDrive).await;

    // Act
    let error = s.one_change_page("https://graph.example.net/v1.0/drives/x/root/delta?token=abc").await.unwrap_err();
    let garbage = s.one_change_page("not a link").await.unwrap_err();

    // Assert: a new cursor can be taken; nothing was sent anywhere.
    assert!(matches!(error, ProviderError::ResyncRequired(_)), "{error:?}");
    assert!(matches!(garbage, ProviderError::ResyncRequired(_)), "{garbage:?}");
    assert!(s.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn graph_download_follows_the_redirect_without_the_token() {
    for tree in [RemoteTree::scenario(ProviderType::SharePoint), RemoteTree::new_onedrive_personal().with_scenario()] {
        // Arrange
        let s = Setup::with_tree(tree).await;
        let (items, _) = s.crawl_folder(&s.tree.synced_folder_id()).await;
        let file = by_name(&items, "factory-line.qsim");

        // Act
        let download = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap();
        let (bytes, _) = read_download(download).await;

        // Assert
        assert_eq!(bytes, fixture_content("factory-line.qsim", 48213));
        assert_eq!(Some(provider_hash(s.kind, &bytes)), file.hash);
        let requests = s.server.received_requests().await.unwrap();
        let content = requests.iter().find(|r| r.url.path().ends_with("/content")).unwrap();
        assert_eq!(content.headers["authorization"].to_str().unwrap(), format!("Bearer {ACCESS_TOKEN}"));
        let preauth = requests.iter().find(|r| r.url.path().starts_with(PREAUTH_PATH)).unwrap();
        assert!(preauth.headers.get("authorization").is_none(), "the bearer token went to the pre-authenticated URL");
    }
}

#[tokio::test]
async fn graph_download_failures_never_show_the_preauthenticated_url() {
    // Arrange: the pre-authenticated host refuses, with a body that quotes its URL.
    let s = Setup::scenario(ProviderType::SharePoint).await;
    let file = expected(s.kind, &s.tree.expect("factory-line.qsim"), false);
    s.tree.inject(Endpoint::Download, Fault::PreauthRefused);

    // Act
    let error = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap_err();

    // Assert
    assert!(matches!(error, ProviderError::Rejected { status: 403, .. }), "{error:?}");
    assert_no_secret(s.kind, &format!("{error} {error:?}"));
    assert!(s.tree.faults_served(), "the refusal came from the pre-authenticated URL");
}

#[tokio::test]
async fn graph_download_to_an_unreachable_preauthenticated_url_never_shows_it() {
    // Arrange: /content redirects to a port nothing listens on.
    let s = Setup::scenario(ProviderType::OneDrive).await;
    let file = expected(s.kind, &s.tree.expect("factory-line.qsim"), false);
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let location = format!("http://{dead}{PREAUTH_PATH}graph/x?tempauth={PREAUTH_SECRET}");
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/drives/{}/items/{}/content", s.tree.drive_id(), file.id)))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str()))
        .mount(&s.server)
        .await;

    // Act
    let error = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap_err();

    // Assert
    assert!(matches!(error, ProviderError::Network(_)), "{error:?}");
    assert_no_secret(s.kind, &format!("{error} {error:?}"));
    assert!(!format!("{error:?}").contains(&dead.to_string()), "{error:?}");
}

#[tokio::test]
async fn graph_throttling_and_expired_tokens_are_classified() {
    // Arrange
    let s = Setup::scenario(ProviderType::SharePoint).await;
    s.tree.inject(Endpoint::StartCursor, Fault::RateLimited { retry_after_secs: 7 });
    s.tree.inject(Endpoint::Children, Fault::Unauthorized);
    s.tree.inject(Endpoint::Download, Fault::RateLimited { retry_after_secs: 2 });
    let file = expected(s.kind, &s.tree.expect("factory-line.qsim"), false);

    // Act
    let throttled = s.provider().start_cursor(&access_token(), &s.scope()).await.unwrap_err();
    let synced = s.tree.synced_folder_id();
    let expired = s.provider().list_children(&access_token(), &s.scope(), &synced, None).await.unwrap_err();
    let throttled_download = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap_err();

    // Assert
    assert_eq!(throttled, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(7)) });
    assert!(
        matches!(&expired, ProviderError::Rejected { status: 401, code: Some(c), .. } if c == "InvalidAuthenticationToken"),
        "{expired:?}"
    );
    assert_eq!(throttled_download, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(2)) });
}

#[tokio::test]
async fn graph_fixture_delta_pages_are_read_as_documented() {
    // Arrange: delta_page.json (root, folder, changed file, deleted file, nextLink) and
    // delta_last.json (a folder and a new file, deltaLink).
    let server = MockServer::start().await;
    let base = server.uri();
    let (page, last) = (fixture("graph/delta_page.json", &base), fixture("graph/delta_last.json", &base));
    let drive = "b!-RIj2DuyvEyV1T4NlOaMHk8XkS_I8MdFlUCq1BlcjgmhRfAj3-Z8RY2VpuvV_tpd";
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/drives/{drive}/root/delta")))
        .and(wiremock::matchers::query_param("token", "first"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/drives/{drive}/root/delta")))
        .and(wiremock::matchers::query_param("token", "last"))
        .respond_with(ResponseTemplate::new(200).set_body_json(last.clone()))
        .mount(&server)
        .await;
    let registry = registry(&server, ProviderType::SharePoint);
    let provider = registry.get(ProviderType::SharePoint).unwrap();
    let metadata = json!({ "drive_id": drive, "drive_type": "documentLibrary" });
    let scope = SyncScope {
        folder_id: "01NKDM7HBBQA4EIE2C2QOUN5GTXJNATFQP",
        folder_path: None,
        connection_metadata: Some(&metadata),
    };
    let link = |token: &str| format!("{base}/v1.0/drives/{drive}/root/delta?token={token}");

    // Act
    let first = provider.changes(&access_token(), &scope, &link("first")).await.unwrap();
    let second = provider.changes(&access_token(), &scope, &link("last")).await.unwrap();

    // Assert
    let at = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc));
    let summary: Vec<(Option<&str>, Option<&str>, Option<ItemKind>)> = first
        .changes
        .iter()
        .map(|c| match c {
            Change::Upsert(i) => (Some(i.id.as_str()), Some(i.name.as_str()), Some(i.kind)),
            Change::Deleted { id, .. } => (id.as_deref(), None, None),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some("01NKDM7HMOJTVYMDOSXFDK2QJDXCDI3WUK"), Some("root"), Some(ItemKind::Folder)),
            (Some("01NKDM7HBBQA4EIE2C2QOUN5GTXJNATFQP"), Some("Quodsi Models"), Some(ItemKind::Folder)),
            (Some("01NKDM7HKP7XY67AEMFYZEKICTPMXTIFNL"), Some("factory-line.qsim"), Some(ItemKind::File)),
            (Some("01NKDM7HZGOFF6FHUI6DILMBYEZHZYXEQ6"), None, None),
        ]
    );
    assert_eq!(
        first.changes[2],
        Change::Upsert(RemoteItem {
            id: "01NKDM7HKP7XY67AEMFYZEKICTPMXTIFNL".into(),
            name: "factory-line.qsim".into(),
            kind: ItemKind::File,
            parent_id: Some("01NKDM7HBBQA4EIE2C2QOUN5GTXJNATFQP".into()),
            path_lower: None,
            path_display: None,
            size: Some(49877),
            hash: Some(readme_hash(ProviderType::SharePoint, "factory-line.qsim v2").into()),
            revision: Some("\"{FEA61336-0C4C-E49F-7485-5287CFCD35C4},5\"".into()),
            mime_type: Some("application/octet-stream".into()),
            created_at: at("2026-02-11T08:02:17Z"),
            modified_at: at("2026-03-02T09:14:27Z"),
            downloadable: true,
        })
    );
    let Change::Upsert(root) = &first.changes[0] else { panic!("the root is an upsert: {:?}", first.changes[0]) };
    assert_eq!(root.parent_id, None, "the root has no parent id");
    assert_eq!(first.next.as_deref(), page["@odata.nextLink"].as_str());
    assert_eq!(first.cursor, None);
    assert_eq!(second.next, None);
    assert_eq!(second.cursor.as_deref(), last["@odata.deltaLink"].as_str());
    let new_file = upserted(&second.changes).into_iter().find(|i| i.name == "line-2.qsim").unwrap();
    assert_eq!(new_file.parent_id.as_deref(), Some("01NKDM7H43ZUU2JBJSISCPD3JSU2IXJ2CG"));
    assert_eq!(new_file.hash.as_deref(), Some("8a979eb3fcc4394a4dc27b16344a0741a378e939"));
}

#[tokio::test]
async fn graph_fixture_children_page_is_read_as_documented() {
    // Arrange
    let server = MockServer::start().await;
    let page = fixture("graph/children_page1.json", &server.uri());
    let drive = "b!-RIj2DuyvEyV1T4NlOaMHk8XkS_I8MdFlUCq1BlcjgmhRfAj3-Z8RY2VpuvV_tpd";
    let folder = "01NKDM7HBBQA4EIE2C2QOUN5GTXJNATFQP";
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/drives/{drive}/items/{folder}/children")))
        .respond_with(ResponseTemplate::new(200).set_body_json(page.clone()))
        .mount(&server)
        .await;
    let registry = registry(&server, ProviderType::SharePoint);
    let metadata = json!({ "drive_id": drive, "drive_type": "documentLibrary" });
    let scope = SyncScope { folder_id: folder, folder_path: None, connection_metadata: Some(&metadata) };

    // Act
    let children = registry
        .get(ProviderType::SharePoint)
        .unwrap()
        .list_children(&access_token(), &scope, folder, None)
        .await
        .unwrap();

    // Assert
    let names: Vec<(&str, ItemKind, Option<i64>, Option<&str>)> =
        children.items.iter().map(|i| (i.name.as_str(), i.kind, i.size, i.hash.as_deref())).collect();
    assert_eq!(
        names,
        [
            (
                "factory-line.qsim",
                ItemKind::File,
                Some(48213),
                Some(readme_hash(ProviderType::SharePoint, "factory-line.qsim"))
            ),
            (
                "throughput-results.csv",
                ItemKind::File,
                Some(7412),
                Some(readme_hash(ProviderType::SharePoint, "throughput-results.csv"))
            ),
            ("Scenarios", ItemKind::Folder, None, None),
        ]
    );
    assert!(children.items.iter().all(|i| i.parent_id.as_deref() == Some(folder)));
    assert_eq!(children.next.as_deref(), page["@odata.nextLink"].as_str());
}

// ---------------------------------------------------------------------------------------------
// Google Drive

#[tokio::test]
async fn drive_crawl_pages_through_both_levels() {
    // Arrange
    let s = Setup::scenario(ProviderType::GDrive).await;
    let synced = s.tree.synced_folder_id();

    // Act
    let (top, top_pages) = s.crawl_folder(&synced).await;
    let scenarios = by_name(&top, "Scenarios");
    let (below, below_pages) = s.crawl_folder(&scenarios.id).await;

    // Assert: 5 children (with the Google Doc) in pages of 2.
    assert_eq!((top_pages, below_pages), (3, 1));
    let expected_top: Vec<RemoteItem> =
        ["Scenarios", "Model assumptions", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"]
            .iter()
            .map(|p| expected(s.kind, &s.tree.expect(p), false))
            .collect();
    assert_eq!(top, expected_top);
    assert_eq!(below, vec![expected(s.kind, &s.tree.expect("Scenarios/baseline.qsim"), false)]);
    let factory = by_name(&top, "factory-line.qsim");
    assert_eq!(factory.hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim")));
    assert_eq!(factory.size, Some(48213), "the string size is read as a number");
    let doc = by_name(&top, "Model assumptions");
    assert_eq!(
        (doc.kind, doc.downloadable, doc.hash.clone(), doc.revision.clone(), doc.size),
        (ItemKind::File, false, None, None, Some(1024))
    );
    assert_eq!(doc.mime_type.as_deref(), Some("application/vnd.google-apps.document"));
    assert_eq!(scenarios.mime_type.as_deref(), Some("application/vnd.google-apps.folder"));
    assert_eq!((scenarios.kind, scenarios.size), (ItemKind::Folder, None));

    let requests = s.server.received_requests().await.unwrap();
    let query: std::collections::HashMap<String, String> = requests[0].url.query_pairs().into_owned().collect();
    assert_eq!(query["q"], format!("'{synced}' in parents and trashed = false"));
    assert_eq!(query["pageSize"], "1000");
    assert_eq!(query["supportsAllDrives"], "true");
    assert_eq!(query["includeItemsFromAllDrives"], "true");
    assert!(query["fields"].contains("md5Checksum") && query["fields"].contains("headRevisionId"), "{query:?}");
}

#[tokio::test]
async fn drive_changes_are_the_edit_the_move_the_rename_the_delete_and_the_account_wide_rest() {
    // Arrange
    let s = Setup::scenario(ProviderType::GDrive).await;
    s.tree.set_page_size(100);
    let cursor = s.start_cursor().await;
    s.tree.modify("factory-line.qsim", fixture_content("factory-line.qsim v2", 49877));
    s.tree.move_to("warehouse-layout.qsim", "Scenarios");
    s.tree.rename("Scenarios/baseline.qsim", "baseline-v1.qsim");
    let gone = s.tree.expect("throughput-results.csv").id;
    s.tree.delete("throughput-results.csv");
    s.tree.modify("/Elsewhere/notes.txt", "outside the synced folder");

    // Act
    let (changes, pages, next_cursor) = s.changes_from(&cursor).await;

    // Assert: one change per item; the feed is the whole account's.
    let upsert = |p: &str| Change::Upsert(expected(s.kind, &s.tree.expect(p), true));
    assert_eq!(
        changes,
        vec![
            upsert("factory-line.qsim"),
            upsert("Scenarios/warehouse-layout.qsim"),
            upsert("Scenarios/baseline-v1.qsim"),
            Change::Deleted { id: Some(gone), path_lower: None },
            upsert("/Elsewhere/notes.txt"),
        ]
    );
    assert_eq!(pages.len(), 1);
    assert_eq!(upserted(&changes)[0].hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim v2")));
    assert_ne!(next_cursor, cursor);
    let (after, _, _) = s.changes_from(&next_cursor).await;
    assert_eq!(after, vec![]);

    let requests = s.server.received_requests().await.unwrap();
    let list = requests.iter().find(|r| r.url.path() == "/drive/v3/changes").unwrap();
    let query: std::collections::HashMap<String, String> = list.url.query_pairs().into_owned().collect();
    assert_eq!(query["pageToken"], cursor);
    assert_eq!(query["includeRemoved"], "true");
    assert!(query["fields"].contains("newStartPageToken") && query["fields"].contains("file(id,"), "{query:?}");
}

#[tokio::test]
async fn drive_change_pages_carry_next_until_the_last_carries_the_cursor() {
    // Arrange
    let s = Setup::scenario(ProviderType::GDrive).await;
    let cursor = s.start_cursor().await;
    for i in 0..5 {
        s.tree.add_file(&format!("new-{i}.qsim"), format!("model {i}"));
    }

    // Act
    let (changes, pages, _) = s.changes_from(&cursor).await;

    // Assert
    let shape: Vec<(usize, bool, bool)> =
        pages.iter().map(|p| (p.changes.len(), p.next.is_some(), p.cursor.is_some())).collect();
    assert_eq!(shape, vec![(2, true, false), (2, true, false), (1, false, true)]);
    let names: Vec<&str> = upserted(&changes).iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["new-0.qsim", "new-1.qsim", "new-2.qsim", "new-3.qsim", "new-4.qsim"]);
}

#[tokio::test]
async fn drive_rejected_page_tokens_are_a_resync_but_auth_and_permission_are_not() {
    // Arrange: the injected 400 `invalid` on pageToken; then a 404 and a 410 (undocumented
    // statuses for a dead token), and the 401 and a non-rate-limit 403 that are not about it.
    let s = Setup::scenario(ProviderType::GDrive).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::Resync);
    let forbidden = json!({ "error": { "code": 403, "message": "Insufficient Permission", "errors": [{ "reason": "insufficientPermissions" }] } });
    let answers = [
        (ResponseTemplate::new(404).set_body_json(json!({ "error": { "code": 404, "message": "Not Found" } })), true),
        (ResponseTemplate::new(410), true),
        (ResponseTemplate::new(401).set_body_json(fixture("gdrive/error_401.json", &s.server.uri())), false),
        (ResponseTemplate::new(403).set_body_json(forbidden), false),
    ];

    // Act
    let injected = s.one_change_page(&cursor).await.unwrap_err();
    let mut others = Vec::new();
    for (answer, resync) in answers {
        s.server.reset().await;
        Mock::given(method("GET")).and(path("/drive/v3/changes")).respond_with(answer).mount(&s.server).await;
        others.push((s.one_change_page(&cursor).await.unwrap_err(), resync));
    }

    // Assert
    assert_eq!(injected, ProviderError::ResyncRequired("Drive refused the page token (invalid)".into()));
    for (error, resync) in others {
        assert_eq!(matches!(error, ProviderError::ResyncRequired(_)), resync, "{error:?}");
    }
}

#[tokio::test]
async fn drive_download_streams_the_bytes_whose_md5_was_listed_and_refuses_google_docs() {
    // Arrange
    let s = Setup::scenario(ProviderType::GDrive).await;
    let (items, _) = s.crawl_folder(&s.tree.synced_folder_id()).await;
    let file = by_name(&items, "throughput-results.csv");
    let doc = by_name(&items, "Model assumptions");
    let before = s.server.received_requests().await.unwrap().len();

    // Act
    let refused = s.provider().download(&access_token(), &s.scope(), &doc).await.unwrap_err();
    let after_refusal = s.server.received_requests().await.unwrap().len();
    let download = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap();
    let (bytes, _) = read_download(download).await;

    // Assert
    assert!(matches!(refused, ProviderError::Unsupported(_)), "{refused:?}");
    assert_eq!(after_refusal, before, "a Google Doc is refused before any call");
    assert_eq!(bytes, fixture_content("throughput-results.csv", 7412));
    assert_eq!(Some(provider_hash(s.kind, &bytes)), file.hash);
    assert_eq!(file.hash.as_deref(), Some(readme_hash(s.kind, "throughput-results.csv")));
    let requests = s.server.received_requests().await.unwrap();
    let media = requests.last().unwrap();
    assert_eq!(media.url.path(), format!("/drive/v3/files/{}", file.id));
    assert_eq!(media.url.query_pairs().find(|(k, _)| k == "alt").unwrap().1, "media");
    assert_eq!(media.headers["authorization"].to_str().unwrap(), format!("Bearer {ACCESS_TOKEN}"));
}

#[tokio::test]
async fn drive_throttling_by_403_and_429_is_a_rate_limit() {
    // Arrange
    let s = Setup::scenario(ProviderType::GDrive).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::UserRateLimit403);
    s.tree.inject(Endpoint::Changes, Fault::RateLimited { retry_after_secs: 5 });
    s.tree.inject(Endpoint::Download, Fault::UserRateLimit403);
    let file = expected(s.kind, &s.tree.expect("factory-line.qsim"), false);

    // Act
    let user_limit = s.one_change_page(&cursor).await.unwrap_err();
    let too_many = s.one_change_page(&cursor).await.unwrap_err();
    let download_limit = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap_err();

    // Assert: Drive's 403 carries no Retry-After; the 429's is kept.
    assert_eq!(user_limit, ProviderError::RateLimited { retry_after: None });
    assert_eq!(too_many, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(5)) });
    assert_eq!(download_limit, ProviderError::RateLimited { retry_after: None });
}

#[tokio::test]
async fn drive_fixture_change_pages_are_read_as_documented() {
    // Arrange: changes_page.json (a modified file, a removed one, a trashed Doc, nextPageToken)
    // and changes_last.json (a new file, newStartPageToken).
    let server = MockServer::start().await;
    for (token, name) in [("4587", "gdrive/changes_page.json"), ("4592", "gdrive/changes_last.json")] {
        Mock::given(method("GET"))
            .and(path("/drive/v3/changes"))
            .and(wiremock::matchers::query_param("pageToken", token))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(name, &server.uri())))
            .mount(&server)
            .await;
    }
    let registry = registry(&server, ProviderType::GDrive);
    let provider = registry.get(ProviderType::GDrive).unwrap();
    let scope =
        SyncScope { folder_id: "1ry5tIk9GK4ayB17z-EQZuSidQvzT9okV", folder_path: None, connection_metadata: None };

    // Act
    let first = provider.changes(&access_token(), &scope, "4587").await.unwrap();
    let last = provider.changes(&access_token(), &scope, "4592").await.unwrap();

    // Assert
    let at = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc));
    assert_eq!(
        first.changes,
        vec![
            Change::Upsert(RemoteItem {
                id: "1ZvtdK0mIFwWJRacGpoSNMdSHTAc46o5I".into(),
                name: "factory-line.qsim".into(),
                kind: ItemKind::File,
                parent_id: Some("1ry5tIk9GK4ayB17z-EQZuSidQvzT9okV".into()),
                path_lower: None,
                path_display: None,
                size: Some(49877),
                hash: Some(readme_hash(ProviderType::GDrive, "factory-line.qsim v2").into()),
                revision: Some("0BODjLCvjJ7VuSwEmsxMKpyp98YRpZuxGmV9KwxKDpymTtBEy55".into()),
                mime_type: Some("application/octet-stream".into()),
                created_at: at("2026-02-11T08:02:17.402Z"),
                modified_at: at("2026-03-02T09:14:27.512Z"),
                downloadable: true,
            }),
            Change::Deleted { id: Some("1bLxQPVtzwUqtCZsl0wz8VYoYVTs7ISVN".into()), path_lower: None },
            Change::Deleted { id: Some("1Dto7PqbSNElgDNbzaUzaDzKMztB3c1gD".into()), path_lower: None },
        ]
    );
    assert_eq!((first.next.as_deref(), first.cursor.as_deref()), (Some("4592"), None));
    assert_eq!((last.next.as_deref(), last.cursor.as_deref()), (None, Some("4598")));
    let new_file = upserted(&last.changes)[0];
    assert_eq!((new_file.name.as_str(), new_file.size), ("line-2.qsim", Some(26_214_400)));
    assert_eq!(new_file.hash.as_deref(), Some("c74548164529e8d7a1c148dda5f07e32"));
}

#[tokio::test]
async fn drive_fixture_file_list_is_read_as_documented() {
    // Arrange
    let server = MockServer::start().await;
    let page = fixture("gdrive/files_list_page1.json", &server.uri());
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page.clone()))
        .mount(&server)
        .await;
    let registry = registry(&server, ProviderType::GDrive);
    let folder = "1ry5tIk9GK4ayB17z-EQZuSidQvzT9okV";
    let scope = SyncScope { folder_id: folder, folder_path: None, connection_metadata: None };

    // Act
    let children =
        registry.get(ProviderType::GDrive).unwrap().list_children(&access_token(), &scope, folder, None).await.unwrap();

    // Assert
    let summary: Vec<_> =
        children.items.iter().map(|i| (i.name.as_str(), i.kind, i.downloadable, i.size, i.hash.as_deref())).collect();
    assert_eq!(
        summary,
        [
            ("factory-line.qsim", ItemKind::File, true, Some(48213), Some("80f04d187565e0859384366ef0e35af1")),
            ("Scenarios", ItemKind::Folder, false, None, None),
            ("Model assumptions", ItemKind::File, false, Some(1024), None),
        ]
    );
    assert!(children.items.iter().all(|i| i.parent_id.as_deref() == Some(folder)));
    assert_eq!(children.next.as_deref(), page["nextPageToken"].as_str());
}

// ---------------------------------------------------------------------------------------------
// Box

#[tokio::test]
async fn box_crawl_pages_through_both_levels() {
    // Arrange
    let s = Setup::scenario(ProviderType::Box).await;
    let synced = s.tree.synced_folder_id();

    // Act
    let (top, top_pages) = s.crawl_folder(&synced).await;
    let scenarios = by_name(&top, "Scenarios");
    let (below, below_pages) = s.crawl_folder(&scenarios.id).await;

    // Assert
    assert_eq!((top_pages, below_pages), (2, 1));
    let expected_top: Vec<RemoteItem> =
        ["Scenarios", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"]
            .iter()
            .map(|p| expected(s.kind, &s.tree.expect(p), false))
            .collect();
    assert_eq!(top, expected_top);
    assert_eq!(below, vec![expected(s.kind, &s.tree.expect("Scenarios/baseline.qsim"), false)]);
    let factory = by_name(&top, "factory-line.qsim");
    assert_eq!(factory.hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim")));
    assert_eq!((factory.revision.as_deref(), factory.size), (Some("0"), Some(48213)));
    assert_eq!((scenarios.kind, scenarios.size, scenarios.hash.clone()), (ItemKind::Folder, None, None));

    let requests = s.server.received_requests().await.unwrap();
    let query: std::collections::HashMap<String, String> = requests[0].url.query_pairs().into_owned().collect();
    assert_eq!(requests[0].url.path(), format!("/2.0/folders/{synced}/items"));
    assert_eq!((query["usemarker"].as_str(), query["limit"].as_str()), ("true", "1000"));
    for field in ["sha1", "etag", "parent", "created_at", "modified_at", "item_status"] {
        assert!(query["fields"].split(',').any(|f| f == field), "fields lacks {field}: {query:?}");
    }
    assert!(requests[1].url.query_pairs().any(|(k, _)| k == "marker"), "the second page is asked by marker");
}

#[tokio::test]
async fn box_changes_are_the_upload_the_move_the_rename_the_trash_and_the_account_wide_rest() {
    // Arrange
    let s = Setup::scenario(ProviderType::Box).await;
    s.tree.set_page_size(100);
    let cursor = s.start_cursor().await;
    s.tree.modify("factory-line.qsim", fixture_content("factory-line.qsim v2", 49877));
    s.tree.move_to("warehouse-layout.qsim", "Scenarios");
    s.tree.rename("Scenarios/baseline.qsim", "baseline-v1.qsim");
    let gone = s.tree.expect("throughput-results.csv").id;
    s.tree.delete("throughput-results.csv");
    s.tree.modify("/Elsewhere/notes.txt", "outside the synced folder");

    // Act
    let (changes, pages, next_cursor) = s.changes_from(&cursor).await;

    // Assert: one change per event; the stream is the whole account's.
    let upsert = |p: &str| Change::Upsert(expected(s.kind, &s.tree.expect(p), true));
    assert_eq!(
        changes,
        vec![
            upsert("factory-line.qsim"),
            upsert("Scenarios/warehouse-layout.qsim"),
            upsert("Scenarios/baseline-v1.qsim"),
            Change::Deleted { id: Some(gone), path_lower: None },
            upsert("/Elsewhere/notes.txt"),
        ]
    );
    assert_eq!(pages.len(), 2, "the events, then the empty chunk that ends the feed");
    assert!(pages[1].changes.is_empty());
    assert_eq!(upserted(&changes)[0].hash.as_deref(), Some(readme_hash(s.kind, "factory-line.qsim v2")));
    assert_eq!(next_cursor.parse::<u64>().unwrap() - cursor.parse::<u64>().unwrap(), 5, "5 events further");
    let (after, _, _) = s.changes_from(&next_cursor).await;
    assert_eq!(after, vec![]);

    let requests = s.server.received_requests().await.unwrap();
    let stream =
        requests.iter().find(|r| r.url.query_pairs().any(|(k, v)| k == "stream_position" && v == cursor)).unwrap();
    let query: std::collections::HashMap<String, String> = stream.url.query_pairs().into_owned().collect();
    assert_eq!((query["stream_type"].as_str(), query["limit"].as_str()), ("changes", "500"));
}

#[tokio::test]
async fn box_pages_carry_next_until_an_empty_chunk_and_every_page_carries_the_position() {
    // Arrange: 501 events: a full page (500), a short one, then the empty chunk.
    let s = Setup::scenario(ProviderType::Box).await;
    s.tree.set_page_size(1000);
    let cursor = s.start_cursor().await;
    for i in 0..501 {
        s.tree.modify("factory-line.qsim", format!("version {i}"));
    }

    // Act
    let (changes, pages, last) = s.changes_from(&cursor).await;

    // Assert
    let shape: Vec<(usize, bool, bool)> =
        pages.iter().map(|p| (p.changes.len(), p.next.is_some(), p.cursor.is_some())).collect();
    assert_eq!(shape, vec![(500, true, true), (1, true, true), (0, false, true)]);
    assert_eq!(pages[0].next, pages[0].cursor, "the stream's next page starts where the cursor is");
    assert_eq!(changes.len(), 501);
    assert_eq!(last.parse::<u64>().unwrap() - cursor.parse::<u64>().unwrap(), 501);
}

#[tokio::test]
async fn box_short_pages_are_not_the_end_of_the_feed_an_empty_chunk_is() {
    // Arrange: Box may answer fewer events than asked while more wait ("the events less than
    // the limit requested can be returned even when there may be more events remaining"); the
    // fake's page size is 2.
    let s = Setup::scenario(ProviderType::Box).await;
    let cursor = s.start_cursor().await;
    for i in 0..3 {
        s.tree.add_file(&format!("new-{i}.qsim"), format!("model {i}"));
    }

    // Act
    let first = s.one_change_page(&cursor).await.unwrap();
    let second = s.one_change_page(first.cursor.as_deref().unwrap()).await.unwrap();
    let third = s.one_change_page(second.cursor.as_deref().unwrap()).await.unwrap();

    // Assert
    let names = |p: &ChangePage| upserted(&p.changes).iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!((names(&first), first.next.is_some()), (vec!["new-0.qsim".to_owned(), "new-1.qsim".to_owned()], true));
    assert_eq!((names(&second), second.next.is_some()), (vec!["new-2.qsim".to_owned()], true));
    assert_eq!((names(&third), third.next.is_some()), (vec![], false));
    assert_eq!(third.cursor, second.cursor, "an empty chunk leaves the position where it was");
}

#[tokio::test]
async fn box_repeated_events_are_applied_once() {
    // Arrange: Box "may return events more than once".
    let s = Setup::scenario(ProviderType::Box).await;
    s.tree.set_page_size(100);
    s.tree.set_duplicate_events(true);
    let cursor = s.start_cursor().await;
    s.tree.modify("factory-line.qsim", "new content");
    s.tree.delete("throughput-results.csv");

    // Act
    let page = s.one_change_page(&cursor).await.unwrap();

    // Assert
    assert_eq!(page.changes.len(), 2, "{:#?}", page.changes);
}

#[tokio::test]
async fn box_refused_stream_position_is_a_resync() {
    // Arrange
    let s = Setup::scenario(ProviderType::Box).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::Resync);

    // Act
    let injected = s.one_change_page(&cursor).await.unwrap_err();
    let foreign = s.one_change_page("42").await.unwrap_err();

    // Assert
    for error in [&injected, &foreign] {
        assert_eq!(*error, ProviderError::ResyncRequired("Box refused the stream position (invalid_parameter)".into()));
    }
}

#[tokio::test]
async fn box_download_follows_the_redirect_without_the_token() {
    // Arrange
    let s = Setup::scenario(ProviderType::Box).await;
    let (items, _) = s.crawl_folder(&s.tree.synced_folder_id()).await;
    let file = by_name(&items, "warehouse-layout.qsim");

    // Act
    let download = s.provider().download(&access_token(), &s.scope(), &file).await.unwrap();
    let (bytes, _) = read_download(download).await;

    // Assert
    assert_eq!(bytes, fixture_content("warehouse-layout.qsim", 15987));
    assert_eq!(Some(provider_hash(s.kind, &bytes)), file.hash);
    assert_eq!(file.hash.as_deref(), Some("56e9a701bcd7b537cfcf8fc54df81b7ca281c0ff"), "the README's sha1");
    let requests = s.server.received_requests().await.unwrap();
    let content = requests.iter().find(|r| r.url.path() == format!("/2.0/files/{}/content", file.id)).unwrap();
    assert_eq!(content.headers["authorization"].to_str().unwrap(), format!("Bearer {ACCESS_TOKEN}"));
    let preauth = requests.iter().find(|r| r.url.path().starts_with(PREAUTH_PATH)).unwrap();
    assert!(preauth.headers.get("authorization").is_none(), "the bearer token went to the pre-authenticated URL");
}

#[tokio::test]
async fn box_download_not_ready_refused_or_throttled_is_classified_without_the_url() {
    // Arrange
    let s = Setup::scenario(ProviderType::Box).await;
    let file = expected(s.kind, &s.tree.expect("factory-line.qsim"), false);
    let (token, scope) = (access_token(), s.scope());
    let download_with = |fault| {
        s.tree.inject(Endpoint::Download, fault);
        s.provider().download(&token, &scope, &file)
    };

    // Act
    let not_ready = download_with(Fault::NotReady { retry_after_secs: 9 }).await.unwrap_err();
    let refused = download_with(Fault::PreauthRefused).await.unwrap_err();
    let throttled = download_with(Fault::RateLimited { retry_after_secs: 4 }).await.unwrap_err();

    // Assert: the 202 is "try again later"; the pre-authenticated URL's refusal says nothing
    // of the URL; the 429 is the 429.
    assert_eq!(not_ready, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(9)) });
    assert!(matches!(refused, ProviderError::Rejected { status: 403, .. }), "{refused:?}");
    assert_no_secret(s.kind, &format!("{refused} {refused:?}"));
    assert_eq!(throttled, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(4)) });
    assert!(s.tree.faults_served());
}

#[tokio::test]
async fn box_throttling_and_empty_401s_are_classified() {
    // Arrange
    let s = Setup::scenario(ProviderType::Box).await;
    let cursor = s.start_cursor().await;
    s.tree.inject(Endpoint::Changes, Fault::RateLimited { retry_after_secs: 100 });
    s.tree.inject(Endpoint::Children, Fault::Unauthorized);

    // Act
    let throttled = s.one_change_page(&cursor).await.unwrap_err();
    let synced = s.tree.synced_folder_id();
    let expired = s.provider().list_children(&access_token(), &s.scope(), &synced, None).await.unwrap_err();

    // Assert
    assert_eq!(throttled, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(100)) });
    assert_eq!(expired, ProviderError::Rejected { status: 401, code: None, description: None });
}

#[tokio::test]
async fn box_fixture_event_pages_are_read_as_documented() {
    // Arrange: events_now.json for the start cursor; events_page.json (upload, trash, move)
    // with its first event repeated, and its position as a string the second time.
    let server = MockServer::start().await;
    let base = server.uri();
    let mut page = fixture("box/events_page.json", &base);
    let mut repeated = page.clone();
    let first_event = repeated["entries"][0].clone();
    repeated["entries"].as_array_mut().unwrap().push(first_event);
    repeated["chunk_size"] = json!(4);
    repeated["next_stream_position"] = json!("1152922976252291902");
    for (position, body) in [("now", fixture("box/events_now.json", &base)), ("1", page.take()), ("2", repeated)] {
        Mock::given(method("GET"))
            .and(path("/2.0/events"))
            .and(wiremock::matchers::query_param("stream_position", position))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    let registry = registry(&server, ProviderType::Box);
    let provider = registry.get(ProviderType::Box).unwrap();
    let scope = SyncScope { folder_id: "246813579012", folder_path: None, connection_metadata: None };

    // Act
    let start = provider.start_cursor(&access_token(), &scope).await.unwrap();
    let events = provider.changes(&access_token(), &scope, "1").await.unwrap();
    let again = provider.changes(&access_token(), &scope, "2").await.unwrap();

    // Assert
    assert_eq!(start, "1152922976252290886", "the number kept exactly (it passes 2^53)");
    let at = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc));
    let upload = RemoteItem {
        id: "1357924680123".into(),
        name: "factory-line.qsim".into(),
        kind: ItemKind::File,
        parent_id: Some("246813579012".into()),
        path_lower: None,
        path_display: None,
        size: Some(49877),
        hash: Some(readme_hash(ProviderType::Box, "factory-line.qsim v2").into()),
        revision: Some("4".into()),
        mime_type: None,
        created_at: at("2026-02-11T00:02:17-08:00"),
        modified_at: at("2026-03-02T01:14:27-08:00"),
        downloadable: true,
    };
    assert_eq!(events.changes.len(), 3);
    assert_eq!(events.changes[0], Change::Upsert(upload));
    assert_eq!(events.changes[1], Change::Deleted { id: Some("1357924680456".into()), path_lower: None });
    let Change::Upsert(moved) = &events.changes[2] else { panic!("the move is an upsert: {:?}", events.changes[2]) };
    assert_eq!((moved.id.as_str(), moved.parent_id.as_deref()), ("1357924680789", Some("246813579456")));
    assert_eq!(
        (events.next.as_deref(), events.cursor.as_deref()),
        (Some("1152922976252291902"), Some("1152922976252291902")),
        "a chunk with events may not be the last: read on from its position"
    );
    assert_eq!(again.changes, events.changes, "the repeated event is applied once");
    assert_eq!(again.cursor, events.cursor, "a string position reads like a number");
}

#[tokio::test]
async fn box_fixture_folder_item_pages_are_read_as_documented() {
    // Arrange: folder_items_page1.json (next_marker) and folder_items_page2.json (null).
    let server = MockServer::start().await;
    let first = fixture("box/folder_items_page1.json", &server.uri());
    let folder = "246813579012";
    Mock::given(method("GET"))
        .and(path(format!("/2.0/folders/{folder}/items")))
        .and(wiremock::matchers::query_param_is_missing("marker"))
        .respond_with(ResponseTemplate::new(200).set_body_json(first.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/2.0/folders/{folder}/items")))
        .and(wiremock::matchers::query_param("marker", first["next_marker"].as_str().unwrap()))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("box/folder_items_page2.json", &server.uri())))
        .mount(&server)
        .await;
    let registry = registry(&server, ProviderType::Box);
    let provider = registry.get(ProviderType::Box).unwrap();
    let scope = SyncScope { folder_id: folder, folder_path: None, connection_metadata: None };

    // Act
    let page1 = provider.list_children(&access_token(), &scope, folder, None).await.unwrap();
    let page2 = provider.list_children(&access_token(), &scope, folder, page1.next.as_deref()).await.unwrap();

    // Assert
    let summary: Vec<_> =
        page1.items.iter().chain(&page2.items).map(|i| (i.name.as_str(), i.kind, i.revision.as_deref())).collect();
    assert_eq!(
        summary,
        [
            ("factory-line.qsim", ItemKind::File, Some("3")),
            ("throughput-results.csv", ItemKind::File, Some("0")),
            ("Scenarios", ItemKind::Folder, Some("1")),
            ("warehouse-layout.qsim", ItemKind::File, Some("1")),
        ]
    );
    assert_eq!(page1.items[0].hash.as_deref(), Some(readme_hash(ProviderType::Box, "factory-line.qsim")));
    assert!(page1.items.iter().chain(&page2.items).all(|i| i.parent_id.as_deref() == Some(folder)));
    assert_eq!(page1.next.as_deref(), first["next_marker"].as_str());
    assert_eq!(page2.next, None);
}

// ---------------------------------------------------------------------------------------------
// Every family

#[tokio::test]
async fn every_family_reports_a_new_folder_classifies_a_503_and_takes_a_refreshed_token() {
    for kind in [ProviderType::OneDrive, ProviderType::GDrive, ProviderType::Dropbox, ProviderType::Box] {
        // Arrange: a folder created after the cursor; a 503 on the crawl; a 401 on the feed,
        // after which the fake's token endpoint hands out the token it also accepts.
        let s = Setup::scenario(kind).await;
        s.tree.set_page_size(100);
        let cursor = s.start_cursor().await;
        let folder = s.tree.add_folder("Exports");
        s.tree.inject(Endpoint::Children, Fault::ServerError);
        s.tree.inject(Endpoint::Changes, Fault::Unauthorized);
        let synced = s.tree.synced_folder_id();

        // Act
        let unavailable = s.provider().list_children(&access_token(), &s.scope(), &synced, None).await.unwrap_err();
        let expired = s.one_change_page(&cursor).await.unwrap_err();
        let refreshed = s.provider().refresh(&SecretString::from(REFRESH_TOKEN)).await.unwrap();
        let page = s.provider().changes(&refreshed.access_token, &s.scope(), &cursor).await.unwrap();

        // Assert
        assert_eq!(unavailable, ProviderError::Server { status: 503 }, "{kind}");
        assert!(unavailable.is_transient());
        assert!(matches!(expired, ProviderError::Rejected { status: 401, .. }), "{kind}: {expired:?}");
        assert_eq!(refreshed.access_token.expose_secret(), NEW_ACCESS_TOKEN, "{kind}");
        let created = expected(kind, &s.tree.expect("Exports"), true);
        assert_eq!(created.id, folder);
        assert!(page.changes.contains(&Change::Upsert(created)), "{kind}: {:#?}", page.changes);
    }
}
