//! The providers' upload endpoints over the same model drive: one-request uploads, resumable
//! sessions part by part, and the conditions each provider checks (a new file's name free, a
//! new version's base revision current). Each refuses what the provider refuses (a part of the
//! wrong size, out of order, an `Authorization` header on a pre-authenticated URL), so a test
//! that passes has sent what the provider documents. A finished upload is one step of the
//! tree's journal, as any other change.
//!
//! - Microsoft Graph (research note §3.1): `PUT …/content` (at most 4 MiB; `If-Match`, and
//!   `@microsoft.graph.conflictBehavior=fail` for a path under a parent), `POST
//!   …/createUploadSession` answering an `uploadUrl` on this server (`/upload/graph/{id}`,
//!   carrying [`PREAUTH_SECRET`]), fragment `PUT`s with `Content-Range` (multiples of 320 KiB
//!   but the last, under 60 MiB, in order; 202 with `nextExpectedRanges`, then 201/200 with
//!   the driveItem), `GET` for the ranges still expected and `DELETE` to cancel.
//! - Dropbox (research note §3.3): `files/upload` and `upload_session/start`, `append_v2`,
//!   `finish`, the argument in `Dropbox-API-Arg`; each request's `content_hash` is checked, a
//!   wrong offset answered with `incorrect_offset` and the `correct_offset`; the commit is by
//!   path, `add` (the name must be free) or `update` with the current `rev`, and anything else
//!   is `path/conflict`.
//! - Box (research note §3.4): multipart `files/content` and `files/{id}/content` on the upload
//!   host (`attributes` before `file`, `content-md5` the SHA-1, `If-Match` the `etag`, 409
//!   `item_name_in_use`, 412), chunked sessions from 20 MB with a part size of 8 MiB, each
//!   part's `Digest` checked, `parts` listed, and a commit checking the whole file's digest, the
//!   part list and `If-Match`, answered once with 202 and `Retry-After` while "processing".
//! - Google Drive (research note §3.2): `uploadType=multipart` (metadata part, then the
//!   bytes; Drive would make a twin of a taken name, so the fake does too) and `media`, and
//!   resumable sessions whose URI is the `Location` of the first request: chunks a multiple of
//!   256 KiB but the last, 308 with `Range` until the last, `bytes */N` for the status, and the
//!   file resource at the end.

use super::*;

/// An open upload session.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// `None` until the commit names it (Dropbox).
    target: Option<Target>,
    total: u64,
    received: Vec<u8>,
    /// No more parts (Dropbox `close`).
    closed: bool,
    /// Box: the parts as its `parts` endpoint lists them, and whether a commit was answered
    /// 202 already.
    parts: Vec<Value>,
    committing: bool,
}

#[derive(Debug, Clone)]
enum Target {
    /// A new file `name` in `parent`, failing if the name is taken by then.
    New { parent: String, name: String },
    /// A new version of `id`, if its revision is still `if_match` (when given).
    Replace { id: String, if_match: Option<String> },
}

const GRAPH_FRAGMENT: u64 = 327_680;
const GRAPH_SIMPLE_MAX: usize = 4 << 20;
const GRAPH_MAX_REQUEST: u64 = 60 << 20;

impl State {
    /// Writes `content` as a new file `name` in `parent`, or `None` if the name is taken
    /// (Drive keeps two files of one name side by side instead).
    fn write_new(&mut self, parent: &str, name: &str, content: Vec<u8>) -> Option<String> {
        if self.family != Family::Drive && self.child_named(&self.nodes, parent, name).is_some() {
            return None;
        }
        let now = self.tick();
        let id = self.new_id(ItemKind::File);
        let mut node = Node::folder(id.clone(), name, Some(parent.to_owned()), now);
        node.kind = ItemKind::File;
        node.content = Arc::new(content);
        node.file_version_id = self.new_version_id();
        self.nodes.insert(id.clone(), node);
        self.record(StepKind::Created, &id);
        Some(id)
    }

    /// New content for the file `id`.
    fn write_version(&mut self, id: &str, content: Vec<u8>) {
        let now = self.tick();
        let file_version_id = self.new_version_id();
        let node = self.nodes.get_mut(id).expect("a file to replace");
        node.content = Arc::new(content);
        node.version += 1;
        node.modified = now;
        node.file_version_id = file_version_id;
        self.record(StepKind::Modified, id);
    }

    /// Finishes an upload into its target: the new or replaced file's id, or why not.
    fn land(&mut self, target: &Target, mut content: Vec<u8>) -> Result<(String, bool), Landing> {
        if std::mem::take(&mut self.corrupt_upload)
            && let Some(first) = content.first_mut()
        {
            *first ^= 0xFF;
        }
        match target {
            Target::New { parent, name } => {
                self.write_new(parent, name, content).map(|id| (id, true)).ok_or(Landing::NameTaken)
            }
            Target::Replace { id, if_match } => {
                let Some(node) = self.nodes.get(id).filter(|n| n.is_file()) else { return Err(Landing::Gone) };
                if if_match.as_ref().is_some_and(|tag| *tag != self.revision(node).unwrap_or_default()) {
                    return Err(Landing::Changed);
                }
                self.write_version(id, content);
                Ok((id.clone(), false))
            }
        }
    }

    fn new_session(&mut self, target: Option<Target>, total: u64) -> String {
        self.issued += 1;
        let id = format!("QdsiUpload{:016x}{}", fnv(&self.drive_id), self.issued);
        let session =
            Session { target, total, received: Vec::new(), closed: false, parts: Vec::new(), committing: false };
        self.uploads.insert(id.clone(), session);
        id
    }
}

/// Why an upload did not land.
enum Landing {
    NameTaken,
    Changed,
    Gone,
}

/// `bytes {first}-{last}/{total}`.
fn content_range(value: Option<&str>) -> Option<(u64, u64, u64)> {
    let rest = value?.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

// ---- Microsoft Graph ------------------------------------------------------------------

fn graph_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": { "code": code, "message": message } }))
}

/// The upload routes on a drive (`rest` after `/drives/{d}`): `None` for the others.
pub(super) fn graph(state: &mut State, http: &Http<'_>, rest: &[&str]) -> Option<ResponseTemplate> {
    if let ("DELETE", ["items", id]) = (http.method(), rest) {
        return Some(graph_delete(state, http, id));
    }
    let root = state.root_id.clone();
    let (target, call) = match (http.method(), rest) {
        ("PUT" | "POST", ["items", id, call @ ("content" | "createUploadSession")]) => {
            let if_match = http.header("if-match").map(str::to_owned);
            (Target::Replace { id: (*id).to_owned(), if_match }, *call)
        }
        ("PUT" | "POST", ["items", parent, name, call @ ("content" | "createUploadSession")])
            if parent.ends_with(':') && name.ends_with(':') =>
        {
            let parent = parent.trim_end_matches(':').to_owned();
            (Target::New { parent, name: name.trim_end_matches(':').to_owned() }, *call)
        }
        ("PUT" | "POST", ["root:", name, call @ ("content" | "createUploadSession")]) if name.ends_with(':') => {
            (Target::New { parent: root, name: name.trim_end_matches(':').to_owned() }, *call)
        }
        _ => return None,
    };
    if (http.method() == "PUT") != (call == "content") {
        return Some(graph::item_not_found());
    }
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return Some(graph::fault_response(state, http, fault));
    }
    if !http.authorized() {
        return Some(graph::fault_response(state, http, Fault::Unauthorized));
    }
    // A new file's name must not be taken (the caller asks `conflictBehavior: fail`), and the
    // parent must be a folder; a new version's file must exist and match `If-Match`.
    match &target {
        Target::New { parent, name } => {
            let fail = match call {
                "content" => http.query("@microsoft.graph.conflictBehavior"),
                _ => http
                    .body_json()
                    .and_then(|b| b["item"]["@microsoft.graph.conflictBehavior"].as_str().map(str::to_owned)),
            };
            if fail.as_deref() != Some("fail") {
                return Some(graph_error(
                    400,
                    "invalidRequest",
                    "the fake expects conflictBehavior=fail for a new file",
                ));
            }
            if state.nodes.get(parent).is_none_or(|n| n.is_file()) {
                return Some(graph::item_not_found());
            }
            if state.child_named(&state.nodes, parent, name).is_some() {
                return Some(graph_error(409, "nameAlreadyExists", "The specified item name already exists."));
            }
        }
        Target::Replace { id, if_match } => {
            let Some(node) = state.nodes.get(id).filter(|n| n.is_file()) else {
                return Some(graph::item_not_found());
            };
            if if_match.as_ref().is_some_and(|tag| *tag != graph_etag(node)) {
                return Some(graph_error(412, "preconditionFailed", "ETag does not match current item's value"));
            }
        }
    }
    if call == "content" {
        if http.request.body.len() > GRAPH_SIMPLE_MAX {
            return Some(graph_error(413, "requestEntityTooLarge", "Use an upload session above 4 MiB"));
        }
        return Some(graph_landed(state, http, &target, http.request.body.clone()));
    }
    let session = state.new_session(Some(target), 0);
    Some(ResponseTemplate::new(200).set_body_json(json!({
        "uploadUrl": format!("{}/upload/graph/{session}?tempauth={PREAUTH_SECRET}", http.base),
        "expirationDateTime": graph_time(state.clock + chrono::Duration::days(1)),
    })))
}

fn graph_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The answer to an upload that completes: the driveItem (201 new, 200 a new version), or
/// Graph's refusal.
fn graph_landed(state: &mut State, http: &Http<'_>, target: &Target, content: Vec<u8>) -> ResponseTemplate {
    match state.land(target, content) {
        Ok((id, created)) => {
            let node = state.nodes[&id].clone();
            let body = graph::item(state, &state.nodes, &node, http.base, true);
            ResponseTemplate::new(if created { 201 } else { 200 }).set_body_json(body)
        }
        Err(Landing::NameTaken) => graph_error(409, "nameAlreadyExists", "The specified item name already exists."),
        Err(Landing::Changed) => graph_error(412, "preconditionFailed", "ETag does not match current item's value"),
        Err(Landing::Gone) => graph::item_not_found(),
    }
}

/// The pre-authenticated `uploadUrl`: `PUT` a fragment, `GET` the ranges still expected,
/// `DELETE` to cancel. No `Authorization` accepted.
pub(super) fn graph_session(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
    if http.header("authorization").is_some() {
        return ResponseTemplate::new(401).set_body_string("an upload URL takes no Authorization header");
    }
    if http.query("tempauth").as_deref() != Some(PREAUTH_SECRET) {
        return ResponseTemplate::new(403).set_body_string("Access denied");
    }
    let Some(session) = state.uploads.get(id).cloned() else {
        return graph_error(404, "itemNotFound", "The upload session was not found");
    };
    let expires = graph_time(state.clock + chrono::Duration::days(1));
    let expected = |session: &Session| {
        json!({
            "expirationDateTime": expires,
            "nextExpectedRanges": [format!("{}-", session.received.len())],
        })
    };
    match http.method() {
        "GET" => return ResponseTemplate::new(200).set_body_json(expected(&session)),
        "DELETE" => {
            state.uploads.remove(id);
            return ResponseTemplate::new(204);
        }
        "PUT" => {}
        _ => return graph_error(405, "invalidRequest", "method not allowed"),
    }
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return graph::fault_response(state, http, fault);
    }
    let body = &http.request.body;
    let Some((first, last, total)) = content_range(http.header("content-range")) else {
        return graph_error(400, "invalidRange", "Content-Range is missing or malformed");
    };
    let len = body.len() as u64;
    let received = session.received.len() as u64;
    if last + 1 - first != len || last >= total || (session.total != 0 && total != session.total) {
        return graph_error(400, "invalidRange", "Content-Range does not describe the body");
    }
    if len >= GRAPH_MAX_REQUEST {
        return graph_error(413, "requestEntityTooLarge", "a fragment must be under 60 MiB");
    }
    if last + 1 < total && !len.is_multiple_of(GRAPH_FRAGMENT) {
        return graph_error(400, "invalidRange", "fragments must be a multiple of 320 KiB");
    }
    if first < received {
        return graph_error(416, "invalidRange", "The fragment overlaps a range already received");
    }
    if first > received {
        return graph_error(400, "invalidRange", "fragments must be uploaded in order");
    }
    let mut session = session;
    session.total = total;
    session.received.extend_from_slice(body);
    if last + 1 < total {
        let answer = ResponseTemplate::new(202).set_body_json(expected(&session));
        state.uploads.insert(id.to_owned(), session);
        return answer;
    }
    state.uploads.remove(id);
    let target = session.target.expect("a Graph session has its target");
    graph_landed(state, http, &target, session.received)
}

// ---- Dropbox --------------------------------------------------------------------------

const DROPBOX_MAX_REQUEST: usize = 150 << 20;

fn dropbox_hash(bytes: &[u8]) -> String {
    let mut hasher = ContentHasher::new(HashAlg::Dropbox);
    hasher.update(bytes);
    hasher.finish().provider
}

/// The commit's target: `add` at a path whose parent exists, or `update` of the file at the
/// path with its `rev`; `Err` with Dropbox's answer otherwise.
fn dropbox_target(state: &State, commit: &Value) -> Result<Target, Box<ResponseTemplate>> {
    let path = commit["path"].as_str().unwrap_or_default();
    if commit["autorename"].as_bool() != Some(false) || commit["strict_conflict"].as_bool() != Some(true) {
        let refused =
            ResponseTemplate::new(400).set_body_string("the fake expects autorename false and strict_conflict true");
        return Err(Box::new(refused));
    }
    match commit["mode"][".tag"].as_str() {
        Some("add") => {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
            match dropbox::lookup(state, &state.nodes, parent) {
                Some(parent) if state.nodes.get(&parent).is_some_and(|n| !n.is_file()) => {
                    Ok(Target::New { parent, name: name.to_owned() })
                }
                _ => Err(Box::new(dropbox::error_409(
                    "path/not_found/..",
                    json!({ ".tag": "path", "path": { ".tag": "not_found" } }),
                ))),
            }
        }
        Some("update") => match dropbox::lookup(state, &state.nodes, path) {
            Some(id) => Ok(Target::Replace { id, if_match: commit["mode"]["update"].as_str().map(str::to_owned) }),
            None => Err(Box::new(dropbox_conflict())),
        },
        _ => Err(Box::new(ResponseTemplate::new(400).set_body_string("the fake takes only the add and update modes"))),
    }
}

fn dropbox_conflict() -> ResponseTemplate {
    dropbox::error_409(
        "path/conflict/file/..",
        json!({ ".tag": "path", "path": { ".tag": "conflict", "conflict": { ".tag": "file" } } }),
    )
}

/// Lands an upload: the file's metadata, or `path/conflict`.
fn dropbox_landed(state: &mut State, target: &Target, content: Vec<u8>) -> ResponseTemplate {
    match state.land(target, content) {
        Ok((id, _)) => {
            let node = state.nodes[&id].clone();
            ResponseTemplate::new(200).set_body_json(dropbox::entry(state, &state.nodes, &node, false))
        }
        Err(_) => dropbox_conflict(),
    }
}

/// `files/upload` and `files/upload_session/{start, append_v2, finish}` (`route` after `files`).
pub(super) fn dropbox(state: &mut State, http: &Http<'_>, route: &[&str]) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return dropbox::fault_response(fault);
    }
    if !http.authorized() {
        return dropbox::fault_response(Fault::Unauthorized);
    }
    let Some(argument) = http.header("dropbox-api-arg").and_then(|a| serde_json::from_str::<Value>(a).ok()) else {
        return ResponseTemplate::new(400).set_body_string("Error in call: Dropbox-API-Arg is missing or not JSON");
    };
    let body = http.request.body.clone();
    if body.len() > DROPBOX_MAX_REQUEST {
        return ResponseTemplate::new(413).set_body_string("a request carries at most 150 MiB");
    }
    if let Some(expected) = argument["content_hash"].as_str()
        && expected != dropbox_hash(&body)
    {
        return dropbox::error_409("content_hash_mismatch/..", json!({ ".tag": "content_hash_mismatch" }));
    }
    let lookup_error = |tag: &str, extra: Value| {
        let mut error = json!({ ".tag": tag });
        if let (Value::Object(e), Value::Object(x)) = (&mut error, extra) {
            e.extend(x);
        }
        error
    };
    match route {
        ["upload"] => match dropbox_target(state, &argument) {
            Ok(target) => dropbox_landed(state, &target, body),
            Err(refused) => *refused,
        },
        ["upload_session", "start"] => {
            let id = state.new_session(None, 0);
            let session = state.uploads.get_mut(&id).expect("just opened");
            session.received = body;
            session.closed = argument["close"].as_bool().unwrap_or(false);
            ResponseTemplate::new(200).set_body_json(json!({ "session_id": id }))
        }
        ["upload_session", "append_v2"] => {
            let id = argument["cursor"]["session_id"].as_str().unwrap_or_default();
            let offset = argument["cursor"]["offset"].as_u64().unwrap_or(u64::MAX);
            let Some(session) = state.uploads.get_mut(id) else {
                return dropbox::error_409("not_found/..", json!({ ".tag": "not_found" }));
            };
            if session.closed {
                return dropbox::error_409("closed/..", json!({ ".tag": "closed" }));
            }
            let at = session.received.len() as u64;
            if offset != at {
                return dropbox::error_409(
                    "incorrect_offset/..",
                    lookup_error("incorrect_offset", json!({ "correct_offset": at })),
                );
            }
            session.received.extend_from_slice(&body);
            session.closed = argument["close"].as_bool().unwrap_or(false);
            ResponseTemplate::new(200).set_body_raw(b"null".to_vec(), "application/json")
        }
        ["upload_session", "finish"] => {
            let id = argument["cursor"]["session_id"].as_str().unwrap_or_default().to_owned();
            let offset = argument["cursor"]["offset"].as_u64().unwrap_or(u64::MAX);
            let Some(session) = state.uploads.get(&id).cloned() else {
                return dropbox::error_409(
                    "lookup_failed/not_found/..",
                    json!({ ".tag": "lookup_failed", "lookup_failed": { ".tag": "not_found" } }),
                );
            };
            let mut content = session.received;
            content.extend_from_slice(&body);
            if offset != content.len() as u64 - body.len() as u64 {
                let correct = json!({ ".tag": "incorrect_offset", "correct_offset": content.len() - body.len() });
                return dropbox::error_409(
                    "lookup_failed/incorrect_offset/..",
                    json!({ ".tag": "lookup_failed", "lookup_failed": correct }),
                );
            }
            let target = match dropbox_target(state, &argument["commit"]) {
                Ok(target) => target,
                Err(refused) => return *refused,
            };
            state.uploads.remove(&id);
            dropbox_landed(state, &target, content)
        }
        _ => ResponseTemplate::new(404).set_body_string("Unknown API function"),
    }
}

// ---- Box ------------------------------------------------------------------------------

const BOX_SESSION_MIN: u64 = 20_000_000;
const BOX_DIRECT_MAX: usize = 50_000_000;
const BOX_PART: u64 = 8 << 20;

fn sha1_hex(bytes: &[u8]) -> String {
    let mut hasher = ContentHasher::new(HashAlg::Sha1);
    hasher.update(bytes);
    hasher.finish().provider
}

/// `sha=<base64 SHA-1>` of `bytes`, as Box's `Digest` header.
fn box_digest(bytes: &[u8]) -> String {
    let raw = hex_bytes(&sha1_hex(bytes));
    format!("sha={}", base64::engine::general_purpose::STANDARD.encode(raw))
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// The parts of a `multipart/*` body, in order: each part's headers (lowercased) and bytes.
fn multipart(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some(boundary) = content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"')) else {
        return Vec::new();
    };
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, &delimiter) {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&rest[..head_end]).to_lowercase();
        let content_start = head_end + 4;
        let Some(next) = find(&rest[content_start..], &delimiter) else { break };
        let content = rest[content_start..content_start + next].strip_suffix(b"\r\n").unwrap_or_default().to_vec();
        parts.push((head, content));
        rest = &rest[content_start + next..];
    }
    parts
}

/// A part's header value (`name` of `content-disposition`, or `content-type`).
fn part_header(head: &str, key: &str) -> String {
    match key {
        "name" => head.split("name=\"").nth(1).and_then(|n| n.split('"').next()).unwrap_or_default().to_owned(),
        _ => head
            .split(&format!("{key}:"))
            .nth(1)
            .map(|v| v.lines().next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An upload that landed: `{"total_count": 1, "entries": [File]}`, or Box's refusal.
fn box_landed(state: &mut State, target: &Target, content: Vec<u8>) -> ResponseTemplate {
    match state.land(target, content) {
        Ok((id, _)) => {
            let node = state.nodes[&id].clone();
            let file = boxcom::item(state, &state.nodes, &node, true, "active");
            ResponseTemplate::new(201).set_body_json(json!({ "total_count": 1, "entries": [file] }))
        }
        Err(Landing::NameTaken) => box_name_in_use(state, target),
        Err(Landing::Changed) => boxcom::error(412, "precondition_failed", "The resource has been modified."),
        Err(Landing::Gone) => boxcom::error(404, "not_found", "Not Found"),
    }
}

fn box_name_in_use(state: &State, target: &Target) -> ResponseTemplate {
    let conflict = match target {
        Target::New { parent, name } => state.child_named(&state.nodes, parent, name).map(|n| n.id.clone()),
        Target::Replace { .. } => None,
    };
    let mut answer = json!({
        "type": "error", "status": 409, "code": "item_name_in_use",
        "message": "Item with the same name already exists", "request_id": "fake0123456789",
    });
    if let Some(id) = conflict {
        answer["context_info"] = json!({ "conflicts": { "type": "file", "id": id } });
    }
    ResponseTemplate::new(409).set_body_json(answer)
}

/// A new file's target, if its parent is a folder and its name is free.
fn box_new(state: &State, parent: &str, name: &str) -> Result<Target, Box<ResponseTemplate>> {
    if state.nodes.get(parent).is_none_or(|n| n.is_file()) {
        return Err(Box::new(boxcom::error(404, "not_found", "Not Found")));
    }
    let target = Target::New { parent: parent.to_owned(), name: name.to_owned() };
    if state.child_named(&state.nodes, parent, name).is_some() {
        return Err(Box::new(box_name_in_use(state, &target)));
    }
    Ok(target)
}

/// The upload host's `files/…` routes (`rest` after `/api/2.0/files`).
pub(super) fn boxcom(state: &mut State, http: &Http<'_>, rest: &[&str]) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return boxcom::fault_response(http, fault);
    }
    if !http.authorized() {
        return boxcom::fault_response(http, Fault::Unauthorized);
    }
    let body = http.request.body.clone();
    let if_match = http.header("if-match").map(str::to_owned);
    match (http.method(), rest) {
        ("POST", ["content"]) | ("POST", [_, "content"]) => {
            let parts = multipart(http.header("content-type").unwrap_or_default(), &body);
            let names: Vec<String> = parts.iter().map(|(head, _)| part_header(head, "name")).collect();
            if names != ["attributes", "file"] {
                return boxcom::error(400, "metadata_after_file_contents", "attributes must come before file");
            }
            let attributes: Value = serde_json::from_slice(&parts[0].1).unwrap_or_default();
            let content = parts[1].1.clone();
            if content.len() > BOX_DIRECT_MAX {
                return boxcom::error(413, "file_size_limit_exceeded", "Use a chunked upload above 50 MB");
            }
            if http.header("content-md5").is_some_and(|sha1| sha1 != sha1_hex(&content)) {
                return boxcom::error(400, "bad_digest", "The content-md5 header does not match the file");
            }
            let target = match rest {
                [id, "content"] => Target::Replace { id: (*id).to_owned(), if_match },
                _ => {
                    let parent = attributes["parent"]["id"].as_str().unwrap_or_default();
                    match box_new(state, parent, attributes["name"].as_str().unwrap_or_default()) {
                        Ok(target) => target,
                        Err(refused) => return *refused,
                    }
                }
            };
            box_landed(state, &target, content)
        }
        ("POST", ["upload_sessions"]) | ("POST", [_, "upload_sessions"]) => {
            let request = http.body_json().unwrap_or_default();
            let size = request["file_size"].as_u64().unwrap_or(0);
            if size < BOX_SESSION_MIN {
                return boxcom::error(400, "file_size_too_small", "A chunked upload takes files of 20 MB and more");
            }
            let target = match rest {
                [id, "upload_sessions"] => match state.nodes.get(*id) {
                    Some(node) if node.is_file() => Target::Replace { id: (*id).to_owned(), if_match: None },
                    _ => return boxcom::error(404, "not_found", "Not Found"),
                },
                _ => {
                    let parent = request["folder_id"].as_str().unwrap_or_default();
                    match box_new(state, parent, request["file_name"].as_str().unwrap_or_default()) {
                        Ok(target) => target,
                        Err(refused) => return *refused,
                    }
                }
            };
            let id = state.new_session(Some(target), size);
            let url = |last: &str| format!("{}/api/2.0/files/upload_sessions/{id}{last}", http.base);
            ResponseTemplate::new(201).set_body_json(json!({
                "id": id,
                "type": "upload_session",
                "session_expires_at": boxcom_time(state.clock + chrono::Duration::days(7)),
                "part_size": BOX_PART,
                "total_parts": size.div_ceil(BOX_PART),
                "num_parts_processed": 0,
                "session_endpoints": {
                    "upload_part": url(""), "commit": url("/commit"), "abort": url(""),
                    "list_parts": url("/parts"), "status": url(""), "log_event": url("/log"),
                },
            }))
        }
        (method, ["upload_sessions", id, tail @ ..]) => box_session(state, http, method, id, tail, body, if_match),
        _ => boxcom::error(404, "not_found", "Not Found"),
    }
}

fn boxcom_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S-00:00").to_string()
}

/// A session's part upload, part list, commit and abort.
fn box_session(
    state: &mut State,
    http: &Http<'_>,
    method: &str,
    id: &str,
    tail: &[&str],
    body: Vec<u8>,
    if_match: Option<String>,
) -> ResponseTemplate {
    let Some(session) = state.uploads.get_mut(id) else {
        return boxcom::error(404, "not_found", "Not Found");
    };
    match (method, tail) {
        ("PUT", []) => {
            let Some((first, last, total)) = content_range(http.header("content-range")) else {
                return boxcom::error(400, "invalid_range", "Content-Range is missing or malformed");
            };
            let len = body.len() as u64;
            let expected = session.received.len() as u64;
            if total != session.total || last + 1 - first != len || first != expected {
                return boxcom::error(416, "range_not_satisfiable", "The part does not follow the last one");
            }
            if !first.is_multiple_of(BOX_PART) || (len != BOX_PART && last + 1 != total) {
                return boxcom::error(400, "invalid_part_size", "Parts are part_size bytes, the last may be smaller");
            }
            if http.header("digest") != Some(box_digest(&body).as_str()) {
                return boxcom::error(400, "bad_digest", "The Digest header does not match the part");
            }
            let part = json!({ "part_id": format!("{:08X}", session.parts.len() + 0xBFDF_5E48), "offset": first, "size": len, "sha1": sha1_hex(&body) });
            session.parts.push(part.clone());
            session.received.extend_from_slice(&body);
            ResponseTemplate::new(200).set_body_json(json!({ "part": part }))
        }
        ("GET", ["parts"]) => {
            let offset: usize = http.query("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let limit: usize = http.query("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
            let page: Vec<Value> = session.parts.iter().skip(offset).take(limit).cloned().collect();
            ResponseTemplate::new(200).set_body_json(json!({
                "entries": page, "limit": limit, "offset": offset, "total_count": session.parts.len(),
            }))
        }
        ("POST", ["commit"]) => {
            if http.header("digest") != Some(box_digest(&session.received).as_str()) {
                return boxcom::error(400, "bad_digest", "The Digest header does not match the file");
            }
            let listed = http.body_json().and_then(|b| b.get("parts").cloned()).unwrap_or_default();
            if listed != Value::Array(session.parts.clone()) || session.received.len() as u64 != session.total {
                return boxcom::error(400, "invalid_parts", "The parts do not make up the file");
            }
            if !session.committing {
                // "Parts are still being processed": Box asks to commit again later.
                session.committing = true;
                return ResponseTemplate::new(202).insert_header("retry-after", "0");
            }
            let mut target = session.target.clone().expect("a Box session has its target");
            let content = std::mem::take(&mut session.received);
            state.uploads.remove(id);
            if let Target::Replace { if_match: wanted, .. } = &mut target {
                *wanted = if_match;
            }
            box_landed(state, &target, content)
        }
        ("DELETE", []) => {
            state.uploads.remove(id);
            ResponseTemplate::new(204)
        }
        _ => boxcom::error(405, "method_not_allowed", "Method Not Allowed"),
    }
}

// ---- Google Drive ---------------------------------------------------------------------

const DRIVE_CHUNK: u64 = 262_144;
const DRIVE_SIMPLE_MAX: usize = 5 << 20;

/// `bytes */{total}`: a status query.
fn status_query(value: Option<&str>) -> Option<u64> {
    value?.strip_prefix("bytes */")?.parse().ok()
}

/// A finished Drive upload: the file resource.
fn drive_landed(state: &mut State, target: &Target, content: Vec<u8>) -> ResponseTemplate {
    match state.land(target, content) {
        Ok((id, created)) => {
            let node = state.nodes[&id].clone();
            ResponseTemplate::new(if created { 201 } else { 200 }).set_body_json(drive::file(&node))
        }
        Err(_) => drive::error(404, "notFound", "File not found.", Some("fileId")),
    }
}

/// A new file's target in the folder its metadata names.
fn drive_new(state: &State, metadata: &Value) -> Result<Target, Box<ResponseTemplate>> {
    let parent = metadata["parents"][0].as_str().unwrap_or_default().to_owned();
    let name = metadata["name"].as_str().unwrap_or_default().to_owned();
    if name.is_empty() || state.nodes.get(&parent).is_none_or(|n| n.is_file()) {
        return Err(Box::new(drive::error(404, "notFound", "File not found.", Some("parents"))));
    }
    Ok(Target::New { parent, name })
}

/// `/upload/drive/v3/files[/{id}]` (`rest` after `files`).
pub(super) fn drive(state: &mut State, http: &Http<'_>, rest: &[&str]) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return drive::fault_response(http, fault);
    }
    if !http.authorized() {
        return drive::fault_response(http, Fault::Unauthorized);
    }
    if let Some(session) = http.query("upload_id") {
        return drive_session(state, http, &session);
    }
    let body = http.request.body.clone();
    let replace = |id: &str| match state.nodes.get(id) {
        Some(node) if node.is_file() => Ok(Target::Replace { id: id.to_owned(), if_match: None }),
        _ => Err(Box::new(drive::error(404, "notFound", "File not found.", Some("fileId")))),
    };
    let target = match (http.method(), rest, http.query("uploadType").as_deref()) {
        ("PATCH", [id], Some("media" | "resumable")) => replace(id),
        ("POST", [], Some("resumable")) => drive_new(state, &http.body_json().unwrap_or_default()),
        ("POST", [], Some("multipart")) => {
            let content_type = http.header("content-type").unwrap_or_default();
            if !content_type.starts_with("multipart/related") {
                return drive::error(400, "badContent", "multipart uploads are multipart/related", None);
            }
            let parts = multipart(content_type, &body);
            let [(metadata_head, metadata), (_, media)] = parts.as_slice() else {
                return drive::error(
                    400,
                    "badContent",
                    "a multipart upload has a metadata part and a media part",
                    None,
                );
            };
            if !part_header(metadata_head, "content-type").starts_with("application/json") {
                return drive::error(400, "badContent", "the metadata part comes first, as JSON", None);
            }
            if media.len() > DRIVE_SIMPLE_MAX {
                return drive::error(400, "uploadTooLarge", "use a resumable upload above 5 MB", None);
            }
            match drive_new(state, &serde_json::from_slice(metadata).unwrap_or_default()) {
                Ok(target) => return drive_landed(state, &target, media.clone()),
                Err(refused) => return *refused,
            }
        }
        _ => return drive::error(400, "invalid", "Invalid upload request", Some("uploadType")),
    };
    let target = match target {
        Ok(target) => target,
        Err(refused) => return *refused,
    };
    if http.query("uploadType").as_deref() == Some("media") {
        if body.len() > DRIVE_SIMPLE_MAX {
            return drive::error(400, "uploadTooLarge", "use a resumable upload above 5 MB", None);
        }
        return drive_landed(state, &target, body);
    }
    let total = http.header("x-upload-content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let id = state.new_session(Some(target), total);
    let location = match rest {
        [file] => format!("{}/upload/drive/v3/files/{file}?uploadType=resumable&upload_id={id}", http.base),
        _ => format!("{}/upload/drive/v3/files?uploadType=resumable&upload_id={id}", http.base),
    };
    ResponseTemplate::new(200).insert_header("Location", location.as_str())
}

/// A resumable session's `PUT` (a chunk, or `bytes */N` for the status) and `DELETE`.
fn drive_session(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
    let Some(session) = state.uploads.get_mut(id) else {
        return drive::error(404, "notFound", "Upload session not found.", None);
    };
    let received = |session: &Session| {
        let answer = ResponseTemplate::new(308);
        match session.received.len() {
            0 => answer,
            n => answer.insert_header("Range", format!("bytes=0-{}", n - 1).as_str()),
        }
    };
    match http.method() {
        "DELETE" => {
            state.uploads.remove(id);
            return ResponseTemplate::new(499);
        }
        "PUT" => {}
        _ => return drive::error(405, "invalid", "method not allowed", None),
    }
    let range = http.header("content-range");
    if status_query(range).is_some() {
        return received(session);
    }
    let body = &http.request.body;
    let Some((first, last, total)) = content_range(range) else {
        return drive::error(400, "invalid", "Content-Range is missing or malformed", None);
    };
    if total != session.total || last + 1 - first != body.len() as u64 || first != session.received.len() as u64 {
        return drive::error(400, "invalid", "the chunk does not follow the bytes received", None);
    }
    if last + 1 < total && !(body.len() as u64).is_multiple_of(DRIVE_CHUNK) {
        return drive::error(400, "invalid", "chunks are multiples of 256 KiB but the last", None);
    }
    session.received.extend_from_slice(body);
    if last + 1 < total {
        return received(session);
    }
    let session = state.uploads.remove(id).expect("the session");
    drive_landed(state, &session.target.expect("a Drive session has its target"), session.received)
}

// ---- deletes ------------------------------------------------------------------------------

/// Deletes a file if `revision` (when given) is still its revision: `Ok(false)` when it is
/// gone already, `Err(())` when it changed.
fn delete_if(state: &mut State, id: &str, revision: Option<&str>) -> Result<bool, ()> {
    let Some(node) = state.nodes.get(id).filter(|n| n.is_file()) else { return Ok(false) };
    if revision.is_some_and(|r| Some(r) != state.revision(node).as_deref()) {
        return Err(());
    }
    state.tick();
    state.nodes.remove(id);
    state.record(StepKind::Deleted, id);
    Ok(true)
}

/// Graph `DELETE …/items/{id}` with `If-Match`: 204, 412 when the `eTag` moved, 404 when gone.
fn graph_delete(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return graph::fault_response(state, http, fault);
    }
    if !http.authorized() {
        return graph::fault_response(state, http, Fault::Unauthorized);
    }
    match delete_if(state, id, http.header("if-match")) {
        Ok(true) => ResponseTemplate::new(204),
        Ok(false) => graph::item_not_found(),
        Err(()) => graph_error(412, "preconditionFailed", "ETag does not match current item's value"),
    }
}

/// Dropbox `delete_v2` by path with `parent_rev`: the deleted file's metadata, or 409.
pub(super) fn dropbox_delete(state: &mut State, http: &Http<'_>) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return dropbox::fault_response(fault);
    }
    if !http.authorized() {
        return dropbox::fault_response(Fault::Unauthorized);
    }
    let argument = http.body_json().unwrap_or_default();
    let path = argument["path"].as_str().unwrap_or_default();
    let Some(id) = dropbox::lookup(state, &state.nodes, path) else {
        return dropbox::error_409(
            "path_lookup/not_found/..",
            json!({ ".tag": "path_lookup", "path_lookup": { ".tag": "not_found" } }),
        );
    };
    let node = state.nodes[&id].clone();
    let metadata = dropbox::entry(state, &state.nodes, &node, true);
    match delete_if(state, &id, argument["parent_rev"].as_str()) {
        Ok(_) => ResponseTemplate::new(200).set_body_json(json!({ "metadata": metadata })),
        Err(()) => dropbox::error_409(
            "path_write/conflict/file/..",
            json!({ ".tag": "path_write", "path_write": { ".tag": "conflict", "conflict": { ".tag": "file" } } }),
        ),
    }
}

/// Box `DELETE /2.0/files/{id}` with `If-Match`: 204 (to the trash), 412, 404.
pub(super) fn box_delete(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return boxcom::fault_response(http, fault);
    }
    if !http.authorized() {
        return boxcom::fault_response(http, Fault::Unauthorized);
    }
    match delete_if(state, id, http.header("if-match")) {
        Ok(true) => ResponseTemplate::new(204),
        Ok(false) => boxcom::error(404, "not_found", "Not Found"),
        Err(()) => boxcom::error(412, "precondition_failed", "The resource has been modified."),
    }
}

/// Drive `PATCH /drive/v3/files/{id}` with `{"trashed": true}`: the file, trashed.
pub(super) fn drive_trash(state: &mut State, http: &Http<'_>, id: &str) -> ResponseTemplate {
    if let Some(fault) = state.take_fault(Endpoint::Upload, false) {
        return drive::fault_response(http, fault);
    }
    if !http.authorized() {
        return drive::fault_response(http, Fault::Unauthorized);
    }
    if http.body_json().and_then(|b| b["trashed"].as_bool()) != Some(true) {
        return drive::error(400, "invalid", "the fake takes only {\"trashed\": true}", None);
    }
    let Some(node) = state.nodes.get(id).cloned() else {
        return drive::error(404, "notFound", "File not found.", Some("fileId"));
    };
    let _ = delete_if(state, id, None);
    let mut file = drive::file(&node);
    file["trashed"] = json!(true);
    ResponseTemplate::new(200).set_body_json(file)
}
