//! Lists the SQLite migrations (version, name, SQL) for `src/db/sqlite`'s cold-start check
//! that a database's migration history is already current, so that check needs neither
//! refinery's runner nor the regexes it compiles to parse the same file names at run time.
//! refinery's `embed_migrations!` embeds the same files; a unit test holds the two lists equal.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut listed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let file = path.file_name().and_then(|f| f.to_str()).expect("a UTF-8 file name").to_owned();
        let Some(stem) = file.strip_suffix(".sql") else { continue };
        let (version, name) = stem
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .unwrap_or_else(|| panic!("{file}: a migration is named V<version>__<name>.sql"));
        let version: i32 = version.parse().unwrap_or_else(|_| panic!("{file}: the version is not a number"));
        listed.push((version, name.to_owned(), path.canonicalize().expect("the migration's path")));
    }
    listed.sort_by_key(|(version, ..)| *version);
    let mut out = String::from("pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[\n");
    for (version, name, path) in &listed {
        writeln!(out, "    ({version}, {name:?}, include_str!({:?})),", path.display().to_string()).expect("a string");
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("sqlite_migrations.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
