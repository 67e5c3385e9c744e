//! Every piece of T-SQL the backend can send must parse as T-SQL: each statement of every
//! file in migrations/mssql, `shared::db::mssql::sql(stmt)` for every `Stmt::ALL`, and the
//! text `mssql::sent_sql` makes of it when NULL parameters are written in as typed NULLs.
//! The migrations are also held to one item per `ALTER TABLE … ADD` (Babelfish). No SQL
//! Server runs in CI, so this is what catches a typo in a statement nobody executed.
//!
//! Each statement goes to sqlparser (`MsSqlDialect`) first. What sqlparser cannot parse goes
//! to sqlglot (dialect "tsql"), in one Python process for all of them, parsing strictly:
//! `error_level=RAISE`, and a tree containing an `exp.Command` (sqlglot's "kept as unparsed
//! text" fallback) counts as a failure, so sqlglot cannot wave through what it did not parse.
//! The Python is `<repo>/.venv/bin/python` (or `$QUODSI_PYTHON`); without it or without
//! sqlglot the test fails, it never skips: run scripts/test, which installs sqlglot there.
//!
//! Constructs sqlparser 0.64 (`MsSqlDialect`) does not parse, and that therefore depend on
//! sqlglot here:
//! * `CREATE [UNIQUE] CLUSTERED | NONCLUSTERED INDEX …` — the CLUSTERED / NONCLUSTERED
//!   keyword (plain `CREATE [UNIQUE] INDEX … WHERE …` parses);
//! * `PRIMARY KEY NONCLUSTERED (…)` table constraints inside CREATE TABLE;
//! * `IF <condition> <statement>` without BEGIN … END (the guarded CREATE TABLE / CREATE
//!   INDEX of the migration);
//! * the `OUTPUT INSERTED.…` clause of INSERT and UPDATE.
//!
//! The test prints how many statements each parser accepted (visible with --nocapture) and
//! lists every statement neither accepts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shared::db::{Kind, Stmt, Value, mssql};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

const SETUP_HINT: &str = "run scripts/test (it installs sqlglot into .venv)";

/// Parses strictly: any exception, or any part sqlglot kept as an unparsed Command, is a
/// failure. Reads a JSON list of statements, writes one result per statement (null = ok).
const SQLGLOT_SCRIPT: &str = r#"
import json, sys
try:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel
except Exception as e:
    sys.stdout.write(json.dumps({"missing": repr(e)}))
    sys.exit(0)

results = []
for sql in json.load(sys.stdin):
    try:
        tree = sqlglot.parse_one(sql, read="tsql", error_level=ErrorLevel.RAISE)
        if tree is None:
            results.append("sqlglot produced no tree")
            continue
        commands = [tree] if isinstance(tree, exp.Command) else []
        commands += list(tree.find_all(exp.Command))
        if commands:
            results.append("sqlglot kept part of it unparsed (exp.Command): " + commands[0].sql(dialect="tsql")[:160])
        else:
            results.append(None)
    except Exception as e:
        results.append(type(e).__name__ + ": " + str(e).replace("\n", " ")[:400])
sys.stdout.write(json.dumps({"version": sqlglot.__version__, "results": results}))
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests crate lives in the repo").to_path_buf()
}

fn python() -> PathBuf {
    std::env::var_os("QUODSI_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Splits a T-SQL script into statements with sqlparser's tokenizer (so `;` inside strings,
/// quoted identifiers and comments is never a separator): a statement ends at `;` outside
/// parentheses and outside BEGIN … END / CASE … END. Comments are dropped.
fn split_statements(script: &str) -> Vec<String> {
    let tokens = Tokenizer::new(&MsSqlDialect {}, script)
        .with_unescape(false)
        .tokenize()
        .unwrap_or_else(|e| panic!("tokenizing failed: {e}"));
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut parens = 0i32;
    let mut blocks = 0i32;
    let mut previous_word: Option<Keyword> = None;
    for token in &tokens {
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                current.push(' ');
                continue;
            }
            Token::Whitespace(_) => {
                current.push_str(&token.to_string());
                continue;
            }
            Token::LParen => parens += 1,
            Token::RParen => parens -= 1,
            Token::SemiColon if parens == 0 && blocks == 0 => {
                if !current.trim().is_empty() {
                    statements.push(current.trim().to_owned());
                }
                current.clear();
                previous_word = None;
                continue;
            }
            Token::Word(w) => {
                match w.keyword {
                    Keyword::CASE => blocks += 1,
                    Keyword::END => blocks -= 1,
                    _ => {}
                }
                // BEGIN opens a block, BEGIN TRAN[SACTION] does not: decided on the next word.
                if previous_word == Some(Keyword::BEGIN) && !matches!(w.keyword, Keyword::TRAN | Keyword::TRANSACTION) {
                    blocks += 1;
                }
                previous_word = Some(w.keyword);
            }
            _ => {}
        }
        if !matches!(token, Token::Word(_)) && previous_word == Some(Keyword::BEGIN) {
            blocks += 1;
            previous_word = None;
        }
        current.push_str(&token.to_string());
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

struct Outcome {
    by_sqlparser: usize,
    by_sqlglot: Vec<String>,
    failures: Vec<String>,
}

/// Parses `(label, sql)` pairs, sqlparser first, sqlglot for the rest.
fn check(statements: &[(String, String)]) -> Outcome {
    let mut by_sqlparser = 0;
    let mut fallback: Vec<(&str, &str, String)> = Vec::new();
    for (label, sql) in statements {
        match Parser::parse_sql(&MsSqlDialect {}, sql) {
            Ok(parsed) if parsed.len() == 1 => by_sqlparser += 1,
            Ok(parsed) => fallback.push((label, sql, format!("sqlparser saw {} statements", parsed.len()))),
            Err(e) => fallback.push((label, sql, format!("sqlparser: {e}"))),
        }
    }
    let sqls: Vec<&str> = fallback.iter().map(|(_, sql, _)| *sql).collect();
    let verdicts = sqlglot(&sqls);
    let mut by_sqlglot = Vec::new();
    let mut failures = Vec::new();
    for ((label, sql, sqlparser_error), verdict) in fallback.iter().zip(verdicts) {
        match verdict {
            None => by_sqlglot.push(format!("{label} ({sqlparser_error})")),
            Some(sqlglot_error) => {
                failures.push(format!("{label}\n  {sqlparser_error}\n  sqlglot: {sqlglot_error}\n  sql: {sql}"))
            }
        }
    }
    Outcome { by_sqlparser, by_sqlglot, failures }
}

/// Runs the sqlglot script once over all statements; `None` = parsed.
fn sqlglot(statements: &[&str]) -> Vec<Option<String>> {
    let python = python();
    if !python.exists() {
        panic!("{} does not exist: {SETUP_HINT}", python.display());
    }
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SQLGLOT_SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP_HINT}", python.display()));
    let input = serde_json::to_vec(statements).expect("statements serialise");
    child.stdin.take().expect("stdin is piped").write_all(&input).expect("writing statements to python");
    let output = child.wait_with_output().expect("python finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed: {}\n{}",
        python.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("python answered {stdout:?}: {e}"));
    if let Some(missing) = reply.get("missing") {
        panic!("sqlglot is not importable by {} ({missing}): {SETUP_HINT}", python.display());
    }
    let results = reply["results"].as_array().expect("a results list");
    assert_eq!(results.len(), statements.len(), "one verdict per statement");
    println!("sqlglot {}", reply["version"]);
    results.iter().map(|r| r.as_str().map(str::to_owned)).collect()
}

fn report(what: &str, statements: &[(String, String)]) {
    let total = statements.len();
    assert!(total > 0, "{what}: no statements found");
    let outcome = check(statements);
    println!(
        "{what}: {total} statements: {} parsed by sqlparser (MsSqlDialect), {} by sqlglot (tsql), {} by neither",
        outcome.by_sqlparser,
        outcome.by_sqlglot.len(),
        outcome.failures.len()
    );
    for s in &outcome.by_sqlglot {
        println!("  sqlglot: {s}");
    }
    assert!(
        outcome.failures.is_empty(),
        "{what}: {} statement(s) parse as T-SQL with neither sqlparser nor sqlglot:\n\n{}",
        outcome.failures.len(),
        outcome.failures.join("\n\n")
    );
    let checked = outcome.by_sqlparser + outcome.by_sqlglot.len();
    assert!(checked > 0, "{what}: nothing was checked");
    assert_eq!(checked, total, "{what}: every statement is checked by exactly one parser");
}

#[test]
fn store_statements_parse_as_tsql() {
    let statements: Vec<(String, String)> =
        Stmt::ALL.iter().map(|s| (format!("Stmt::{s}"), mssql::sql(*s).to_owned())).collect();
    assert_eq!(statements.len(), Stmt::ALL.len());
    report("mssql::sql", &statements);
}

/// The highest `@Pn` a statement uses: how many parameters it is sent with.
fn parameter_count(sql: &str) -> usize {
    sql.match_indices("@P")
        .filter_map(|(at, _)| {
            sql[at + 2..].chars().take_while(char::is_ascii_digit).collect::<String>().parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Every NULL kind a parameter can have. The match makes a new `Kind` a compile error here,
/// so it cannot be left out of the texts checked below.
fn all_kinds() -> Vec<Kind> {
    let kinds =
        [Kind::Bool, Kind::I32, Kind::I64, Kind::Text, Kind::Bytes, Kind::Uuid, Kind::Timestamp, Kind::Hundredths];
    for kind in kinds {
        match kind {
            Kind::Bool
            | Kind::I32
            | Kind::I64
            | Kind::Text
            | Kind::Bytes
            | Kind::Uuid
            | Kind::Timestamp
            | Kind::Hundredths => {}
        }
    }
    kinds.to_vec()
}

/// The text the backend sends differs from `mssql::sql(stmt)` when a parameter is a NULL that
/// tiberius would send untyped: `@Pn` becomes a typed `CAST(NULL AS …)`. Each statement is
/// sent here with every parameter a NULL of one kind, for every kind, so every placeholder
/// position is checked with every literal that can replace it.
#[test]
fn sent_statements_with_null_parameters_parse_as_tsql() {
    // Arrange
    let mut statements: Vec<(String, String)> = Vec::new();
    let mut rewritten_kinds = std::collections::BTreeSet::new();

    // Act
    for stmt in Stmt::ALL {
        let plain = mssql::sql(*stmt);
        let count = parameter_count(plain);
        for kind in all_kinds() {
            let sent = mssql::sent_sql(*stmt, &vec![Value::Null(kind); count]);
            if sent == plain {
                continue;
            }
            // A rewritten text replaces every placeholder, so none is left unbound.
            assert!(!sent.contains("@P"), "Stmt::{stmt} with NULL {kind:?}: a placeholder was left: {sent}");
            rewritten_kinds.insert(format!("{kind:?}"));
            statements.push((format!("Stmt::{stmt} (every parameter NULL {kind:?})"), sent.into_owned()));
        }
    }

    // Assert: the four kinds tiberius sends untyped are rewritten, in every statement.
    assert_eq!(
        rewritten_kinds.into_iter().collect::<Vec<_>>(),
        ["Bytes", "Hundredths", "Text", "Timestamp"],
        "the NULL kinds written into the text"
    );
    assert_eq!(statements.len(), 4 * Stmt::ALL.len());
    report("mssql::sent_sql with NULL parameters", &statements);
}

/// Babelfish refuses an `ALTER TABLE … ADD` of more than one item (two columns, or a column
/// and a table constraint): one item per ALTER, its DEFAULT and CHECK inline. Returns the
/// offending ALTERs of a script: those with a comma outside parentheses after ADD.
fn multi_item_adds(script: &str) -> Vec<String> {
    let mut offending = Vec::new();
    for statement in split_statements(script) {
        let tokens = Tokenizer::new(&MsSqlDialect {}, &statement)
            .with_unescape(false)
            .tokenize()
            .unwrap_or_else(|e| panic!("tokenizing failed: {e}"));
        let words: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
        let (mut altering, mut adding, mut depth) = (false, false, 0i32);
        for (i, token) in words.iter().enumerate() {
            match token {
                Token::Word(w) if w.keyword == Keyword::ALTER => {
                    altering = matches!(words.get(i + 1), Some(Token::Word(t)) if t.keyword == Keyword::TABLE);
                    adding = false;
                }
                Token::Word(w) if w.keyword == Keyword::ADD && altering && depth == 0 => adding = true,
                Token::Word(w) if w.keyword == Keyword::END => (altering, adding) = (false, false),
                Token::SemiColon => (altering, adding) = (false, false),
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Comma if adding && depth == 0 => {
                    offending.push(statement.clone());
                    (altering, adding) = (false, false);
                }
                _ => {}
            }
        }
    }
    offending
}

#[test]
fn no_migration_adds_more_than_one_item_per_alter() {
    // Arrange
    let files = migration_files();

    // Act
    let offending: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let script = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            multi_item_adds(&script).into_iter().map(move |s| format!("{}: {s}", file.display()))
        })
        .collect();

    // Assert
    assert!(offending.is_empty(), "one column or constraint per ALTER TABLE … ADD:\n{}", offending.join("\n"));
}

#[test]
fn multi_item_adds_are_found_and_single_items_pass() {
    let single = "ALTER TABLE dbo.t ADD a INT NOT NULL CONSTRAINT df_a DEFAULT 0 \
                  CONSTRAINT ck_a CHECK (a IN (1, 2));\nALTER TABLE dbo.t ADD CONSTRAINT ck_b CHECK (b IN (1, 2));\n\
                  IF 1 = 1 BEGIN ALTER TABLE dbo.t ADD c INT NULL; SELECT 1, 2; END;";
    assert!(multi_item_adds(single).is_empty(), "{:?}", multi_item_adds(single));
    for multi in [
        "ALTER TABLE dbo.t ADD a INT NULL, b INT NULL;",
        "ALTER TABLE dbo.t ADD\n    a INT NOT NULL CONSTRAINT df_a DEFAULT 0,\n    CONSTRAINT ck_a CHECK (a >= 0);",
        "IF 1 = 1 BEGIN ALTER TABLE dbo.t ADD a INT NULL, b INT NULL; END;",
    ] {
        assert_eq!(multi_item_adds(multi).len(), 1, "{multi}");
    }
}

fn migration_files() -> Vec<PathBuf> {
    let dir = repo_root().join("migrations/mssql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no migrations in {}", dir.display());
    files
}

#[test]
fn migrations_parse_as_tsql() {
    let files = migration_files();
    let mut statements = Vec::new();
    for file in &files {
        let script = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let found = split_statements(&script);
        assert!(!found.is_empty(), "{name}: no statements");
        statements.extend(found.into_iter().enumerate().map(|(i, sql)| (format!("{name} #{}", i + 1), sql)));
    }
    report("migrations/mssql", &statements);
}

#[test]
fn splitting_follows_tokens_not_characters() {
    let script = "-- a comment; with a semicolon\nCREATE TABLE t (a INT, b VARCHAR(10) DEFAULT ';');\n\
                  /* block; comment */ UPDATE t SET a = CASE WHEN b = 'x;' THEN 1 ELSE 2 END;\n\
                  IF 1 = 1 BEGIN SELECT 1; SELECT 2; END;\nBEGIN TRANSACTION;\nSELECT [odd;name] FROM t";
    let statements = split_statements(script);
    assert_eq!(statements.len(), 5, "{statements:#?}");
    assert!(statements[0].starts_with("CREATE TABLE t") && statements[0].ends_with("DEFAULT ';')"));
    assert!(statements[1].starts_with("UPDATE t SET"));
    assert!(statements[2].starts_with("IF 1 = 1 BEGIN"));
    assert_eq!(statements[3], "BEGIN TRANSACTION");
    assert_eq!(statements[4], "SELECT [odd;name] FROM t");
}
