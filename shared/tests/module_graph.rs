//! The top-level modules of `shared` depend on each other without a cycle: a module that
//! reaches, through others, back to itself can no longer be read, tested or moved on its own
//! (the review of December 2026 found `config → vault → config` and
//! `config → deadline → providers → config`). This reads every `crate::<module>` path in the
//! crate's source, outside comments and unit-test modules, and fails naming the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file that production builds compile: comments dropped, and everything from a
/// unit-test module (`#[cfg(test)]` then `mod tests`) on, which by convention ends the file.
fn production_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") && lines.peek().is_some_and(|l| l.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line.split(" //").next().unwrap_or(line));
        code.push('\n');
    }
    code
}

/// The top-level modules a piece of code names through `crate::`.
fn referenced(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        // `crate::{a, b::c}` names several.
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or_default().split(',').collect(),
            None => vec![rest],
        };
        for name in names {
            let module: String = name.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if modules.contains(&module) {
                found.insert(module);
            }
        }
    }
    found
}

/// A cycle through `start`, as the list of modules on it, if there is one.
fn cycle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(start, start, graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_top_level_modules_of_shared_form_no_cycle() {
    // Arrange
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let module_of = |file: &Path| {
        let relative = file.strip_prefix(&src).expect("inside src");
        let first = relative.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
        first.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).filter(|m| m != "lib").collect();

    // Act
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(file).expect("read a source file"));
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(referenced(&code, &modules).into_iter().filter(|m| *m != module));
    }
    let cycles: Vec<String> = modules.iter().filter_map(|m| cycle_from(m, &graph)).map(|c| c.join(" → ")).collect();

    // Assert
    assert!(graph.len() >= 10, "the scan found the modules: {graph:?}");
    assert!(graph["config"].contains("vault"), "the scan sees `use crate::` lines: {graph:?}");
    assert!(cycles.is_empty(), "import cycles among shared's modules:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_finds_a_cycle_when_there_is_one() {
    // Arrange
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let code_a = "use crate::b::X;\n// use crate::c::Y;\nfn f() { crate::{c::Z}; }";
    let code_b = "use crate::{a, c};";

    // Act
    let a = referenced(&production_code(code_a), &modules);
    let b = referenced(&production_code(code_b), &modules);
    let graph = BTreeMap::from([("a".to_owned(), a.clone()), ("b".to_owned(), b.clone())]);

    // Assert
    assert_eq!(a, BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert_eq!(b, BTreeSet::from(["a".to_owned(), "c".to_owned()]));
    assert_eq!(cycle_from("a", &graph), Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()]));
    assert_eq!(cycle_from("c", &graph), None);
}
