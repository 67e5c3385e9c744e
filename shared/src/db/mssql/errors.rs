//! SQL Server errors in the store's vocabulary.
//!
//! Constraint violations are recognised by error number and named from the message text,
//! which is the only place SQL Server reports the name. The name is looked up among the
//! constraint and index names the embedded migrations declare, which makes the parse
//! independent of the message language (only the quoted identifiers are used) and undoes
//! Babelfish's renaming of indexes (`<index><table><md5>`, cut to 63 characters).

use std::sync::LazyLock;

use tiberius::error::Error as TdsError;

use crate::db::error::DbError;

/// Deadlock victim: the transaction was rolled back by the server and may simply be rerun.
pub(crate) const DEADLOCK: u32 = 1205;

/// Errors the Azure SQL documentation lists as transient (service busy, failover in
/// progress, resource limits, connection resets) plus the network errors SQL Server
/// reports as server messages. They mean "unavailable", not "your request is wrong".
const TRANSIENT: &[u32] = &[
    20, 64, 121, 233, 926, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 18401, 40143, 40197, 40501, 40540, 40613,
    42108, 42109, 49918, 49919, 49920,
];

/// What an error means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    Conflict(String),
    Invalid(String),
    Deadlock,
    Transient,
    Other,
}

/// Classifies a server error by number and message.
pub(crate) fn classify(code: u32, message: &str, known: &[String]) -> Class {
    match code {
        // 2627: PRIMARY KEY / UNIQUE constraint; 2601: unique index.
        2601 | 2627 => Class::Conflict(constraint_in(message, &["unique index", "constraint"], known)),
        // FOREIGN KEY, REFERENCE and CHECK constraints.
        547 => Class::Invalid(constraint_in(message, &["constraint"], known)),
        515 => Class::Invalid(not_null_in(message)),
        // 2628 (SQL Server 2019+ with the column named) and 8152 (the older, unnamed form).
        2628 | 8152 => Class::Invalid("truncation".to_owned()),
        DEADLOCK => Class::Deadlock,
        c if TRANSIENT.contains(&c) => Class::Transient,
        _ => Class::Other,
    }
}

/// Maps a driver error to the store's vocabulary.
pub(crate) fn to_db_error(e: TdsError) -> DbError {
    match &e {
        TdsError::Server(t) => match classify(t.code(), t.message(), constraint_names()) {
            Class::Conflict(constraint) => DbError::Conflict { constraint },
            Class::Invalid(constraint) => DbError::Invalid { constraint },
            // A deadlock that reaches this point has already been retried.
            Class::Deadlock | Class::Transient => DbError::unavailable(e),
            // Severity 20 and above closes the connection: the server, not the request, failed.
            Class::Other if t.class() >= 20 => DbError::unavailable(e),
            Class::Other => DbError::backend(e),
        },
        TdsError::Io { .. } | TdsError::Tls(_) | TdsError::Routing { .. } | TdsError::Protocol(_) => {
            DbError::unavailable(e)
        }
        _ => DbError::backend(e),
    }
}

pub(crate) fn is_deadlock(e: &TdsError) -> bool {
    matches!(e, TdsError::Server(t) if t.code() == DEADLOCK)
}

/// Whether the connection an error happened on can no longer be trusted: anything that is
/// not a server message (I/O, TLS, a desynchronised or poisoned stream), and server errors
/// of severity 20 and above, after which SQL Server closes the session.
pub(crate) fn breaks_connection(e: &TdsError) -> bool {
    match e {
        TdsError::Server(t) => t.class() >= 20,
        _ => true,
    }
}

/// Constraint and index names declared by the embedded migrations (`ix_`, `fk_`, `ck_`,
/// `pk_`, `uq_`), read once.
pub(crate) fn constraint_names() -> &'static [String] {
    static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let runner = super::embedded::migrations::runner();
        let mut names: Vec<String> = runner
            .get_migrations()
            .iter()
            .filter_map(|m| m.sql())
            .flat_map(identifiers)
            .filter(|w| w.len() > 3 && !w.ends_with('_'))
            .filter(|w| ["ix_", "fk_", "ck_", "pk_", "uq_"].iter().any(|p| w.starts_with(p)))
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        names
    });
    &NAMES
}

fn identifiers(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

/// The quoted parts of a message, in order ('single' and "double" quotes both occur: SQL
/// Server quotes constraint names of 547 with double quotes, everything else with single).
fn quoted(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find(['\'', '"']) {
        let quote = rest[start..].chars().next().unwrap_or('\'');
        let after = &rest[start + 1..];
        match after.find(quote) {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// The constraint a violation message names. Prefers a quoted identifier that is one of
/// ours; falls back to the quoted text right after one of `keywords` (English messages),
/// then to "unknown" so the error stays typed even when the name cannot be read.
fn constraint_in(message: &str, keywords: &[&str], known: &[String]) -> String {
    if let Some(name) = quoted(message).into_iter().find_map(|q| resolve(q, known)) {
        return name;
    }
    let lower = message.to_ascii_lowercase();
    for keyword in keywords {
        if let Some(at) = lower.find(keyword)
            && let Some(name) = quoted(&message[at + keyword.len()..]).into_iter().next()
        {
            return name.to_owned();
        }
    }
    "unknown".to_owned()
}

/// A quoted identifier from a message as one of our names, if it is one.
fn resolve(found: &str, known: &[String]) -> Option<String> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(found)) {
        return Some(k.clone());
    }
    // Babelfish appends the table name and an MD5 (32 hex digits) to index names, cutting
    // the result to PostgreSQL's 63 characters.
    let found = found.to_ascii_lowercase();
    let split = found.len().checked_sub(32)?;
    let (stem, hash) = found.split_at(split);
    if stem.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if let Some(k) = known.iter().filter(|k| stem.starts_with(k.as_str())).max_by_key(|k| k.len()) {
        return Some(k.clone());
    }
    // A long index name itself was cut: the known name sharing the longest prefix with the
    // stem, if that prefix is substantial and no other name shares it.
    let common = |k: &String| k.bytes().zip(stem.bytes()).take_while(|(a, b)| a == b).count();
    let best = known.iter().map(common).max()?;
    let mut best_names = known.iter().filter(|k| common(k) == best);
    match (best >= 12, best_names.next(), best_names.next()) {
        (true, Some(k), None) => Some(k.clone()),
        _ => None,
    }
}

/// "not_null:<table>.<column>", the form the SQLite backend reports, from either SQL
/// Server's "Cannot insert the value NULL into column 'c', table 'db.dbo.t'" or
/// Babelfish's `null value in column "c" of relation "t"`.
fn not_null_in(message: &str) -> String {
    let parts = quoted(message);
    match parts.as_slice() {
        [column, table, ..] => {
            let table = table.rsplit('.').next().unwrap_or(table);
            format!("not_null:{table}.{column}")
        }
        [column] => format!("not_null:{column}"),
        [] => "not_null".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> &'static [String] {
        constraint_names()
    }

    #[test]
    fn known_names_come_from_the_migrations() {
        let names = known();
        for n in [
            "ix_cloud_connections_id",
            "ix_cloud_folders_default_export",
            "ix_cloud_sync_jobs_folder_live",
            "fk_cloud_folders_connection",
            "ck_cloud_sync_jobs_progress_range",
            "ck_cloud_connections_tenant_consistency",
            "pk_tenants",
        ] {
            assert!(names.iter().any(|k| k == n), "{n} missing from {names:?}");
        }
    }

    #[test]
    fn unique_index_violation_names_the_index() {
        let msg = "Cannot insert duplicate key row in object 'dbo.cloud_folders' with unique index \
                   'ix_cloud_folders_default_export'. The duplicate key value is \
                   (3f2b8a1c-0000-4000-8000-000000000001, 9a1c0000-0000-4000-8000-000000000002).";
        assert_eq!(classify(2601, msg, known()), Class::Conflict("ix_cloud_folders_default_export".into()));
    }

    #[test]
    fn primary_and_unique_key_violations_name_the_constraint() {
        let pk = "Violation of PRIMARY KEY constraint 'ix_cloud_connections_id'. Cannot insert duplicate \
                  key in object 'dbo.cloud_connections'. The duplicate key value is \
                  (1b4e28ba-2fa1-11d2-883f-0016d3cca427).";
        assert_eq!(classify(2627, pk, known()), Class::Conflict("ix_cloud_connections_id".into()));
        let uq = "Violation of UNIQUE KEY constraint 'uq_somebody_elses'. Cannot insert duplicate key in \
                  object 'dbo.other'. The duplicate key value is (O'Brien).";
        assert_eq!(classify(2627, uq, known()), Class::Conflict("uq_somebody_elses".into()));
    }

    #[test]
    fn foreign_key_and_check_violations_name_the_constraint() {
        let fk = "The INSERT statement conflicted with the FOREIGN KEY constraint \
                  \"fk_cloud_folders_connection\". The conflict occurred in database \"quodsi\", table \
                  \"dbo.cloud_connections\", column 'id'.";
        assert_eq!(classify(547, fk, known()), Class::Invalid("fk_cloud_folders_connection".into()));
        let composite = "The INSERT statement conflicted with the FOREIGN KEY constraint \
                         \"ck_cloud_folders_tenant_consistency\". The conflict occurred in database \
                         \"quodsi_test_0a1b\", table \"dbo.cloud_connections\".";
        assert_eq!(classify(547, composite, known()), Class::Invalid("ck_cloud_folders_tenant_consistency".into()));
        let check = "The UPDATE statement conflicted with the CHECK constraint \
                     \"ck_cloud_sync_jobs_progress_range\". The conflict occurred in database \"quodsi\", \
                     table \"dbo.cloud_sync_jobs\", column 'progress_percentage'.";
        assert_eq!(classify(547, check, known()), Class::Invalid("ck_cloud_sync_jobs_progress_range".into()));
        let foreign = "The DELETE statement conflicted with the REFERENCE constraint \"FK_Orders_Users\". \
                       The conflict occurred in database \"crm\", table \"dbo.Orders\", column 'user_id'.";
        assert_eq!(classify(547, foreign, known()), Class::Invalid("FK_Orders_Users".into()));
    }

    #[test]
    fn not_null_violations_name_table_and_column_like_sqlite() {
        let msg = "Cannot insert the value NULL into column 'provider_type', table \
                   'quodsi.dbo.cloud_connections'; column does not allow nulls. INSERT fails.";
        assert_eq!(classify(515, msg, known()), Class::Invalid("not_null:cloud_connections.provider_type".into()));
        let update = "Cannot insert the value NULL into column 'status', table 'quodsi.dbo.cloud_sync_jobs'; \
                      column does not allow nulls. UPDATE fails.";
        assert_eq!(classify(515, update, known()), Class::Invalid("not_null:cloud_sync_jobs.status".into()));
    }

    #[test]
    fn truncation_is_invalid() {
        let new = "String or binary data would be truncated in table 'quodsi.dbo.cloud_folders', column \
                   'folder_name'. Truncated value: 'aaaaaaaa'.";
        assert_eq!(classify(2628, new, known()), Class::Invalid("truncation".into()));
        assert_eq!(
            classify(8152, "String or binary data would be truncated.", known()),
            Class::Invalid("truncation".into())
        );
    }

    #[test]
    fn deadlocks_and_service_errors_are_told_apart() {
        let msg = "Transaction (Process ID 52) was deadlocked on lock resources with another process and \
                   has been chosen as the deadlock victim. Rerun the transaction.";
        assert_eq!(classify(1205, msg, known()), Class::Deadlock);
        let busy = "Database 'quodsi' on server 'qsrv' is not currently available. Please retry the \
                    connection later.";
        assert_eq!(classify(40613, busy, known()), Class::Transient);
        assert_eq!(classify(208, "Invalid object name 'dbo.nope'.", known()), Class::Other);
    }

    #[test]
    fn babelfish_messages_resolve_to_our_names() {
        // Babelfish reports PostgreSQL's text under SQL Server's number, with the renamed index.
        let unique = "duplicate key value violates unique constraint \
                      \"ix_cloud_sync_jobs_folder_livecloud_1f0e4c2b9a8d7e6f5a4b3c2d1e0f9a8b\"";
        assert_eq!(classify(2627, unique, known()), Class::Conflict("ix_cloud_sync_jobs_folder_live".into()));
        let cut = "duplicate key value violates unique constraint \
                   \"ix_cloud_connections_tenant_use0123456789abcdef0123456789abcdef\"";
        assert_eq!(classify(2627, cut, known()), Class::Conflict("ix_cloud_connections_tenant_user_provider".into()));
        let fk = "insert or update on table \"cloud_folders\" violates foreign key constraint \
                  \"fk_cloud_folders_connection\"";
        assert_eq!(classify(547, fk, known()), Class::Invalid("fk_cloud_folders_connection".into()));
        let null = "null value in column \"provider_type\" of relation \"cloud_connections\" violates \
                    not-null constraint";
        assert_eq!(classify(515, null, known()), Class::Invalid("not_null:cloud_connections.provider_type".into()));
    }

    #[test]
    fn an_unreadable_name_still_gives_a_typed_error() {
        assert_eq!(classify(2627, "no quotes at all", known()), Class::Conflict("unknown".into()));
        assert_eq!(classify(515, "no quotes", known()), Class::Invalid("not_null".into()));
    }
}
