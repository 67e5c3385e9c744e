//! Fakes of the providers' sync endpoints (listing, change feeds, downloads) over one model of
//! a remote drive, so the sync worker's tests can run the same scenario against every provider
//! family and change the remote tree between two syncs.
//!
//! A [`RemoteTree`] is a drive: its root, the synced folder ([`SYNCED_FOLDER`]) under it, and
//! whatever files and folders a test adds, inside the synced folder or outside it. Every change
//! (add, modify, rename, move, delete) is one step in a journal that keeps a snapshot of the
//! whole tree after it, so a cursor is just a step number: the fake answers "changes since a
//! cursor" by comparing two snapshots the way the provider reports them (Graph: the latest
//! state of each changed item with its parent chain; Drive: one change per item; Dropbox: by
//! path, a move being a delete at the old path and an entry at the new; Box: one event per
//! step). Revisions and hashes are recomputed with `shared::content_hash` on every change.
//!
//! `mount_*` registers one catch-all wiremock responder per family that answers from the
//! tree's shared state, so a test changes the tree and syncs again without mounting anything.
//! The responders have a low priority: a test can still put its own `Mock` in front of one
//! endpoint. Bodies follow the fixtures in `testkit/fixtures/` (field names, nesting, types);
//! URLs in them point at the fake. Faults ([`Fault`]) are injected per [`Endpoint`] and served
//! once. Every API request must carry `Bearer` [`ACCESS_TOKEN`] or [`NEW_ACCESS_TOKEN`] (what
//! the fake's `/token` endpoint hands out on refresh), or it gets the provider's 401.
//!
//! Conventions the fakes share: children come folders first, then by name; the default page
//! size is 2 ([`RemoteTree::set_page_size`]), so every crawl and feed pages; a cursor the
//! fake never handed out gets the provider's resync answer.
//!
//! ```
//! use shared::db::ProviderType;
//! use shared::providers::Change;
//! use testkit::sync_fakes::{RemoteTree, access_token, mount, registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = wiremock::MockServer::start().await;
//! let tree = RemoteTree::scenario(ProviderType::Dropbox);
//! mount(&server, &tree).await;
//! let registry = registry(&server, ProviderType::Dropbox);
//! let provider = registry.get(ProviderType::Dropbox).unwrap();
//! let scope = tree.scope();
//!
//! let cursor = provider.start_cursor(&access_token(), &scope.as_scope()).await.unwrap();
//! tree.delete("throughput-results.csv");
//! let page = provider.changes(&access_token(), &scope.as_scope(), &cursor).await.unwrap();
//! assert_eq!(
//!     page.changes,
//!     [Change::Deleted { id: None, path_lower: Some("/quodsi models/throughput-results.csv".into()) }]
//! );
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::content_hash::{ContentHasher, HashAlg};
use shared::db::ProviderType;
use shared::providers::{HttpSettings, ItemKind, Registry, SyncScope};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::providers::{ACCESS_TOKEN, CLIENT_SECRET, NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN, config, tokens};

/// The name of the synced folder, directly under the drive root.
pub const SYNCED_FOLDER: &str = "Quodsi Models";
/// The secret part of every pre-authenticated download URL the fakes hand out (Graph, Box):
/// no error, log or returned value may contain it.
pub const PREAUTH_SECRET: &str = "tempauth-FAKE-preauth-5e1d";
/// Path prefix of the fakes' pre-authenticated download URLs.
pub const PREAUTH_PATH: &str = "/preauth/";
/// A second SharePoint document library the Graph fake serves from the same tree: requests to
/// `/drives/{OTHER_LIBRARY}/…` answer as those to the tree's own drive do, so a test can browse
/// and sync a folder of a library that is not the connection's.
pub const OTHER_LIBRARY: &str = "b!QdsiFakeLibrary2-8XkS_I8MdFlUCq1BlcjgmhRfAj3-Z8RY2VpuvV_tpd";
/// The SharePoint site whose drives the Graph fake lists (the first of `sites_search.json`).
pub const FAKE_SITE: &str =
    "contoso.sharepoint.com,da60e844-ba1d-49bc-b4d4-d5e36bae9019,712a596e-90a1-49e3-9b48-bfa80bee8740";
/// The fakes' priority (wiremock: lower wins, default 5): a test's own mocks come first.
const PRIORITY: u8 = 10;
/// Box's stream positions are large numbers; step `n` of the journal is at `BOX_STREAM_BASE + n`.
pub const BOX_STREAM_BASE: u64 = 1_152_922_976_252_290_886;

/// The content rule of the fixtures (testkit/fixtures/README.md, "Hashes are real"): the line
/// `"<unit>\n"` repeated and cut to `size` bytes, so the README's hashes are known answers.
pub fn fixture_content(unit: &str, size: usize) -> Vec<u8> {
    format!("{unit}\n").into_bytes().into_iter().cycle().take(size).collect()
}

/// The API hosts that fixture bodies name, replaced by a fake's base URL by [`fixture`].
const FIXTURE_HOSTS: &[&str] = &[
    "https://graph.microsoft.com",
    "https://www.googleapis.com",
    "https://api.dropboxapi.com",
    "https://content.dropboxapi.com",
    "https://api.box.com",
    "https://upload.box.com",
];

/// A fixture body from `testkit/fixtures/` (`"graph/delta_page.json"`), with the provider API
/// hosts in its URLs replaced by `base` (a fake's `server.uri()`), so follow-up links reach the
/// fake. Pre-authenticated download hosts (SharePoint, `dl.boxcloud.com`) are left alone.
pub fn fixture(name: &str, base: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    for host in FIXTURE_HOSTS {
        text = text.replace(host, base);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {path} is not JSON: {e}"))
}

/// The provider families: OneDrive and SharePoint are both Microsoft Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Graph,
    Drive,
    Dropbox,
    Box,
}

impl Family {
    pub fn of(kind: ProviderType) -> Family {
        match kind {
            ProviderType::OneDrive | ProviderType::SharePoint => Family::Graph,
            ProviderType::GDrive => Family::Drive,
            ProviderType::Dropbox => Family::Dropbox,
            ProviderType::Box => Family::Box,
        }
    }
}

/// Which call an injected [`Fault`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Graph `delta?token=latest`, Drive `changes/startPageToken`, Dropbox `get_latest_cursor`,
    /// Box `events?stream_position=now`.
    StartCursor,
    /// A page of a folder's children.
    Children,
    /// A page of changes from a cursor (Box: from a stream position other than `now`).
    Changes,
    /// The authenticated download call (Graph/Box `/content`, Drive `alt=media`, Dropbox
    /// `files/download`); [`Fault::PreauthRefused`] answers the pre-authenticated URL instead.
    Download,
    /// The folder picker's calls: one item's metadata, a folder creation, SharePoint sites
    /// and a site's drives (a folder's children are [`Endpoint::Children`]).
    Browse,
    /// Change subscriptions: Graph `subscriptions`, Drive `changes/watch` and
    /// `channels/stop`, Box `webhooks`.
    Watch,
    /// Uploads: a one-request upload, opening a session, and each part sent to one.
    Upload,
}

/// A failure served once, in the provider's own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` (Drive: reason `rateLimitExceeded`; Dropbox: `retry_after` in
    /// the body as well).
    RateLimited { retry_after_secs: u64 },
    /// Drive's 403 `userRateLimitExceeded`, without `Retry-After`.
    UserRateLimit403,
    /// The provider's "this cursor is no longer honoured": Graph 410 `resyncChangesApplyDifferences`
    /// with a `Location`, Drive 400 `invalid` on `pageToken`, Dropbox 409 `reset`, Box 400
    /// `invalid_parameter` on `stream_position` (Box documents no signal; see the providers).
    Resync,
    /// The provider's 401 for an expired access token.
    Unauthorized,
    /// 503.
    ServerError,
    /// Box's 202 + `Retry-After` for a file not ready to download.
    NotReady { retry_after_secs: u64 },
    /// The pre-authenticated URL (Graph, Box) answers 403 with a body that quotes the URL.
    PreauthRefused,
}

#[derive(Debug, Clone)]
struct Node {
    id: String,
    name: String,
    /// `None` for the drive root only.
    parent: Option<String>,
    kind: ItemKind,
    content: Arc<Vec<u8>>,
    /// A Google Docs editor file: a size, but no bytes, checksum or head revision.
    google_doc: bool,
    /// Box: the id of the current file version, new with every upload.
    file_version_id: String,
    /// Bumped on every change to the item itself (content, name, parent).
    version: u64,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
}

type Snapshot = Arc<BTreeMap<String, Node>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    Created,
    Modified,
    Renamed,
    Moved,
    Deleted,
}

#[derive(Debug)]
struct Step {
    kind: StepKind,
    /// The item the step changed.
    id: String,
    /// The tree after the step.
    after: Snapshot,
    /// Box's `event_id` for the step.
    event_id: String,
}

#[derive(Debug)]
struct State {
    kind: ProviderType,
    family: Family,
    graph_personal: bool,
    drive_id: String,
    root_id: String,
    synced_id: String,
    nodes: BTreeMap<String, Node>,
    /// The tree before the first step (root and synced folder).
    base: Snapshot,
    steps: Vec<Step>,
    clock: DateTime<Utc>,
    issued: u64,
    page_size: usize,
    faults: Vec<(Endpoint, Fault)>,
    duplicate_events: bool,
    /// Files' bytes served (cells: the download responders read the state shared).
    downloads: std::cell::Cell<usize>,
    /// The change subscriptions the provider holds, by its id: the body it answered.
    watches: BTreeMap<String, Value>,
    /// Bytes to serve once instead of a file's own, by id.
    corrupt: std::cell::RefCell<BTreeMap<String, Vec<u8>>>,
    /// Open upload sessions, by id.
    uploads: BTreeMap<String, uploads::Session>,
    /// The next upload stores bytes other than those sent (a transfer corrupted on the way).
    corrupt_upload: bool,
}

/// A model drive shared by a test and the fake's responders. Clones share the same tree.
///
/// Paths are relative to the synced folder (`"Scenarios/baseline.qsim"`); a path that starts
/// with `/` is relative to the drive root instead, for items outside the synced folder
/// (`"/Elsewhere/notes.txt"`). Methods panic on a path that does not exist: that is a mistake
/// in the test.
#[derive(Debug, Clone)]
pub struct RemoteTree {
    state: Arc<Mutex<State>>,
}

/// An item of the model as the provider reports it, for a test's expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeItem {
    pub id: String,
    pub name: String,
    pub kind: ItemKind,
    /// `None` for the drive root.
    pub parent_id: Option<String>,
    /// From the drive root: `/Quodsi Models/Scenarios/baseline.qsim` (Dropbox's `path_display`).
    pub path: String,
    pub size: i64,
    /// The provider's hash as `content_hash::normalize` stores it; `None` for folders and
    /// Google Docs.
    pub hash: Option<String>,
    /// Graph `eTag`, Drive `headRevisionId`, Dropbox `rev`, Box `etag`, where the provider
    /// gives one for this kind of item.
    pub revision: Option<String>,
    pub mime_type: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// `None` for Dropbox folders, which carry no time.
    pub modified_at: Option<DateTime<Utc>>,
    /// False for folders and Google Docs (no bytes of their own).
    pub downloadable: bool,
    pub content: Vec<u8>,
}

/// A [`SyncScope`]'s parts, owned.
#[derive(Debug, Clone)]
pub struct Scope {
    pub folder_id: String,
    pub folder_path: Option<String>,
    pub connection_metadata: Value,
}

impl Scope {
    pub fn as_scope(&self) -> SyncScope<'_> {
        SyncScope {
            folder_id: &self.folder_id,
            folder_path: self.folder_path.as_deref(),
            connection_metadata: Some(&self.connection_metadata),
        }
    }
}

impl RemoteTree {
    /// An empty synced folder under the drive root. OneDrive and SharePoint trees are
    /// OneDrive for Business / SharePoint drives; see [`RemoteTree::new_onedrive_personal`].
    pub fn new(kind: ProviderType) -> RemoteTree {
        RemoteTree::build(kind, false)
    }

    /// An empty OneDrive Personal drive: `drive_type` "personal" in the connection metadata,
    /// ids in Personal's `{drive}!{n}` form, and delta scoped to the synced folder.
    pub fn new_onedrive_personal() -> RemoteTree {
        RemoteTree::build(ProviderType::OneDrive, true)
    }

    fn build(kind: ProviderType, graph_personal: bool) -> RemoteTree {
        let family = Family::of(kind);
        let start = Utc.with_ymd_and_hms(2026, 2, 11, 8, 0, 0).unwrap();
        let root_id = match family {
            Family::Graph => "01QDSIFAKEROOT0000000000000000000A".to_owned(),
            Family::Drive => "0AQdsiFakeRootFolderUk9PVA".to_owned(),
            // Dropbox's root has no id; "" is its path.
            Family::Dropbox => String::new(),
            Family::Box => "0".to_owned(),
        };
        let mut state = State {
            kind,
            family,
            graph_personal,
            drive_id: if graph_personal {
                "d4648f06c91d9d3d".to_owned()
            } else {
                "b!QdsiFakeDrive-RIj2DuyvEyV1T4NlOaMHk8XkS_I8MdFlUCq1BlcjgmhRfAj3".to_owned()
            },
            root_id: root_id.clone(),
            synced_id: String::new(),
            nodes: BTreeMap::new(),
            base: Arc::new(BTreeMap::new()),
            steps: Vec::new(),
            clock: start,
            issued: 0,
            page_size: 2,
            faults: Vec::new(),
            duplicate_events: false,
            downloads: Default::default(),
            watches: BTreeMap::new(),
            corrupt: Default::default(),
            uploads: BTreeMap::new(),
            corrupt_upload: false,
        };
        let root_name = if family == Family::Box { "All Files" } else { "root" };
        state.nodes.insert(root_id.clone(), Node::folder(root_id.clone(), root_name, None, start));
        let synced_id = state.new_id(ItemKind::Folder);
        state.nodes.insert(synced_id.clone(), Node::folder(synced_id.clone(), SYNCED_FOLDER, Some(root_id), start));
        state.synced_id = synced_id;
        state.base = Arc::new(state.nodes.clone());
        RemoteTree { state: Arc::new(Mutex::new(state)) }
    }

    /// The fixtures' tree (testkit/fixtures/README.md): `factory-line.qsim`,
    /// `throughput-results.csv`, `warehouse-layout.qsim` and `Scenarios/baseline.qsim`, with
    /// the README's contents (so its hashes are known answers), Drive's Google Doc
    /// `Model assumptions`, and one file outside the synced folder, `/Elsewhere/notes.txt`.
    pub fn scenario(kind: ProviderType) -> RemoteTree {
        RemoteTree::new(kind).with_scenario()
    }

    /// Adds [`RemoteTree::scenario`]'s items to this tree (to build the scenario on a
    /// [`RemoteTree::new_onedrive_personal`] drive).
    pub fn with_scenario(self) -> RemoteTree {
        let tree = self;
        let kind = tree.kind();
        for (path, unit, size) in [
            ("factory-line.qsim", "factory-line.qsim", 48213),
            ("throughput-results.csv", "throughput-results.csv", 7412),
            ("warehouse-layout.qsim", "warehouse-layout.qsim", 15987),
            ("Scenarios/baseline.qsim", "baseline.qsim", 20480),
        ] {
            tree.add_file(path, fixture_content(unit, size));
        }
        if Family::of(kind) == Family::Drive {
            tree.add_google_doc("Model assumptions");
        }
        tree.add_file("/Elsewhere/notes.txt", fixture_content("notes.txt", 1000));
        tree
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn kind(&self) -> ProviderType {
        self.lock().kind
    }

    /// Items per page of children and of changes (default 2, so paging is always exercised).
    /// A request asking for fewer gets fewer.
    pub fn set_page_size(&self, items: usize) {
        self.lock().page_size = items.max(1);
    }

    /// Box: serve every event twice in a page, as Box may ("events more than once").
    pub fn set_duplicate_events(&self, duplicate: bool) {
        self.lock().duplicate_events = duplicate;
    }

    /// Answers the next request to `endpoint` with `fault`, once. Faults queue in order.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault) {
        self.lock().faults.push((endpoint, fault));
    }

    /// How many times a file's bytes were served, at any family's download endpoint.
    pub fn downloads_served(&self) -> usize {
        self.lock().downloads.get()
    }

    /// The next download of the file at `path` serves `bytes` instead of its content (which
    /// its listing's size and hash still describe): a transfer corrupted on the way.
    pub fn corrupt_next_download(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        let state = self.lock();
        let id = state.resolve_or_panic(path);
        state.corrupt.borrow_mut().insert(id, bytes.into());
    }

    /// The change subscriptions the provider holds now (Graph subscriptions, Drive channels,
    /// Box webhooks), as it answered them when they were made or renewed.
    pub fn watches(&self) -> Vec<Value> {
        self.lock().watches.values().cloned().collect()
    }

    /// Ends every open upload session, as the provider does when one expires.
    pub fn expire_upload_sessions(&self) {
        self.lock().uploads.clear();
    }

    /// The next upload that lands stores its bytes with the first one changed, and answers
    /// the hash of what it stored.
    pub fn corrupt_next_upload(&self) {
        self.lock().corrupt_upload = true;
    }

    /// How many upload sessions are open.
    pub fn open_upload_sessions(&self) -> usize {
        self.lock().uploads.len()
    }

    /// Whether every injected fault has been served.
    pub fn faults_served(&self) -> bool {
        self.lock().faults.is_empty()
    }

    /// Graph's drive id (in the connection metadata and every Graph URL).
    pub fn drive_id(&self) -> String {
        self.lock().drive_id.clone()
    }

    pub fn synced_folder_id(&self) -> String {
        self.lock().synced_id.clone()
    }

    /// The synced folder as the sync worker addresses it, with the connection metadata the
    /// provider's identity call would have stored (Graph: drive id and type).
    pub fn scope(&self) -> Scope {
        let state = self.lock();
        let connection_metadata = match state.family {
            Family::Graph => json!({
                "drive_id": state.drive_id,
                "drive_type": state.graph_drive_type(),
                "account_type": if state.graph_personal { "personal" } else { "business" },
            }),
            Family::Drive => json!({ "account_type": "consumer" }),
            Family::Dropbox => json!({ "account_type": "basic" }),
            Family::Box => json!({ "account_type": "personal" }),
        };
        Scope {
            folder_id: state.synced_id.clone(),
            folder_path: Some(format!("/{SYNCED_FOLDER}")),
            connection_metadata,
        }
    }

    /// Adds a file (and any missing folder on its path); returns its id.
    pub fn add_file(&self, path: &str, content: impl Into<Vec<u8>>) -> String {
        self.lock().add(path, ItemKind::File, content.into(), false)
    }

    /// Adds a folder (and any missing folder above it); returns its id.
    pub fn add_folder(&self, path: &str) -> String {
        self.lock().add(path, ItemKind::Folder, Vec::new(), false)
    }

    /// Adds a Google Docs editor file (Drive): it has a size but no bytes of its own.
    pub fn add_google_doc(&self, path: &str) -> String {
        self.lock().add(path, ItemKind::File, fixture_content("Model assumptions", 1024), true)
    }

    /// New content for a file: a new revision and hash.
    pub fn modify(&self, path: &str, content: impl Into<Vec<u8>>) {
        let mut state = self.lock();
        let id = state.resolve_or_panic(path);
        let now = state.tick();
        let file_version_id = state.new_version_id();
        let node = state.nodes.get_mut(&id).expect("resolved node");
        assert_eq!(node.kind, ItemKind::File, "modify `{path}`: not a file");
        node.content = Arc::new(content.into());
        node.version += 1;
        node.modified = now;
        node.file_version_id = file_version_id;
        state.record(StepKind::Modified, &id);
    }

    pub fn rename(&self, path: &str, new_name: &str) {
        let mut state = self.lock();
        let id = state.resolve_or_panic(path);
        let now = state.tick();
        let node = state.nodes.get_mut(&id).expect("resolved node");
        node.name = new_name.to_owned();
        node.version += 1;
        node.modified = now;
        state.record(StepKind::Renamed, &id);
    }

    /// Moves an item into the folder at `new_parent` (`""` is the synced folder, `"/"` the
    /// drive root).
    pub fn move_to(&self, path: &str, new_parent: &str) {
        let mut state = self.lock();
        let id = state.resolve_or_panic(path);
        let parent = state.resolve_or_panic(new_parent);
        let now = state.tick();
        let node = state.nodes.get_mut(&id).expect("resolved node");
        node.parent = Some(parent);
        node.version += 1;
        node.modified = now;
        state.record(StepKind::Moved, &id);
    }

    /// Deletes an item and, for a folder, everything below it (one step: Box trashes the folder).
    pub fn delete(&self, path: &str) {
        let mut state = self.lock();
        let id = state.resolve_or_panic(path);
        let doomed: Vec<String> = state.nodes.keys().filter(|n| is_within(&state.nodes, n, &id)).cloned().collect();
        state.tick();
        for n in doomed {
            state.nodes.remove(&n);
        }
        state.record(StepKind::Deleted, &id);
    }

    /// The item at `path` now, as the provider reports it.
    pub fn item(&self, path: &str) -> Option<TreeItem> {
        let state = self.lock();
        let id = state.resolve(&state.nodes, path)?;
        Some(state.tree_item(&state.nodes, &state.nodes[&id]))
    }

    /// Like [`RemoteTree::item`], panicking when nothing is at `path`.
    pub fn expect(&self, path: &str) -> TreeItem {
        self.item(path).unwrap_or_else(|| panic!("no item at `{path}` in the remote tree"))
    }
}

impl Node {
    fn folder(id: String, name: &str, parent: Option<String>, at: DateTime<Utc>) -> Node {
        Node {
            id,
            name: name.to_owned(),
            parent,
            kind: ItemKind::Folder,
            content: Arc::new(Vec::new()),
            google_doc: false,
            file_version_id: String::new(),
            version: 1,
            created: at,
            modified: at,
        }
    }

    fn is_file(&self) -> bool {
        self.kind == ItemKind::File
    }

    fn mime_type(&self) -> &'static str {
        if self.google_doc {
            return "application/vnd.google-apps.document";
        }
        match self.name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv") => "text/csv",
            Some("txt") => "text/plain",
            _ => "application/octet-stream",
        }
    }

    fn digests(&self, alg: HashAlg) -> shared::content_hash::Digests {
        let mut hasher = ContentHasher::new(alg);
        hasher.update(&self.content);
        hasher.finish()
    }
}

/// Whether `id` is `ancestor` or below it in `nodes`.
fn is_within(nodes: &BTreeMap<String, Node>, id: &str, ancestor: &str) -> bool {
    let mut at = Some(id);
    while let Some(current) = at {
        if current == ancestor {
            return true;
        }
        at = nodes.get(current).and_then(|n| n.parent.as_deref());
    }
    false
}

/// A stable 64-bit digest of a string (FNV-1a), for made-up but repeatable revision tokens.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl State {
    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += chrono::Duration::seconds(97);
        self.clock
    }

    fn new_id(&mut self, kind: ItemKind) -> String {
        self.issued += 1;
        let n = self.issued;
        match self.family {
            Family::Graph if self.graph_personal => format!("D4648F06C91D9D3D!{}", 1000 + n),
            Family::Graph => format!("01QDSIFAKE{n:024}"),
            Family::Drive => format!("1QdsiFake{n:024}"),
            Family::Dropbox => format!("id:QdsiFake{n:012}"),
            Family::Box if kind == ItemKind::Folder => format!("{}", 246_813_580_000_u64 + n),
            Family::Box => format!("{}", 1_357_924_690_000_u64 + n),
        }
    }

    fn record(&mut self, kind: StepKind, id: &str) {
        let event_id = format!("{:016x}{:024x}", fnv(id), self.steps.len() + 1);
        self.steps.push(Step { kind, id: id.to_owned(), after: Arc::new(self.nodes.clone()), event_id });
    }

    fn new_version_id(&mut self) -> String {
        self.issued += 1;
        format!("{}", 1_493_827_170_000_u64 + self.issued)
    }

    /// The journal position now.
    fn seq(&self) -> u64 {
        self.steps.len() as u64
    }

    fn snapshot(&self, seq: u64) -> Option<Snapshot> {
        match seq {
            0 => Some(self.base.clone()),
            n => self.steps.get(usize::try_from(n - 1).ok()?).map(|s| s.after.clone()),
        }
    }

    fn take_fault(&mut self, endpoint: Endpoint, preauth: bool) -> Option<Fault> {
        let at = self.faults.iter().position(|(e, f)| *e == endpoint && (*f == Fault::PreauthRefused) == preauth)?;
        Some(self.faults.remove(at).1)
    }

    fn graph_drive_type(&self) -> &'static str {
        match (self.graph_personal, self.kind) {
            (true, _) => "personal",
            (false, ProviderType::SharePoint) => "documentLibrary",
            (false, _) => "business",
        }
    }

    fn child_named<'n>(&self, nodes: &'n BTreeMap<String, Node>, parent: &str, name: &str) -> Option<&'n Node> {
        nodes.values().find(|n| n.parent.as_deref() == Some(parent) && n.name == name)
    }

    fn resolve(&self, nodes: &BTreeMap<String, Node>, path: &str) -> Option<String> {
        let (mut at, rest) = match path.strip_prefix('/') {
            Some(rest) => (self.root_id.clone(), rest),
            None => (self.synced_id.clone(), path),
        };
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            at = self.child_named(nodes, &at, part)?.id.clone();
        }
        Some(at)
    }

    fn resolve_or_panic(&self, path: &str) -> String {
        self.resolve(&self.nodes, path).unwrap_or_else(|| panic!("no item at `{path}` in the remote tree"))
    }

    fn add(&mut self, path: &str, kind: ItemKind, content: Vec<u8>, google_doc: bool) -> String {
        let (parent_path, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some((parent, name)) => (if parent.is_empty() && path.starts_with('/') { "/" } else { parent }, name),
            None => ("", path),
        };
        let parent = match self.resolve(&self.nodes, parent_path) {
            Some(parent) => parent,
            None => self.add(parent_path, ItemKind::Folder, Vec::new(), false),
        };
        assert!(self.child_named(&self.nodes, &parent, name).is_none(), "`{path}` already exists in the remote tree");
        let now = self.tick();
        let id = self.new_id(kind);
        let mut node = Node::folder(id.clone(), name, Some(parent), now);
        node.kind = kind;
        node.content = Arc::new(content);
        node.google_doc = google_doc;
        if kind == ItemKind::File {
            node.file_version_id = self.new_version_id();
        }
        self.nodes.insert(id.clone(), node);
        self.record(StepKind::Created, &id);
        id
    }

    /// A new folder `name` in `parent`, recorded as a step; `Err` with the id of an item of that
    /// name already there, unless `twins` (Drive keeps two of one name side by side).
    fn create_folder_in(&mut self, parent: &str, name: &str, twins: bool) -> Result<String, String> {
        if !twins && let Some(existing) = self.child_named(&self.nodes, parent, name) {
            return Err(existing.id.clone());
        }
        let now = self.tick();
        let id = self.new_id(ItemKind::Folder);
        self.nodes.insert(id.clone(), Node::folder(id.clone(), name, Some(parent.to_owned()), now));
        self.record(StepKind::Created, &id);
        Ok(id)
    }

    /// Path from the drive root, `/`-separated; the root itself is `""` (as in Dropbox).
    fn path_of(&self, nodes: &BTreeMap<String, Node>, id: &str) -> String {
        let mut names = Vec::new();
        let mut at = nodes.get(id);
        while let Some(node) = at {
            if node.parent.is_none() {
                break;
            }
            names.push(node.name.as_str());
            at = node.parent.as_deref().and_then(|p| nodes.get(p));
        }
        names.reverse();
        names.iter().fold(String::new(), |mut path, name| {
            let _ = write!(path, "/{name}");
            path
        })
    }

    fn size_of(&self, nodes: &BTreeMap<String, Node>, node: &Node) -> i64 {
        match node.kind {
            ItemKind::File => node.content.len() as i64,
            ItemKind::Folder => nodes
                .values()
                .filter(|n| n.is_file() && n.id != node.id && is_within(nodes, &n.id, &node.id))
                .map(|n| n.content.len() as i64)
                .sum(),
        }
    }

    /// Direct children, folders first, then by name (a stable order for paging).
    fn children<'n>(&self, nodes: &'n BTreeMap<String, Node>, parent: &str) -> Vec<&'n Node> {
        let mut children: Vec<&Node> = nodes.values().filter(|n| n.parent.as_deref() == Some(parent)).collect();
        children.sort_by(|a, b| (a.is_file(), &a.name).cmp(&(b.is_file(), &b.name)));
        children
    }

    fn hash_alg(&self) -> HashAlg {
        HashAlg::for_provider(self.kind)
    }

    /// The provider's hash of a file, lowercase hex (what `normalize` stores).
    fn hash_hex(&self, node: &Node) -> Option<String> {
        (node.is_file() && !node.google_doc).then(|| node.digests(self.hash_alg()).provider)
    }

    fn revision(&self, node: &Node) -> Option<String> {
        match self.family {
            Family::Graph => Some(graph_etag(node)),
            Family::Drive => (node.is_file() && !node.google_doc).then(|| drive_revision(node)),
            Family::Dropbox => node.is_file().then(|| dropbox_rev(node)),
            Family::Box => Some(box_etag(node)),
        }
    }

    fn tree_item(&self, nodes: &BTreeMap<String, Node>, node: &Node) -> TreeItem {
        let mime_type = match self.family {
            Family::Graph => node.is_file().then(|| node.mime_type().to_owned()),
            Family::Drive if node.is_file() => Some(node.mime_type().to_owned()),
            Family::Drive => Some(DRIVE_FOLDER.to_owned()),
            Family::Dropbox | Family::Box => None,
        };
        TreeItem {
            id: node.id.clone(),
            name: node.name.clone(),
            kind: node.kind,
            parent_id: node.parent.clone(),
            path: self.path_of(nodes, &node.id),
            size: self.size_of(nodes, node),
            hash: self.hash_hex(node),
            revision: self.revision(node),
            mime_type,
            created_at: (self.family != Family::Dropbox).then_some(node.created),
            modified_at: (self.family != Family::Dropbox || node.is_file()).then_some(node.modified),
            downloadable: node.is_file() && !node.google_doc,
            content: node.content.to_vec(),
        }
    }
}

fn graph_guid(node: &Node) -> String {
    let h = fnv(&node.id);
    format!("{{{:08X}-{:04X}-4{:03X}-8{:03X}-{:012X}}}", h >> 32, (h >> 16) & 0xffff, h & 0xfff, (h >> 4) & 0xfff, h)
}

fn graph_etag(node: &Node) -> String {
    format!("\"{},{}\"", graph_guid(node), node.version)
}

fn drive_revision(node: &Node) -> String {
    format!("0BQdsi{:016x}r{}", fnv(&node.id), node.version)
}

fn dropbox_rev(node: &Node) -> String {
    format!("{:011x}{:04x}", fnv(&node.id) & 0xff_ffff_ffff, node.version)
}

fn box_etag(node: &Node) -> String {
    (node.version - 1).to_string()
}

const DRIVE_FOLDER: &str = "application/vnd.google-apps.folder";

// ---------------------------------------------------------------------------------------------
// Configuration and mounting

/// A registry whose `kind` has every endpoint on `server` (`api_base_url`, token, authorize and
/// revocation URLs), with short timeouts.
pub fn registry(server: &MockServer, kind: ProviderType) -> Registry {
    let uri = server.uri();
    let mut entry = json!({
        "client_id": format!("{kind}-client-id"),
        "client_secret": CLIENT_SECRET,
        "authorize_url": format!("{uri}/authorize"),
        "token_url": format!("{uri}/token"),
        "api_base_url": uri,
    });
    if kind != ProviderType::Dropbox {
        entry["revoke_url"] = json!(format!("{uri}/revoke"));
    }
    let config = config(json!({ kind.as_str(): entry }));
    let settings = HttpSettings {
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(10),
        transfer_read_timeout: Duration::from_secs(10),
    };
    Registry::with_settings(&config.providers, config.oauth_redirect_base_url.as_deref(), settings).expect("registry")
}

/// The access token the fakes accept.
pub fn access_token() -> SecretString {
    SecretString::from(ACCESS_TOKEN)
}

/// Mounts the fake of `tree`'s provider family on `server` (one family per server).
pub async fn mount(server: &MockServer, tree: &RemoteTree) {
    let family = tree.lock().family;
    match family {
        Family::Graph => mount_graph(server, tree).await,
        Family::Drive => mount_drive(server, tree).await,
        Family::Dropbox => mount_dropbox(server, tree).await,
        Family::Box => mount_box(server, tree).await,
    }
}

/// Microsoft Graph (OneDrive, SharePoint): `/drives/{d}/items/{id}/children` with `$top` and
/// `@odata.nextLink`, `root/delta` (and, on a [`RemoteTree::new_onedrive_personal`] drive,
/// the folder's own `items/{id}/delta`; Business refuses it with `notSupported`), and
/// `/content` answering 302 to a pre-authenticated URL on the same server that refuses any
/// request carrying `Authorization`. `/me/drive/...` is the same drive.
pub async fn mount_graph(server: &MockServer, tree: &RemoteTree) {
    mount_family(server, tree, Family::Graph).await;
}

/// Google Drive v3: `changes/startPageToken`, `changes` (the whole drive, as Drive's feed
/// is), `files` with `q='<id>' in parents and trashed = false`, and `files/{id}?alt=media`
/// (refused for Google Docs, as Drive does).
pub async fn mount_drive(server: &MockServer, tree: &RemoteTree) {
    mount_family(server, tree, Family::Drive).await;
}

/// Dropbox: `list_folder`, `list_folder/continue`, `list_folder/get_latest_cursor` and the
/// content endpoint `files/download`, all on `server` (the provider sends content calls to
/// `api_base_url` when it is set).
pub async fn mount_dropbox(server: &MockServer, tree: &RemoteTree) {
    mount_family(server, tree, Family::Dropbox).await;
}

/// Box 2.0: `/folders/{id}/items` with marker paging, the user event stream
/// (`events?stream_type=changes`, one event per step, over the whole account; positions are
/// [`BOX_STREAM_BASE`] plus the step), and `/files/{id}/content` answering 302 to a
/// pre-authenticated URL on the same server that refuses any request carrying
/// `Authorization`.
pub async fn mount_box(server: &MockServer, tree: &RemoteTree) {
    mount_family(server, tree, Family::Box).await;
}

async fn mount_family(server: &MockServer, tree: &RemoteTree, family: Family) {
    assert_eq!(tree.lock().family, family, "the tree belongs to another provider family");
    let responder = Fake { tree: tree.clone(), base: server.uri() };
    Mock::given(any()).respond_with(responder).with_priority(PRIORITY).mount(server).await;
}

struct Fake {
    tree: RemoteTree,
    base: String,
}

impl Respond for Fake {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.tree.lock();
        if request.method.as_str() == "POST" && request.url.path() == "/token" {
            return ResponseTemplate::new(200).set_body_json(tokens(
                state.kind,
                NEW_ACCESS_TOKEN,
                ROTATED_REFRESH_TOKEN,
            ));
        }
        let http = Http { request, base: &self.base };
        match state.family {
            Family::Graph => graph::respond(&mut state, &http),
            Family::Drive => drive::respond(&mut state, &http),
            Family::Dropbox => dropbox::respond(&mut state, &http),
            Family::Box => boxcom::respond(&mut state, &http),
        }
    }
}

/// One request, with the helpers every family's router uses.
struct Http<'r> {
    request: &'r Request,
    /// The fake's base URL, for the absolute links in bodies and headers.
    base: &'r str,
}

impl Http<'_> {
    fn method(&self) -> &str {
        self.request.method.as_str()
    }

    /// The path's segments, percent-decoded.
    fn segments(&self) -> Vec<String> {
        self.request.url.path().split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
    }

    fn query(&self, key: &str) -> Option<String> {
        self.request.url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.request.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn authorized(&self) -> bool {
        let accepted = [format!("Bearer {ACCESS_TOKEN}"), format!("Bearer {NEW_ACCESS_TOKEN}")];
        self.header("authorization").is_some_and(|h| accepted.iter().any(|a| a == h))
    }

    fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.request.body).ok()
    }
}

/// A path segment, percent-decoded (for the fakes in `providers`).
pub fn decode_segment(segment: &str) -> String {
    percent_decode(segment)
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A made-up subscription id, unique within a tree.
fn watch_id(state: &mut State) -> String {
    state.issued += 1;
    format!("{:08x}-7f10-4c7d-97cd-{:012x}", fnv(&state.drive_id) as u32, state.issued)
}

fn opaque(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn unopaque(token: &str) -> Option<String> {
    String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?).ok()
}

fn page_len(state: &State, asked: Option<usize>) -> usize {
    asked.map_or(state.page_size, |a| a.clamp(1, state.page_size))
}

/// A file's bytes, counted, corrupted once if the test asked for it.
fn file_bytes(state: &State, id: &str, content: &[u8]) -> ResponseTemplate {
    state.downloads.set(state.downloads.get() + 1);
    match state.corrupt.borrow_mut().remove(id) {
        Some(bytes) => bytes_response(&bytes),
        None => bytes_response(content),
    }
}

fn bytes_response(content: &[u8]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(content.to_vec(), "application/octet-stream")
}

/// Which ids changed between two snapshots, in the order they were last touched: the latest
/// state of each (`Some`), or the state before it was deleted (`None` in `to`).
fn changed_ids(state: &State, from: u64, to: u64) -> Vec<(Option<Node>, Option<Node>)> {
    let (Some(old), Some(new)) = (state.snapshot(from), state.snapshot(to)) else { return Vec::new() };
    let mut order: Vec<String> = Vec::new();
    for step in &state.steps[from as usize..to as usize] {
        order.retain(|id| *id != step.id);
        order.push(step.id.clone());
    }
    // Items removed with a deleted folder were not touched by a step of their own.
    let untouched: BTreeSet<String> = old
        .keys()
        .chain(new.keys())
        .filter(|id| !order.contains(id) && old.get(*id).map(|n| n.version) != new.get(*id).map(|n| n.version))
        .cloned()
        .collect();
    order.extend(untouched);
    order
        .into_iter()
        .filter_map(|id| {
            let before = old.get(&id).cloned();
            let after = new.get(&id).cloned();
            match (&before, &after) {
                (None, None) => None,
                (Some(b), Some(a)) if b.version == a.version => None,
                _ => Some((before, after)),
            }
        })
        .collect()
}

/// The pre-authenticated URL of a file's bytes (Graph, Box).
fn preauth_url(base: &str, family: &str, id: &str) -> String {
    format!("{base}{PREAUTH_PATH}{family}/{id}?tempauth={PREAUTH_SECRET}")
}

/// The pre-authenticated download: no `Authorization` accepted, the secret required.
fn preauth(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
    if http.header("authorization").is_some() {
        return ResponseTemplate::new(401).set_body_string("a pre-authenticated URL takes no Authorization header");
    }
    if http.query("tempauth").as_deref() != Some(PREAUTH_SECRET) {
        return ResponseTemplate::new(403).set_body_string("Access denied");
    }
    if state.take_fault(Endpoint::Download, true).is_some() {
        // A host that echoes the URL in its error: the provider must not repeat it.
        return ResponseTemplate::new(403).set_body_string(format!("Access denied to {}", http.request.url));
    }
    match state.nodes.get(id) {
        Some(node) if node.is_file() => file_bytes(state, id, &node.content),
        _ => ResponseTemplate::new(404).set_body_string("File Not Found"),
    }
}

#[path = "sync_fakes_uploads.rs"]
mod uploads;

// ---------------------------------------------------------------------------------------------
// Microsoft Graph

mod graph {
    use super::*;

    /// A delta token: changes from `from` (`None`: the whole enumeration) to `to` (fixed by
    /// the first page), starting at `offset`.
    #[derive(Debug, Clone, Copy)]
    struct Token {
        from: Option<u64>,
        to: Option<u64>,
        offset: usize,
    }

    impl Token {
        fn encode(self) -> String {
            let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
            opaque(&format!("{}|{}|{}", num(self.from), num(self.to), self.offset))
        }

        fn decode(text: &str) -> Option<Token> {
            let plain = unopaque(text)?;
            let [from, to, offset] = plain.split('|').collect::<Vec<_>>()[..] else { return None };
            let num = |s: &str| if s.is_empty() { Ok(None) } else { s.parse().map(Some) };
            Some(Token { from: num(from).ok()?, to: num(to).ok()?, offset: offset.parse().ok()? })
        }
    }

    pub(super) fn respond(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        let segments = http.segments();
        let route: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let ["preauth", "graph", id] = route.as_slice() {
            return preauth(state, http, id);
        }
        if let ["upload", "graph", id] = route.as_slice() {
            return uploads::graph_session(state, http, id);
        }
        if let ["v1.0", "sites", site @ ..] = route.as_slice() {
            return sites(state, http, site);
        }
        if let ["v1.0", "subscriptions", rest @ ..] = route.as_slice() {
            return subscriptions(state, http, rest);
        }
        // The drive addressed (the tree's own or OTHER_LIBRARY): the links handed out keep it.
        let own = state.drive_id.clone();
        let (drive, rest): (String, &[&str]) = match route.as_slice() {
            ["v1.0", "drives", d, rest @ ..] if *d == own || *d == OTHER_LIBRARY => ((*d).to_owned(), rest),
            ["v1.0", "me", "drive", rest @ ..] => (own, rest),
            _ => return item_not_found(),
        };
        if let Some(answer) = uploads::graph(state, http, rest) {
            return answer;
        }
        if let Some(answer) = browse(state, http, rest) {
            return answer;
        }
        if http.method() != "GET" {
            return item_not_found();
        }
        let endpoint = match rest {
            ["root", "delta"] | ["items", _, "delta"] if http.query("token").as_deref() == Some("latest") => {
                Endpoint::StartCursor
            }
            ["root", "delta"] | ["items", _, "delta"] => Endpoint::Changes,
            ["items", _, "children"] | ["root", "children"] => Endpoint::Children,
            ["items", _, "content"] => Endpoint::Download,
            _ => return item_not_found(),
        };
        if let Some(fault) = state.take_fault(endpoint, false) {
            return fault_response(state, http, fault);
        }
        if !http.authorized() {
            return fault_response(state, http, Fault::Unauthorized);
        }
        match rest {
            ["root", "delta"] => {
                let root = state.root_id.clone();
                delta(state, http, &root, &format!("/v1.0/drives/{drive}/root/delta"))
            }
            ["items", id, "delta"] if state.graph_personal => match state.nodes.get(*id) {
                Some(node) if !node.is_file() => {
                    delta(state, http, id, &format!("/v1.0/drives/{drive}/items/{id}/delta"))
                }
                _ => item_not_found(),
            },
            ["items", _, "delta"] => ResponseTemplate::new(400).set_body_json(json!({
                "error": { "code": "notSupported", "message": "view.delta can only be called on the root." }
            })),
            ["items", id, "children"] => children(state, http, &drive, id),
            ["root", "children"] => {
                let root = state.root_id.clone();
                children(state, http, &drive, &root)
            }
            ["items", id, "content"] => match state.nodes.get(*id) {
                Some(node) if node.is_file() => {
                    ResponseTemplate::new(302).insert_header("Location", preauth_url(http.base, "graph", id).as_str())
                }
                _ => item_not_found(),
            },
            _ => item_not_found(),
        }
    }

    pub(super) fn item_not_found() -> ResponseTemplate {
        ResponseTemplate::new(404).set_body_json(json!({
            "error": { "code": "itemNotFound", "message": "The resource could not be found." }
        }))
    }

    /// The picker's calls on a drive: `GET` of an item (`root`, `items/{id}`, or addressed by
    /// path under a parent, `items/{id}:/{name}:` and `root:/{name}:`) and `POST …/children`
    /// (a folder, `conflictBehavior: fail`). `None` for the other routes.
    fn browse(state: &mut State, http: &Http<'_>, rest: &[&str]) -> Option<ResponseTemplate> {
        let root = state.root_id.clone();
        let post = http.method() == "POST";
        let target: Option<(String, Option<String>)> = match rest {
            ["root"] if !post => Some((root.clone(), None)),
            ["items", id] if !post => Some(((*id).to_owned(), None)),
            ["root:", name] if !post => Some((root.clone(), Some(name.strip_suffix(':')?.to_owned()))),
            ["items", parent, name] if !post && parent.ends_with(':') => {
                Some((parent.trim_end_matches(':').to_owned(), Some(name.strip_suffix(':')?.to_owned())))
            }
            ["root", "children"] | ["items", _, "children"] if post => None,
            _ => return None,
        };
        if let Some(fault) = state.take_fault(Endpoint::Browse, false) {
            return Some(fault_response(state, http, fault));
        }
        if !http.authorized() {
            return Some(fault_response(state, http, Fault::Unauthorized));
        }
        Some(match target {
            Some((id, name)) => {
                let id = match name {
                    Some(name) => match state.child_named(&state.nodes, &id, &name) {
                        Some(child) => child.id.clone(),
                        None => return Some(item_not_found()),
                    },
                    None => id,
                };
                match state.nodes.get(&id) {
                    Some(node) => {
                        ResponseTemplate::new(200).set_body_json(item(state, &state.nodes, node, http.base, true))
                    }
                    None => item_not_found(),
                }
            }
            None => {
                let parent = match rest {
                    ["items", id, "children"] => (*id).to_owned(),
                    _ => root,
                };
                create(state, http, &parent)
            }
        })
    }

    /// `POST /subscriptions` (a drive root, `changeType: updated`, a clientState, an expiry
    /// under 42,300 minutes), `PATCH` and `DELETE /subscriptions/{id}`.
    fn subscriptions(state: &mut State, http: &Http<'_>, rest: &[&str]) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Watch, false) {
            return fault_response(state, http, fault);
        }
        if !http.authorized() {
            return fault_response(state, http, Fault::Unauthorized);
        }
        let gone = || {
            ResponseTemplate::new(404).set_body_json(json!({
                "error": { "code": "ResourceNotFound", "message": "The object was not found." }
            }))
        };
        let body = http.body_json().unwrap_or_default();
        match (http.method(), rest) {
            ("POST", []) => {
                let resource = body["resource"].as_str().unwrap_or_default().to_owned();
                let valid = body["changeType"] == "updated"
                    && resource.ends_with("/root")
                    && body["notificationUrl"].as_str().is_some_and(|u| u.ends_with("/webhooks/graph"))
                    && body["lifecycleNotificationUrl"] == body["notificationUrl"]
                    && body["clientState"].as_str().is_some_and(|c| !c.is_empty() && c.len() <= 128)
                    && body["expirationDateTime"].as_str().is_some();
                if !valid {
                    return ResponseTemplate::new(400).set_body_json(json!({
                        "error": { "code": "InvalidRequest", "message": "Subscription validation request failed." }
                    }));
                }
                let id = watch_id(state);
                let made = json!({
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                    "id": id,
                    "resource": resource,
                    "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
                    "changeType": "updated",
                    "clientState": body["clientState"],
                    "notificationUrl": body["notificationUrl"],
                    "lifecycleNotificationUrl": body["lifecycleNotificationUrl"],
                    "expirationDateTime": body["expirationDateTime"],
                    "creatorId": "8ee44408-0679-472c-bc2a-692812af3437",
                    "latestSupportedTlsVersion": "v1_2",
                });
                state.watches.insert(id, made.clone());
                ResponseTemplate::new(201).set_body_json(made)
            }
            ("PATCH", [id]) => match state.watches.get_mut(*id) {
                Some(made) => {
                    made["expirationDateTime"] = body["expirationDateTime"].clone();
                    ResponseTemplate::new(200).set_body_json(made.clone())
                }
                None => gone(),
            },
            ("DELETE", [id]) => match state.watches.remove(*id) {
                Some(_) => ResponseTemplate::new(204),
                None => gone(),
            },
            _ => gone(),
        }
    }

    /// `POST …/children`: the body must be a folder with `conflictBehavior: fail`.
    fn create(state: &mut State, http: &Http<'_>, parent: &str) -> ResponseTemplate {
        let body = http.body_json().unwrap_or_default();
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let valid = !name.is_empty()
            && body.get("folder").is_some_and(Value::is_object)
            && body.get("@microsoft.graph.conflictBehavior").and_then(Value::as_str) == Some("fail");
        if !valid {
            return ResponseTemplate::new(400).set_body_json(json!({
                "error": { "code": "invalidRequest", "message": "Invalid request" }
            }));
        }
        if state.nodes.get(parent).is_none_or(|n| n.is_file()) {
            return item_not_found();
        }
        match state.create_folder_in(parent, &name, false) {
            Ok(id) => {
                let node = state.nodes[&id].clone();
                ResponseTemplate::new(201).set_body_json(item(state, &state.nodes, &node, http.base, true))
            }
            Err(_) => ResponseTemplate::new(409).set_body_json(fixture("graph/create_folder_conflict.json", http.base)),
        }
    }

    /// `GET /sites?search=` (the fixture's sites whose name contains the search; all for `*`)
    /// and `GET /sites/{id}/drives` ([`FAKE_SITE`]: the tree's drive as "Documents" and
    /// [`OTHER_LIBRARY`] as "Models Library").
    fn sites(state: &mut State, http: &Http<'_>, site: &[&str]) -> ResponseTemplate {
        if http.method() != "GET" {
            return item_not_found();
        }
        if let Some(fault) = state.take_fault(Endpoint::Browse, false) {
            return fault_response(state, http, fault);
        }
        if !http.authorized() {
            return fault_response(state, http, Fault::Unauthorized);
        }
        match site {
            [] => {
                let search = http.query("search").unwrap_or_default().to_lowercase();
                let mut body = fixture("graph/sites_search.json", http.base);
                if let Some(Value::Array(all)) = body.get_mut("value") {
                    all.retain(|s| {
                        search == "*" || s["name"].as_str().is_some_and(|n| n.to_lowercase().contains(&search))
                    });
                }
                ResponseTemplate::new(200).set_body_json(body)
            }
            [id, "drives"] if *id == FAKE_SITE => {
                let mut body = fixture("graph/site_drives.json", http.base);
                let documents = body["value"][0].clone();
                let mut other = documents.clone();
                other["id"] = json!(OTHER_LIBRARY);
                other["name"] = json!("Models Library");
                other["webUrl"] = json!("https://contoso.sharepoint.com/sites/siteA/Models%20Library");
                let mut own = documents;
                own["id"] = json!(state.drive_id);
                body["value"] = json!([own, other]);
                ResponseTemplate::new(200).set_body_json(body)
            }
            _ => item_not_found(),
        }
    }

    pub(super) fn fault_response(state: &State, http: &Http<'_>, fault: Fault) -> ResponseTemplate {
        match fault {
            Fault::RateLimited { retry_after_secs } => ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after_secs.to_string().as_str())
                .set_body_json(fixture("graph/error_429.json", http.base)),
            Fault::UserRateLimit403 => drive_user_rate_limit(),
            Fault::Resync => ResponseTemplate::new(410)
                .insert_header("Location", format!("{}/v1.0/drives/{}/root/delta", http.base, state.drive_id).as_str())
                .set_body_json(fixture("graph/error_resync_410.json", http.base)),
            Fault::Unauthorized => ResponseTemplate::new(401)
                .insert_header(
                    "WWW-Authenticate",
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                )
                .set_body_json(fixture("graph/error_401.json", http.base)),
            Fault::ServerError => ResponseTemplate::new(503).set_body_json(json!({
                "error": { "code": "serviceNotAvailable", "message": "Service Unavailable" }
            })),
            Fault::NotReady { retry_after_secs } => {
                ResponseTemplate::new(202).insert_header("Retry-After", retry_after_secs.to_string().as_str())
            }
            Fault::PreauthRefused => ResponseTemplate::new(403),
        }
    }

    fn time(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// A driveItem as Graph shows it: in a listing with `cTag`, the parent's name and path and
    /// a `@microsoft.graph.downloadUrl`; in a Business delta without `cTag` or parent path.
    pub(super) fn item(state: &State, nodes: &BTreeMap<String, Node>, node: &Node, base: &str, listing: bool) -> Value {
        let mut parent = json!({ "driveType": state.graph_drive_type(), "driveId": state.drive_id });
        if let Some(parent_node) = node.parent.as_deref().and_then(|p| nodes.get(p)) {
            parent["id"] = json!(parent_node.id);
            if listing {
                parent["name"] = json!(parent_node.name);
                let path = state.path_of(nodes, &parent_node.id);
                // Graph URL-encodes the path (an API path): `/drive/root:/Festa%20della%20mamma`.
                let encoded: String = path
                    .split('/')
                    .map(|segment| {
                        form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                parent["path"] = json!(format!("/drives/{}/root:{encoded}", state.drive_id));
            }
        }
        let mut value = json!({
            "createdDateTime": time(node.created),
            "eTag": graph_etag(node),
            "id": node.id,
            "lastModifiedDateTime": time(node.modified),
            "name": node.name,
            "parentReference": parent,
            "webUrl": format!("https://contoso.sharepoint.com/sites/siteA/Shared%20Documents{}", state.path_of(nodes, &node.id).replace(' ', "%20")),
            "fileSystemInfo": { "createdDateTime": time(node.created), "lastModifiedDateTime": time(node.modified) },
            "size": state.size_of(nodes, node),
        });
        if node.is_file() {
            let mut quick_xor = shared::content_hash::QuickXorHash::new();
            quick_xor.update(&node.content);
            let hash = base64::engine::general_purpose::STANDARD.encode(quick_xor.finish());
            value["file"] = json!({ "mimeType": node.mime_type(), "hashes": { "quickXorHash": hash } });
            if listing || state.graph_personal {
                value["cTag"] = json!(format!("\"c:{},{}\"", graph_guid(node), node.version));
            }
            if listing {
                value["@microsoft.graph.downloadUrl"] = json!(preauth_url(base, "graph", &node.id));
            }
        } else {
            value["folder"] = json!({ "childCount": state.children(nodes, &node.id).len() });
        }
        if node.parent.is_none() {
            value["root"] = json!({});
        }
        value
    }

    /// A deleted item: Business keeps only the id, the parent reference and the facet; Personal
    /// keeps the name too (delta reference, Remarks).
    fn deleted(state: &State, node: &Node) -> Value {
        let mut value = json!({
            "id": node.id,
            "parentReference": { "driveType": state.graph_drive_type(), "driveId": state.drive_id, "id": node.parent },
            "deleted": {},
        });
        if state.graph_personal {
            value["name"] = json!(node.name);
        }
        value
    }

    /// The delta feed from `token` within `top` (the drive root, or a Personal folder): the
    /// latest state of each changed item, preceded by its parent chain (Graph returns "the
    /// parent hierarchy of the changed items"); a deleted item, or one moved out of `top`, as
    /// `deleted`. Without `from`, every item under `top`.
    fn feed(state: &State, top: &str, token: Token, to: u64, base: &str) -> Vec<Value> {
        let Some(now) = state.snapshot(to) else { return Vec::new() };
        let Some(from) = token.from else {
            let mut all: Vec<&Node> = now.values().filter(|n| is_within(&now, &n.id, top)).collect();
            all.sort_by_key(|n| (state.path_of(&now, &n.id).matches('/').count(), state.path_of(&now, &n.id)));
            return all.into_iter().map(|n| item(state, &now, n, base, false)).collect();
        };
        let Some(then) = state.snapshot(from) else { return Vec::new() };
        let mut emitted = BTreeSet::new();
        let mut out = Vec::new();
        for (before, after) in changed_ids(state, from, to) {
            match after {
                Some(node) if is_within(&now, &node.id, top) => {
                    let mut chain = Vec::new();
                    let mut at = node.parent.clone();
                    while let Some(parent) = at.filter(|p| is_within(&now, p, top)) {
                        chain.push(parent.clone());
                        at = now.get(&parent).and_then(|p| p.parent.clone());
                    }
                    for id in chain.into_iter().rev().chain(std::iter::once(node.id.clone())) {
                        if emitted.insert(id.clone()) {
                            out.push(item(state, &now, &now[&id], base, false));
                        }
                    }
                }
                _ => {
                    if let Some(node) = before.filter(|b| is_within(&then, &b.id, top))
                        && emitted.insert(node.id.clone())
                    {
                        out.push(deleted(state, &node));
                    }
                }
            }
        }
        out
    }

    fn delta(state: &State, http: &Http<'_>, top: &str, path: &str) -> ResponseTemplate {
        let link = |token: Token| format!("{}{path}?token={}", http.base, token.encode());
        let context = json!("https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)");
        let token = match http.query("token") {
            Some(t) if t == "latest" => {
                let latest = Token { from: Some(state.seq()), to: None, offset: 0 };
                return ResponseTemplate::new(200).set_body_json(json!({
                    "@odata.context": context,
                    "@odata.deltaLink": link(latest),
                    "value": [],
                }));
            }
            None => Token { from: None, to: None, offset: 0 },
            Some(t) => match Token::decode(&t) {
                Some(token)
                    if token.from.is_none_or(|f| f <= state.seq()) && token.to.is_none_or(|t| t <= state.seq()) =>
                {
                    token
                }
                // A token this fake never handed out: what Graph answers for an expired one.
                _ => return fault_response(state, http, Fault::Resync),
            },
        };
        let to = token.to.unwrap_or_else(|| state.seq());
        let all = feed(state, top, token, to, http.base);
        let page: Vec<Value> = all.iter().skip(token.offset).take(page_len(state, None)).cloned().collect();
        let mut body = json!({ "@odata.context": context, "value": page });
        if token.offset + page.len() < all.len() {
            body["@odata.nextLink"] = json!(link(Token { to: Some(to), offset: token.offset + page.len(), ..token }));
        } else {
            body["@odata.deltaLink"] = json!(link(Token { from: Some(to), to: None, offset: 0 }));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }

    fn children(state: &State, http: &Http<'_>, drive: &str, id: &str) -> ResponseTemplate {
        match state.nodes.get(id) {
            Some(node) if !node.is_file() => {}
            _ => return item_not_found(),
        }
        let top = http.query("$top").and_then(|t| t.parse().ok());
        let offset: usize = http.query("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
        let all = state.children(&state.nodes, id);
        let take = page_len(state, top);
        let page: Vec<Value> =
            all.iter().skip(offset).take(take).map(|n| item(state, &state.nodes, n, http.base, true)).collect();
        let mut body = json!({
            "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#drives('{}')/items('{id}')/children", state.drive_id),
            "value": page,
        });
        if offset + page.len() < all.len() {
            body["@odata.nextLink"] = json!(format!(
                "{}/v1.0/drives/{drive}/items/{id}/children?$top={take}&$skiptoken={}",
                http.base,
                offset + page.len()
            ));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Google Drive

mod drive {
    use super::*;

    /// Start page tokens are numbers as Drive's are (`TOKEN_BASE + step`); the tokens of
    /// the pages in between are opaque.
    const TOKEN_BASE: u64 = 4587;
    const PAGE_TOKEN_PREFIX: &str = "~!!~";

    #[derive(Debug, Clone, Copy)]
    struct Token {
        from: u64,
        to: Option<u64>,
        offset: usize,
    }

    impl Token {
        fn encode(self) -> String {
            match self.to {
                None => (TOKEN_BASE + self.from).to_string(),
                Some(to) => format!("{PAGE_TOKEN_PREFIX}{}", opaque(&format!("{}|{to}|{}", self.from, self.offset))),
            }
        }

        fn decode(text: &str) -> Option<Token> {
            if let Some(rest) = text.strip_prefix(PAGE_TOKEN_PREFIX) {
                let plain = unopaque(rest)?;
                let [from, to, offset] = plain.split('|').collect::<Vec<_>>()[..] else { return None };
                return Some(Token {
                    from: from.parse().ok()?,
                    to: Some(to.parse().ok()?),
                    offset: offset.parse().ok()?,
                });
            }
            let from = text.parse::<u64>().ok()?.checked_sub(TOKEN_BASE)?;
            Some(Token { from, to: None, offset: 0 })
        }
    }

    pub(super) fn respond(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        let segments = http.segments();
        let route: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let ["upload", "drive", "v3", "files", rest @ ..] = route.as_slice() {
            return uploads::drive(state, http, rest);
        }
        if let ("PATCH", ["drive", "v3", "files", id]) = (http.method(), route.as_slice()) {
            return uploads::drive_trash(state, http, id);
        }
        if http.method() == "POST" && route.as_slice() == ["drive", "v3", "files"] {
            return create(state, http);
        }
        if http.method() == "POST" {
            match route.as_slice() {
                ["drive", "v3", "changes", "watch"] => return watch(state, http),
                ["drive", "v3", "channels", "stop"] => return stop(state, http),
                _ => {}
            }
        }
        if http.method() != "GET" {
            return not_found("Not Found");
        }
        let endpoint = match route.as_slice() {
            ["drive", "v3", "changes", "startPageToken"] => Endpoint::StartCursor,
            ["drive", "v3", "changes"] => Endpoint::Changes,
            ["drive", "v3", "files"] => Endpoint::Children,
            ["drive", "v3", "files", _] if http.query("alt").as_deref() == Some("media") => Endpoint::Download,
            ["drive", "v3", "files", id] => return metadata(state, http, id),
            _ => return not_found("Not Found"),
        };
        if let Some(fault) = state.take_fault(endpoint, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        match route.as_slice() {
            ["drive", "v3", "changes", "startPageToken"] => ResponseTemplate::new(200).set_body_json(json!({
                "kind": "drive#startPageToken",
                "startPageToken": Token { from: state.seq(), to: None, offset: 0 }.encode(),
            })),
            ["drive", "v3", "changes"] => changes(state, http),
            ["drive", "v3", "files"] => list(state, http),
            ["drive", "v3", "files", id] => media(state, id),
            _ => not_found("Not Found"),
        }
    }

    pub(super) fn error(status: u16, reason: &str, message: &str, location: Option<&str>) -> ResponseTemplate {
        let mut detail = json!({ "domain": "global", "reason": reason, "message": message });
        if let Some(location) = location {
            detail["location"] = json!(location);
            detail["locationType"] = json!("parameter");
        }
        ResponseTemplate::new(status)
            .set_body_json(json!({ "error": { "errors": [detail], "code": status, "message": message } }))
    }

    fn not_found(what: &str) -> ResponseTemplate {
        error(404, "notFound", &format!("File not found: {what}"), None)
    }

    pub(super) fn fault_response(http: &Http<'_>, fault: Fault) -> ResponseTemplate {
        match fault {
            Fault::RateLimited { retry_after_secs } => ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after_secs.to_string().as_str())
                .set_body_json(json!({
                    "error": {
                        "errors": [{ "domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded" }],
                        "code": 429,
                        "message": "Rate Limit Exceeded",
                    }
                })),
            Fault::UserRateLimit403 => ResponseTemplate::new(403).set_body_json(fixture("gdrive/error_403_rate_limit.json", http.base)),
            Fault::Resync => ResponseTemplate::new(400).set_body_json(fixture("gdrive/error_invalid_page_token.json", http.base)),
            Fault::Unauthorized => ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"")
                .set_body_json(fixture("gdrive/error_401.json", http.base)),
            Fault::ServerError => error(503, "backendError", "Backend Error", None),
            Fault::NotReady { retry_after_secs } => {
                ResponseTemplate::new(202).insert_header("Retry-After", retry_after_secs.to_string().as_str())
            }
            Fault::PreauthRefused => ResponseTemplate::new(403),
        }
    }

    fn time(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    /// A `File` with the fields the fixtures assume: no checksums or head revision for folders
    /// and Google Docs, no size for folders, `size` as a string.
    pub(super) fn file(node: &Node) -> Value {
        let mime = if node.is_file() { node.mime_type() } else { DRIVE_FOLDER };
        let mut value = json!({
            "kind": "drive#file",
            "id": node.id,
            "name": node.name,
            "mimeType": mime,
            "parents": node.parent.iter().collect::<Vec<_>>(),
            "modifiedTime": time(node.modified),
            "createdTime": time(node.created),
            "trashed": false,
        });
        if node.is_file() {
            value["size"] = json!(node.content.len().to_string());
        }
        if node.is_file() && !node.google_doc {
            let md5 = node.digests(HashAlg::Md5);
            value["md5Checksum"] = json!(md5.provider);
            value["sha1Checksum"] = json!(node.digests(HashAlg::Sha1).provider);
            value["sha256Checksum"] =
                json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(node.content.as_slice())));
            value["headRevisionId"] = json!(drive_revision(node));
        }
        value
    }

    /// `changes.watch`: a `web_hook` channel with the caller's id, token and expiry (ms), from
    /// a page token the fake handed out.
    fn watch(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Watch, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        let body = http.body_json().unwrap_or_default();
        let token = http.query("pageToken").and_then(|t| Token::decode(&t));
        let valid = token.is_some()
            && body["type"] == "web_hook"
            && body["id"].as_str().is_some_and(|i| !i.is_empty())
            && body["address"].as_str().is_some_and(|a| a.ends_with("/webhooks/gdrive"))
            && body["expiration"].as_str().and_then(|e| e.parse::<i64>().ok()).is_some();
        if !valid {
            return error(400, "invalid", "Invalid Value", Some("body"));
        }
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let resource_id = format!("ret08u3rv24htgh{}", watch_id(state).split('-').next_back().unwrap_or_default());
        let channel = json!({
            "kind": "api#channel",
            "id": id,
            "resourceId": resource_id,
            "resourceUri": format!("https://www.googleapis.com/drive/v3/changes?alt=json&pageToken={}", http.query("pageToken").unwrap_or_default()),
            "token": body["token"],
            "expiration": body["expiration"],
        });
        state.watches.insert(id, channel.clone());
        ResponseTemplate::new(200).set_body_json(channel)
    }

    /// `channels.stop` with the channel's id and resource id.
    fn stop(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Watch, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        let body = http.body_json().unwrap_or_default();
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        match state.watches.get(&id) {
            Some(channel) if channel["resourceId"] == body["resourceId"] => {
                state.watches.remove(&id);
                ResponseTemplate::new(204)
            }
            _ => not_found(&id),
        }
    }

    /// `root` is My Drive's alias.
    fn alias<'a>(state: &'a State, id: &'a str) -> &'a str {
        if id == "root" { &state.root_id } else { id }
    }

    /// `files.create` of a folder (`mimeType` the folder type, one parent). Drive keeps two
    /// items of one name side by side, and so does the fake.
    fn create(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Browse, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        let body = http.body_json().unwrap_or_default();
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let parents: Vec<&str> = body
            .get("parents")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if name.is_empty() || body.get("mimeType").and_then(Value::as_str) != Some(DRIVE_FOLDER) || parents.len() != 1 {
            return error(400, "invalid", "Invalid Value", Some("body"));
        }
        let parent = alias(state, parents[0]).to_owned();
        if state.nodes.get(&parent).is_none_or(|n| n.is_file()) {
            return not_found(&parent);
        }
        let id = state.create_folder_in(&parent, &name, true).expect("Drive keeps twins");
        ResponseTemplate::new(200).set_body_json(file(&state.nodes[&id]))
    }

    fn metadata(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Browse, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        let id = alias(state, id);
        match state.nodes.get(id) {
            Some(node) => ResponseTemplate::new(200).set_body_json(file(node)),
            None => not_found(id),
        }
    }

    fn media(state: &State, id: &str) -> ResponseTemplate {
        match state.nodes.get(id) {
            Some(node) if node.google_doc => error(
                403,
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                Some("alt"),
            ),
            Some(node) if node.is_file() => file_bytes(state, id, &node.content),
            Some(_) => {
                error(403, "fileNotDownloadable", "Only files with binary content can be downloaded.", Some("alt"))
            }
            None => not_found(id),
        }
    }

    /// A query string literal at the start of `text` (`'…'` with `\\` escapes), and the rest.
    fn literal(text: &str) -> Option<(String, &str)> {
        let body = text.strip_prefix('\'')?;
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '\'' => return Some((out, &body[i + 1..])),
                c => out.push(c),
            }
        }
        None
    }

    /// `'<id>' in parents and trashed = false`, optionally preceded by `name = '<name>' and `
    /// (the only queries the fake understands): the parent and the name.
    fn parse_query(q: &str) -> Option<(String, Option<String>)> {
        let (name, rest) = match q.strip_prefix("name = ") {
            Some(rest) => {
                let (name, rest) = literal(rest)?;
                (Some(name), rest.strip_prefix(" and ")?)
            }
            None => (None, q),
        };
        let (parent, tail) = literal(rest)?;
        (tail == " in parents and trashed = false").then_some((parent, name))
    }

    fn list(state: &State, http: &Http<'_>) -> ResponseTemplate {
        let Some((parent, name)) = http.query("q").as_deref().and_then(parse_query) else {
            return error(400, "invalid", "Invalid Value", Some("q"));
        };
        let parent = alias(state, &parent).to_owned();
        if state.nodes.get(&parent).is_none_or(|n| n.is_file()) {
            return not_found(&parent);
        }
        let offset: usize = match http.query("pageToken") {
            Some(token) => match token.strip_prefix("p").and_then(|o| o.parse().ok()) {
                Some(offset) => offset,
                None => return error(400, "invalid", "Invalid Value", Some("pageToken")),
            },
            None => 0,
        };
        let asked = http.query("pageSize").and_then(|p| p.parse().ok());
        let mut all = state.children(&state.nodes, &parent);
        if let Some(name) = &name {
            all.retain(|n| n.name == *name);
        }
        let page: Vec<Value> = all.iter().skip(offset).take(page_len(state, asked)).map(|n| file(n)).collect();
        let mut body = json!({ "kind": "drive#fileList", "incompleteSearch": false, "files": page });
        if offset + page.len() < all.len() {
            body["nextPageToken"] = json!(format!("p{}", offset + page.len()));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }

    /// One change per item changed since the token, over the whole drive: the file as it is,
    /// or `removed: true` without a file when it is gone.
    fn changes(state: &State, http: &Http<'_>) -> ResponseTemplate {
        let token = http.query("pageToken").as_deref().and_then(Token::decode);
        let Some(token) = token.filter(|t| t.from <= state.seq() && t.to.is_none_or(|to| to <= state.seq())) else {
            return fault_response(http, Fault::Resync);
        };
        let to = token.to.unwrap_or_else(|| state.seq());
        let all: Vec<Value> = changed_ids(state, token.from, to)
            .into_iter()
            .filter(|(before, after)| after.as_ref().or(before.as_ref()).is_some_and(|n| n.parent.is_some()))
            .map(|(before, after)| {
                let at = time(state.clock);
                match after {
                    Some(node) => json!({
                        "kind": "drive#change", "changeType": "file", "removed": false,
                        "fileId": node.id, "time": at, "file": file(&node),
                    }),
                    None => json!({
                        "kind": "drive#change", "changeType": "file", "removed": true,
                        "fileId": before.map(|b| b.id).unwrap_or_default(), "time": at,
                    }),
                }
            })
            .collect();
        let asked = http.query("pageSize").and_then(|p| p.parse().ok());
        let page: Vec<Value> = all.iter().skip(token.offset).take(page_len(state, asked)).cloned().collect();
        let mut body = json!({ "kind": "drive#changeList", "changes": page });
        if token.offset + page.len() < all.len() {
            body["nextPageToken"] = json!(Token { to: Some(to), offset: token.offset + page.len(), ..token }.encode());
        } else {
            body["newStartPageToken"] = json!(Token { from: to, to: None, offset: 0 }.encode());
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Dropbox

mod dropbox {
    use super::*;

    /// A Dropbox cursor: a listing (pages of one folder's children as of `from`), or changes
    /// since `from` in a folder (recursive or not), `to` fixed by the first page.
    #[derive(Debug, Clone, PartialEq)]
    struct Cursor {
        listing: bool,
        folder: String,
        recursive: bool,
        from: u64,
        to: Option<u64>,
        offset: usize,
    }

    impl Cursor {
        fn encode(&self) -> String {
            let to = self.to.map(|t| t.to_string()).unwrap_or_default();
            let text = format!(
                "{}|{}|{}|{}|{}|{}",
                if self.listing { "list" } else { "changes" },
                self.folder,
                self.recursive,
                self.from,
                to,
                self.offset
            );
            format!("AAF{}", opaque(&text))
        }

        fn decode(text: &str) -> Option<Cursor> {
            let plain = unopaque(text.strip_prefix("AAF")?)?;
            let parts: Vec<&str> = plain.split('|').collect();
            let [mode, folder, recursive, from, to, offset] = parts.as_slice() else { return None };
            Some(Cursor {
                listing: *mode == "list",
                folder: (*folder).to_owned(),
                recursive: recursive.parse().ok()?,
                from: from.parse().ok()?,
                to: if to.is_empty() { None } else { Some(to.parse().ok()?) },
                offset: offset.parse().ok()?,
            })
        }
    }

    pub(super) fn respond(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        if http.method() != "POST" {
            return not_found();
        }
        let segments = http.segments();
        let route: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let ["2", "files", "upload"] | ["2", "files", "upload_session", _] = route.as_slice() {
            return uploads::dropbox(state, http, &route[2..]);
        }
        if route.as_slice() == ["2", "files", "delete_v2"] {
            return uploads::dropbox_delete(state, http);
        }
        let endpoint = match route.as_slice() {
            ["2", "files", "list_folder"] => Endpoint::Children,
            ["2", "files", "list_folder", "get_latest_cursor"] => Endpoint::StartCursor,
            ["2", "files", "list_folder", "continue"] => {
                let listing = http
                    .body_json()
                    .and_then(|b| b.get("cursor").and_then(Value::as_str).and_then(Cursor::decode))
                    .is_some_and(|c| c.listing);
                if listing { Endpoint::Children } else { Endpoint::Changes }
            }
            ["2", "files", "download"] => Endpoint::Download,
            ["2", "files", "get_metadata"] | ["2", "files", "create_folder_v2"] => Endpoint::Browse,
            _ => return not_found(),
        };
        if let Some(fault) = state.take_fault(endpoint, false) {
            return fault_response(fault);
        }
        if !http.authorized() {
            return fault_response(Fault::Unauthorized);
        }
        match route.as_slice() {
            ["2", "files", "download"] => download(state, http),
            _ => {
                let Some(body) = http.body_json() else {
                    return ResponseTemplate::new(400).set_body_string("Error in call: request body is not JSON");
                };
                match route.as_slice() {
                    ["2", "files", "get_metadata"] => get_metadata(state, &body),
                    ["2", "files", "create_folder_v2"] => create_folder(state, &body),
                    ["2", "files", "list_folder"] => list_folder(state, &body),
                    ["2", "files", "list_folder", "get_latest_cursor"] => latest_cursor(state, &body),
                    _ => continue_listing(state, &body),
                }
            }
        }
    }

    fn not_found() -> ResponseTemplate {
        ResponseTemplate::new(404).set_body_string("Unknown API function")
    }

    pub(super) fn error_409(summary: &str, error: Value) -> ResponseTemplate {
        ResponseTemplate::new(409).set_body_json(json!({ "error_summary": summary, "error": error }))
    }

    fn path_not_found() -> ResponseTemplate {
        error_409("path/not_found/..", json!({ ".tag": "path", "path": { ".tag": "not_found" } }))
    }

    pub(super) fn fault_response(fault: Fault) -> ResponseTemplate {
        match fault {
            Fault::RateLimited { retry_after_secs } => ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after_secs.to_string().as_str())
                .set_body_json(json!({
                    "error_summary": "too_many_requests/..",
                    "error": { "reason": { ".tag": "too_many_requests" }, "retry_after": retry_after_secs },
                })),
            Fault::UserRateLimit403 => super::drive_user_rate_limit(),
            Fault::Resync => error_409("reset/..", json!({ ".tag": "reset" })),
            Fault::Unauthorized => ResponseTemplate::new(401).set_body_json(json!({
                "error_summary": "expired_access_token/..",
                "error": { ".tag": "expired_access_token" },
            })),
            Fault::ServerError => ResponseTemplate::new(503).set_body_string("Service Unavailable"),
            Fault::NotReady { retry_after_secs } => {
                ResponseTemplate::new(202).insert_header("Retry-After", retry_after_secs.to_string().as_str())
            }
            Fault::PreauthRefused => ResponseTemplate::new(403),
        }
    }

    /// A `path` argument: `""` (the root), `id:…`, or a path (case-insensitive).
    pub(super) fn lookup(state: &State, nodes: &BTreeMap<String, Node>, path: &str) -> Option<String> {
        if path.is_empty() {
            return Some(state.root_id.clone());
        }
        if path.starts_with("id:") {
            return nodes.contains_key(path).then(|| path.to_owned());
        }
        let wanted = path.to_lowercase();
        nodes.keys().find(|id| state.path_of(nodes, id).to_lowercase() == wanted).cloned()
    }

    pub(super) fn entry(state: &State, nodes: &BTreeMap<String, Node>, node: &Node, tagged: bool) -> Value {
        let path = state.path_of(nodes, &node.id);
        let mut entry = if node.is_file() {
            json!({
                ".tag": "file",
                "name": node.name,
                "path_lower": path.to_lowercase(),
                "path_display": path,
                "id": node.id,
                "client_modified": (node.modified - chrono::Duration::seconds(5)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "server_modified": node.modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "rev": dropbox_rev(node),
                "size": node.content.len(),
                "is_downloadable": true,
                "content_hash": state.hash_hex(node),
            })
        } else {
            json!({
                ".tag": "folder",
                "name": node.name,
                "path_lower": path.to_lowercase(),
                "path_display": path,
                "id": node.id,
            })
        };
        if !tagged && let Some(map) = entry.as_object_mut() {
            map.remove(".tag");
        }
        entry
    }

    /// `get_metadata` of an id or a path; the root has no metadata (Dropbox refuses it).
    fn get_metadata(state: &State, body: &Value) -> ResponseTemplate {
        let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
        if !(path.is_empty() || path.starts_with('/') || path.starts_with("id:")) {
            return ResponseTemplate::new(400).set_body_string(format!(
                "Error in call to API function \"files/get_metadata\": request body: path: '{path}' did not match pattern '(/(.|[\\r\\n])*|id:.*)|(rev:[0-9a-f]{{9,}})|(ns:[0-9]+(/.*)?)'"
            ));
        }
        match lookup(state, &state.nodes, path) {
            Some(id) if id != state.root_id => {
                ResponseTemplate::new(200).set_body_json(entry(state, &state.nodes, &state.nodes[&id], true))
            }
            _ => path_not_found(),
        }
    }

    /// `create_folder_v2` at a path whose parent exists; without `autorename` an existing item
    /// is a `path/conflict`.
    fn create_folder(state: &mut State, body: &Value) -> ResponseTemplate {
        let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
        if body.get("autorename").and_then(Value::as_bool) != Some(false) {
            return ResponseTemplate::new(400).set_body_string("the fake expects autorename: false");
        }
        let Some((parent_path, name)) = path.rsplit_once('/') else { return path_not_found() };
        let Some(parent) = lookup(state, &state.nodes, parent_path) else { return path_not_found() };
        let exists = state
            .nodes
            .values()
            .find(|n| n.parent.as_deref() == Some(parent.as_str()) && n.name.to_lowercase() == name.to_lowercase());
        if let Some(existing) = exists {
            let tag = if existing.is_file() { "file" } else { "folder" };
            return error_409(
                &format!("path/conflict/{tag}/.."),
                json!({ ".tag": "path", "path": { ".tag": "conflict", "conflict": { ".tag": tag } } }),
            );
        }
        let id = state.create_folder_in(&parent, name, false).expect("checked above");
        let metadata = entry(state, &state.nodes, &state.nodes[&id], false);
        ResponseTemplate::new(200).set_body_json(json!({ "metadata": metadata }))
    }

    fn deleted_entry(name: &str, path: &str) -> Value {
        json!({ ".tag": "deleted", "name": name, "path_lower": path.to_lowercase(), "path_display": path })
    }

    fn list_folder(state: &State, body: &Value) -> ResponseTemplate {
        let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
        let Some(folder) = lookup(state, &state.nodes, path) else { return path_not_found() };
        if state.nodes[&folder].is_file() {
            return error_409("path/not_folder/..", json!({ ".tag": "path", "path": { ".tag": "not_folder" } }));
        }
        let recursive = body.get("recursive").and_then(Value::as_bool).unwrap_or(false);
        let limit = body.get("limit").and_then(Value::as_u64).map(|l| l as usize);
        let cursor = Cursor { listing: true, folder, recursive, from: state.seq(), to: None, offset: 0 };
        listing_page(state, &cursor, limit)
    }

    fn latest_cursor(state: &State, body: &Value) -> ResponseTemplate {
        let path = body.get("path").and_then(Value::as_str).unwrap_or_default();
        let Some(folder) = lookup(state, &state.nodes, path) else { return path_not_found() };
        let recursive = body.get("recursive").and_then(Value::as_bool).unwrap_or(false);
        let cursor = Cursor { listing: false, folder, recursive, from: state.seq(), to: None, offset: 0 };
        ResponseTemplate::new(200).set_body_json(json!({ "cursor": cursor.encode() }))
    }

    fn continue_listing(state: &State, body: &Value) -> ResponseTemplate {
        let cursor = body.get("cursor").and_then(Value::as_str).and_then(Cursor::decode);
        match cursor {
            Some(cursor) if cursor.from <= state.seq() && cursor.to.is_none_or(|t| t <= state.seq()) => {
                if cursor.listing { listing_page(state, &cursor, None) } else { changes_page(state, &cursor) }
            }
            // A cursor this fake never handed out: the one answer Dropbox documents for it.
            _ => error_409("reset/..", json!({ ".tag": "reset" })),
        }
    }

    fn within_scope(nodes: &BTreeMap<String, Node>, id: &str, folder: &str, recursive: bool) -> bool {
        id != folder
            && match recursive {
                true => is_within(nodes, id, folder),
                false => nodes.get(id).and_then(|n| n.parent.as_deref()) == Some(folder),
            }
    }

    fn listing_page(state: &State, cursor: &Cursor, limit: Option<usize>) -> ResponseTemplate {
        let Some(nodes) = state.snapshot(cursor.from) else { return error_409("reset/..", json!({ ".tag": "reset" })) };
        let ids: Vec<&Node> = if cursor.recursive {
            let mut all: Vec<&Node> =
                nodes.values().filter(|n| within_scope(&nodes, &n.id, &cursor.folder, true)).collect();
            all.sort_by_key(|n| state.path_of(&nodes, &n.id).to_lowercase());
            all
        } else {
            state.children(&nodes, &cursor.folder)
        };
        let take = page_len(state, limit);
        let page: Vec<Value> =
            ids.iter().skip(cursor.offset).take(take).map(|n| entry(state, &nodes, n, true)).collect();
        let has_more = cursor.offset + page.len() < ids.len();
        let next = if has_more {
            Cursor { offset: cursor.offset + page.len(), ..cursor.clone() }
        } else {
            // The last listing cursor is a change cursor for the folder, as Dropbox's is.
            Cursor { listing: false, to: None, offset: 0, ..cursor.clone() }
        };
        ResponseTemplate::new(200)
            .set_body_json(json!({ "entries": page, "cursor": next.encode(), "has_more": has_more }))
    }

    /// Changes by path, as Dropbox reports them: a path that is gone or holds another item is
    /// `deleted` (once for a folder and what was below it), and a new or changed item is an
    /// entry at its path now, so a rename or move is a delete plus an entry.
    fn changes(state: &State, cursor: &Cursor, to: u64) -> Vec<Value> {
        let (Some(old), Some(new)) = (state.snapshot(cursor.from), state.snapshot(to)) else { return Vec::new() };
        let by_path = |nodes: &BTreeMap<String, Node>| -> BTreeMap<String, Node> {
            nodes
                .values()
                .filter(|n| within_scope(nodes, &n.id, &cursor.folder, cursor.recursive))
                .map(|n| (state.path_of(nodes, &n.id).to_lowercase(), n.clone()))
                .collect()
        };
        let (before, after) = (by_path(&old), by_path(&new));
        let mut gone: Vec<(&String, &Node)> = before
            .iter()
            .filter(|(path, node)| after.get(*path).is_none_or(|now| now.id != node.id || now.kind != node.kind))
            .collect();
        let gone_paths: BTreeSet<&String> = gone.iter().map(|(p, _)| *p).collect();
        gone.retain(|(path, _)| !gone_paths.iter().any(|other| path.starts_with(&format!("{other}/"))));
        let mut out: Vec<Value> =
            gone.iter().map(|(_, node)| deleted_entry(&node.name, &state.path_of(&old, &node.id))).collect();
        for (path, node) in &after {
            let changed = before.get(path).is_none_or(|was| was.id != node.id || was.version != node.version);
            if changed {
                out.push(entry(state, &new, node, true));
            }
        }
        out
    }

    fn changes_page(state: &State, cursor: &Cursor) -> ResponseTemplate {
        let to = cursor.to.unwrap_or_else(|| state.seq());
        let all = changes(state, cursor, to);
        let take = page_len(state, None);
        let page: Vec<Value> = all.iter().skip(cursor.offset).take(take).cloned().collect();
        let has_more = cursor.offset + page.len() < all.len();
        let next = if has_more {
            Cursor { to: Some(to), offset: cursor.offset + page.len(), ..cursor.clone() }
        } else {
            Cursor { from: to, to: None, offset: 0, ..cursor.clone() }
        };
        ResponseTemplate::new(200)
            .set_body_json(json!({ "entries": page, "cursor": next.encode(), "has_more": has_more }))
    }

    fn download(state: &State, http: &Http<'_>) -> ResponseTemplate {
        // Dropbox refuses a header that is not HTTP-header-safe JSON.
        let Some(argument) = http.header("dropbox-api-arg").filter(|a| a.is_ascii()) else {
            return ResponseTemplate::new(400).set_body_string(
                "Error in call to API function \"files/download\": Bad HTTP \"Dropbox-API-Arg\" header",
            );
        };
        let Ok(argument) = serde_json::from_str::<Value>(argument) else {
            return ResponseTemplate::new(400).set_body_string(
                "Error in call to API function \"files/download\": HTTP header \"Dropbox-API-Arg\": could not decode input as JSON",
            );
        };
        let path = argument.get("path").and_then(Value::as_str).unwrap_or_default();
        let Some(id) = lookup(state, &state.nodes, path) else { return path_not_found() };
        let node = &state.nodes[&id];
        if !node.is_file() {
            return error_409("path/not_file/..", json!({ ".tag": "path", "path": { ".tag": "not_file" } }));
        }
        let result = header_safe(&entry(state, &state.nodes, node, false));
        file_bytes(state, &id, &node.content).insert_header("Dropbox-API-Result", result.as_str())
    }

    /// HTTP-header-safe JSON (0x7F and non-ASCII as `\uXXXX`), as Dropbox sends its result.
    fn header_safe(value: &Value) -> String {
        let mut out = String::new();
        for c in value.to_string().chars() {
            if c.is_ascii() && c != '\u{7f}' {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
        out
    }
}

/// Drive's 403 for a user over its rate (the handle-errors guide's sample, as in the fixture).
fn drive_user_rate_limit() -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_json(json!({
        "error": {
            "errors": [{ "domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User Rate Limit Exceeded" }],
            "code": 403,
            "message": "User Rate Limit Exceeded",
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// Box

mod boxcom {
    use super::*;

    pub(super) fn respond(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        let segments = http.segments();
        let route: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let ["preauth", "box", id] = route.as_slice() {
            return preauth(state, http, id);
        }
        if let ["api", "2.0", "files", rest @ ..] = route.as_slice() {
            return uploads::boxcom(state, http, rest);
        }
        if http.method() == "POST" && route.as_slice() == ["2.0", "folders"] {
            return create_folder(state, http);
        }
        match (http.method(), route.as_slice()) {
            ("DELETE", ["2.0", "files", id]) => return uploads::box_delete(state, http, id),
            ("POST", ["2.0", "webhooks"]) => return create_webhook(state, http),
            ("DELETE", ["2.0", "webhooks", id]) => return delete_webhook(state, http, id),
            _ => {}
        }
        if http.method() != "GET" {
            return error(405, "method_not_allowed", "Method Not Allowed");
        }
        if let ["2.0", kind @ ("folders" | "files"), id] = route.as_slice() {
            return get_item(state, http, kind, id);
        }
        let endpoint = match route.as_slice() {
            ["2.0", "events"] if http.query("stream_position").as_deref() == Some("now") => Endpoint::StartCursor,
            ["2.0", "events"] => Endpoint::Changes,
            ["2.0", "folders", _, "items"] => Endpoint::Children,
            ["2.0", "files", _, "content"] => Endpoint::Download,
            _ => return not_found(),
        };
        if let Some(fault) = state.take_fault(endpoint, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        match route.as_slice() {
            ["2.0", "events"] => events(state, http),
            ["2.0", "folders", id, "items"] => items(state, http, id),
            ["2.0", "files", id, "content"] => match state.nodes.get(*id) {
                Some(node) if node.is_file() => {
                    ResponseTemplate::new(302).insert_header("Location", preauth_url(http.base, "box", id).as_str())
                }
                _ => not_found(),
            },
            _ => not_found(),
        }
    }

    pub(super) fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({
            "type": "error",
            "status": status,
            "code": code,
            "help_url": "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/",
            "message": message,
            "request_id": "fake0123456789",
        }))
    }

    fn not_found() -> ResponseTemplate {
        error(404, "not_found", "Not Found")
    }

    pub(super) fn fault_response(http: &Http<'_>, fault: Fault) -> ResponseTemplate {
        match fault {
            Fault::RateLimited { retry_after_secs } => ResponseTemplate::new(429)
                .insert_header("retry-after", retry_after_secs.to_string().as_str())
                .set_body_json(fixture("box/error_429.json", http.base)),
            Fault::UserRateLimit403 => drive_user_rate_limit(),
            // Box documents no answer for a stream position it no longer honours: a 400 on the
            // parameter is the fake's (and the provider's) reading.
            Fault::Resync => error(400, "invalid_parameter", "Invalid value for query parameter 'stream_position'."),
            // Real 401s often come without a body: only the header says why.
            Fault::Unauthorized => ResponseTemplate::new(401).insert_header(
                "WWW-Authenticate",
                "Bearer realm=\"Service\", error=\"invalid_token\", error_description=\"The access token provided is invalid.\"",
            ),
            Fault::ServerError => error(503, "unavailable", "Unavailable"),
            Fault::NotReady { retry_after_secs } => {
                ResponseTemplate::new(202).insert_header("Retry-After", retry_after_secs.to_string().as_str())
            }
            Fault::PreauthRefused => ResponseTemplate::new(403),
        }
    }

    /// Box dates carry an offset; the fixtures' is Pacific.
    fn time(at: DateTime<Utc>) -> String {
        let pacific = chrono::FixedOffset::west_opt(8 * 3600).expect("offset");
        at.with_timezone(&pacific).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    /// A folder mini, as `parent` and `path_collection` entries show it (the root's etag and
    /// sequence_id are null).
    /// `POST /webhooks` on a folder other than the root; one per folder.
    fn create_webhook(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Watch, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        let body = http.body_json().unwrap_or_default();
        let folder = body["target"]["id"].as_str().unwrap_or_default().to_owned();
        let valid = body["target"]["type"] == "folder"
            && body["address"].as_str().is_some_and(|a| a.ends_with("/webhooks/box"))
            && body["triggers"].as_array().is_some_and(|t| !t.is_empty());
        if !valid || folder == state.root_id {
            return error(400, "bad_request", "Bad Request");
        }
        if state.nodes.get(&folder).is_none_or(|n| n.is_file()) {
            return not_found();
        }
        if state.watches.values().any(|w| w["target"]["id"] == folder.as_str()) {
            return error(409, "conflict", "Webhook:1 already exists on the specified target.");
        }
        let id = format!("{}", 4_161_000 + state.watches.len() as u64 + state.issued);
        state.issued += 1;
        let made = json!({
            "id": id,
            "type": "webhook",
            "target": { "id": folder, "type": "folder" },
            "created_by": { "type": "user", "id": "19028374650", "name": "Megan Bowen", "login": "megan@contoso.com" },
            "created_at": time(state.clock),
            "address": body["address"],
            "triggers": body["triggers"],
        });
        state.watches.insert(id, made.clone());
        ResponseTemplate::new(201).set_body_json(made)
    }

    fn delete_webhook(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Watch, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        match state.watches.remove(id) {
            Some(_) => ResponseTemplate::new(204),
            None => not_found(),
        }
    }

    /// `GET /folders/{id}` or `/files/{id}`: the item in full (with `path_collection`) when it
    /// is of that kind, else Box's 404.
    fn get_item(state: &mut State, http: &Http<'_>, kind: &str, id: &str) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Browse, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        match state.nodes.get(id) {
            Some(node) if node.is_file() == (kind == "files") => {
                ResponseTemplate::new(200).set_body_json(item(state, &state.nodes, node, true, "active"))
            }
            _ => not_found(),
        }
    }

    /// `POST /folders`: a name already in the parent is a 409 `item_name_in_use` naming it in
    /// `context_info.conflicts`, as `error_409_name_in_use.json`.
    fn create_folder(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
        if let Some(fault) = state.take_fault(Endpoint::Browse, false) {
            return fault_response(http, fault);
        }
        if !http.authorized() {
            return fault_response(http, Fault::Unauthorized);
        }
        let body = http.body_json().unwrap_or_default();
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let parent =
            body.get("parent").and_then(|p| p.get("id")).and_then(Value::as_str).unwrap_or_default().to_owned();
        if name.is_empty() {
            return error(400, "bad_request", "Bad Request");
        }
        if state.nodes.get(&parent).is_none_or(|n| n.is_file()) {
            return not_found();
        }
        match state.create_folder_in(&parent, &name, false) {
            Ok(id) => {
                let node = state.nodes[&id].clone();
                ResponseTemplate::new(201).set_body_json(item(state, &state.nodes, &node, true, "active"))
            }
            Err(existing) => {
                let mut body = fixture("box/error_409_name_in_use.json", http.base);
                body["context_info"]["conflicts"] = json!([folder_mini(&state.nodes[&existing])]);
                ResponseTemplate::new(409).set_body_json(body)
            }
        }
    }

    fn folder_mini(node: &Node) -> Value {
        let tag = node.parent.as_ref().map(|_| box_etag(node));
        json!({ "type": "folder", "id": node.id, "sequence_id": tag, "etag": tag, "name": node.name })
    }

    /// An item with the fields the provider asks for, as in `folder_items_page1.json`;
    /// `full` adds what an event's `source` carries (`path_collection`, trash dates, users).
    pub(super) fn item(state: &State, nodes: &BTreeMap<String, Node>, node: &Node, full: bool, status: &str) -> Value {
        let mut value = json!({
            "type": if node.is_file() { "file" } else { "folder" },
            "id": node.id,
            "sequence_id": box_etag(node),
            "etag": box_etag(node),
            "name": node.name,
            "size": state.size_of(nodes, node),
            "created_at": time(node.created),
            "modified_at": time(node.modified),
            "content_modified_at": time(node.modified - chrono::Duration::seconds(2)),
            "item_status": status,
            "parent": node.parent.as_deref().and_then(|p| nodes.get(p)).map(folder_mini),
        });
        if node.is_file() {
            let sha1 = state.hash_hex(node);
            value["sha1"] = json!(sha1);
            value["file_version"] = json!({ "type": "file_version", "id": node.file_version_id, "sha1": sha1 });
        }
        if full {
            let mut chain = Vec::new();
            let mut at = node.parent.as_deref().and_then(|p| nodes.get(p));
            while let Some(folder) = at {
                chain.push(folder_mini(folder));
                at = folder.parent.as_deref().and_then(|p| nodes.get(p));
            }
            chain.reverse();
            let user =
                json!({ "type": "user", "id": "19028374650", "name": "Megan Bowen", "login": "megan@contoso.com" });
            let trashed = (status != "active").then(|| time(state.clock));
            for (key, field) in [
                ("description", json!("")),
                ("path_collection", json!({ "total_count": chain.len(), "entries": chain })),
                ("trashed_at", json!(trashed)),
                ("purged_at", Value::Null),
                ("content_created_at", json!(time(node.created))),
                ("created_by", user.clone()),
                ("modified_by", user.clone()),
                ("owned_by", user),
                ("shared_link", Value::Null),
            ] {
                value[key] = field;
            }
        }
        value
    }

    fn items(state: &State, http: &Http<'_>, id: &str) -> ResponseTemplate {
        match state.nodes.get(id) {
            Some(node) if !node.is_file() => {}
            _ => return not_found(),
        }
        if http.query("usemarker").as_deref() != Some("true") {
            return error(400, "bad_request", "the fake serves marker paging only");
        }
        let offset: usize = match http.query("marker") {
            Some(marker) => match unopaque(&marker).and_then(|m| m.parse().ok()) {
                Some(offset) => offset,
                None => return error(400, "invalid_parameter", "Invalid value for query parameter 'marker'."),
            },
            None => 0,
        };
        let limit = http.query("limit").and_then(|l| l.parse().ok());
        let take = page_len(state, limit);
        let all = state.children(&state.nodes, id);
        let page: Vec<Value> =
            all.iter().skip(offset).take(take).map(|n| item(state, &state.nodes, n, false, "active")).collect();
        let more = offset + page.len() < all.len();
        let next = more.then(|| opaque(&(offset + page.len()).to_string()));
        ResponseTemplate::new(200).set_body_json(json!({ "entries": page, "limit": take, "next_marker": next }))
    }

    fn event_type(step: &Step, node: &Node) -> &'static str {
        match step.kind {
            StepKind::Created if node.is_file() => "ITEM_UPLOAD",
            StepKind::Created => "ITEM_CREATE",
            StepKind::Modified => "ITEM_UPLOAD",
            StepKind::Renamed => "ITEM_RENAME",
            StepKind::Moved => "ITEM_MOVE",
            StepKind::Deleted => "ITEM_TRASH",
        }
    }

    /// The event of step `index` (0-based): its source as the step left it, or, for a
    /// trash, as it was with `item_status: trashed`.
    fn event(state: &State, index: usize) -> Option<Value> {
        let step = &state.steps[index];
        let (nodes, status) = match step.kind {
            StepKind::Deleted => (state.snapshot(index as u64)?, "trashed"),
            _ => (step.after.clone(), "active"),
        };
        let node = nodes.get(&step.id)?;
        let at = time(node.modified);
        Some(json!({
            "type": "event",
            "event_id": step.event_id,
            "created_by": { "type": "user", "id": "19028374650", "name": "Megan Bowen", "login": "megan@contoso.com" },
            "created_at": at,
            "recorded_at": at,
            "event_type": event_type(step, node),
            "session_id": format!("s{:x}", fnv(&step.event_id)),
            "source": item(state, &nodes, node, true, status),
            "additional_details": Value::Null,
        }))
    }

    /// The user event stream from a position: `now` is the end, `0` the beginning, and
    /// `BOX_STREAM_BASE + n` follows step `n`. Pages hold at most `limit` (default 100) events.
    fn events(state: &State, http: &Http<'_>) -> ResponseTemplate {
        if http.query("stream_type").as_deref().is_some_and(|t| t != "changes" && t != "all") {
            return error(400, "invalid_parameter", "the fake serves the changes stream");
        }
        let seq = state.seq();
        let from = match http.query("stream_position").as_deref() {
            Some("now") => seq,
            None | Some("0") => 0,
            Some(position) => match position.parse::<u64>().ok().and_then(|p| p.checked_sub(BOX_STREAM_BASE)) {
                Some(step) if step <= seq => step,
                _ => return fault_response(http, Fault::Resync),
            },
        };
        let limit = http.query("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
        let take = page_len(state, Some(limit));
        let steps: Vec<usize> = (from as usize..seq as usize).take(take).collect();
        let mut entries = Vec::new();
        for index in &steps {
            if let Some(event) = event(state, *index) {
                if state.duplicate_events {
                    entries.push(event.clone());
                }
                entries.push(event);
            }
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "chunk_size": entries.len(),
            "next_stream_position": BOX_STREAM_BASE + from + steps.len() as u64,
            "entries": entries,
        }))
    }
}
