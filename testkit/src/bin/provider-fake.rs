//! A provider to watch a folder sync locally, with no account anywhere: the sync tests' fake
//! drive (`testkit::sync_fakes`, bodies shaped like the provider's documented JSON) served on
//! loopback until Ctrl-C.
//!
//! `cargo run -p testkit --bin provider-fake -- [dropbox|onedrive|sharepoint|gdrive|box] [port]`
//! (defaults: dropbox, 4010). It prints the `scripts/run demo-connection` arguments that point
//! the local API at it, and the folder to configure. Lines on standard input change the drive,
//! for the next sync to find: `add <path> <text>`, `modify <path> <text>`, `delete <path>`,
//! `rename <path> <new name>` (paths relative to the synced folder).

use std::str::FromStr as _;

use serde_json::json;
use shared::db::ProviderType;
use testkit::providers::{ACCESS_TOKEN, REFRESH_TOKEN};
use testkit::sync_fakes::{RemoteTree, mount};
use tokio::io::AsyncBufReadExt as _;
use wiremock::MockServer;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map(String::as_str).unwrap_or("dropbox");
    let kind = ProviderType::from_str(name).map_err(|e| e.to_string())?;
    let port: u16 = match args.get(1) {
        Some(p) => p.parse().map_err(|_| format!("`{p}` is not a port"))?,
        None => 4010,
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    let server = MockServer::builder().listener(listener).start().await;
    let tree = RemoteTree::scenario(kind);
    mount(&server, &tree).await;
    let scope = tree.scope();
    let url = server.uri();
    println!("{} fake drive at {url} (Ctrl-C stops it)", kind.as_str());
    println!();
    println!("The connection (tokens the fake accepts; writes the provider's endpoints into .local/config.json):");
    println!(
        "  scripts/run demo-connection --tenant $TENANT --user $ME --provider {} --api-base-url {url} \\\n    --access-token {ACCESS_TOKEN} --refresh-token {REFRESH_TOKEN} --metadata '{}'",
        kind.as_str(),
        scope.connection_metadata
    );
    println!();
    println!(
        "The synced folder is `{}` ({}): pick it with GET /connections/$CONN/items, or configure it directly:",
        scope.folder_path.as_deref().unwrap_or("/"),
        scope.folder_id
    );
    let folder = json!({
        "connection_id": "$CONN",
        "provider_folder_id": scope.folder_id,
        "folder_type": "models",
    });
    println!("  {folder}");
    println!();
    println!(
        "Change the drive with lines like: modify factory-line.qsim new text | add Scenarios/b.qsim text | delete <path> | rename <path> <name>; show <path> prints what it holds"
    );

    let stdin = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut words = line.trim().splitn(3, ' ');
            let (verb, path, rest) = (words.next().unwrap_or(""), words.next(), words.next().unwrap_or(""));
            let Some(path) = path.filter(|p| !p.is_empty()) else {
                eprintln!("usage: add|modify <path> <text>, delete <path>, rename <path> <new name>");
                continue;
            };
            // A path that does not exist panics inside the tree; the fake goes on serving.
            let tree = tree.clone();
            let (verb, path, rest) = (verb.to_owned(), path.to_owned(), rest.to_owned());
            let done = std::panic::catch_unwind(move || match verb.as_str() {
                "add" => {
                    tree.add_file(&path, rest.into_bytes());
                    true
                }
                "modify" => {
                    tree.modify(&path, rest.into_bytes());
                    true
                }
                "delete" => {
                    tree.delete(&path);
                    true
                }
                "rename" => {
                    tree.rename(&path, &rest);
                    true
                }
                "show" => {
                    // The whole rest of the line is the path: names may hold spaces.
                    let item = tree.expect(format!("{path} {rest}").trim());
                    let text = String::from_utf8_lossy(&item.content);
                    eprintln!("{}: {} bytes, {:?}", item.path, item.size, text.chars().take(80).collect::<String>());
                    true
                }
                _ => false,
            });
            match done {
                Ok(true) => eprintln!("done: {}", line.trim()),
                Ok(false) => eprintln!("unknown change `{}`", line.trim()),
                Err(_) => eprintln!("no such item: {}", line.trim()),
            }
        }
    });
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    stdin.abort();
    Ok(())
}
