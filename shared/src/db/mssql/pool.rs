//! Connections to SQL Server: connection-string parsing, TLS and Azure redirects, session
//! options, and the bb8 manager that validates a connection before handing it out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiberius::error::Error as TdsError;
use tiberius::{Client, Config};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::db::error::DbError;

pub(crate) type TdsClient = Client<Compat<TcpStream>>;

/// Bound on the TCP connect itself; tiberius bounds the TLS handshake and login after it
/// (15 s by default).
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the `SELECT 1` that validates a pooled connection: a socket that went stale
/// while the Lambda sandbox was frozen should fail fast, not hold the request.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Azure SQL redirects a login at most once (gateway → database node); a few more hops
/// allow for a failover in between without ever looping.
const MAX_REDIRECTS: usize = 3;

/// Options SQL Server requires for filtered indexes and indexed computed columns (a session
/// with any of them different cannot use or maintain those indexes: INSERT/UPDATE fails
/// with error 1934), plus XACT_ABORT so any error inside a transaction rolls all of it back
/// instead of leaving a half-applied transaction open.
pub(crate) const SESSION_SETTINGS: &str = "SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; \
     SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; \
     SET NUMERIC_ROUNDABORT OFF; SET XACT_ABORT ON;";

/// Parses an ADO.NET (`server=tcp:host,1433;…`) or JDBC (`jdbc:sqlserver://host:1433;…`)
/// connection string.
pub(crate) fn parse_config(conn_str: &str) -> Result<Config, DbError> {
    const JDBC: &str = "jdbc:sqlserver://";
    let s = conn_str.trim();
    let parsed = match s.get(..JDBC.len()) {
        // The JDBC parser only knows the lowercase scheme.
        Some(scheme) if scheme.eq_ignore_ascii_case(JDBC) => {
            Config::from_jdbc_string(&format!("{JDBC}{}", &s[JDBC.len()..]))
        }
        _ => Config::from_ado_string(s),
    };
    // The driver's message is not passed on: connection strings carry the password, and a
    // parse error is no place to risk echoing it.
    let mut config = parsed.map_err(|_| {
        DbError::validation(
            "database_url",
            "is not a valid ADO.NET or JDBC SQL Server connection string (quote values containing \
             ';' or '=' with {braces})",
        )
    })?;
    accept_wildcard_certificate_name(s, &mut config)?;
    Ok(config)
}

/// Azure's portal connection strings say `hostNameInCertificate=*.database.windows.net`.
/// rustls verifies against one concrete name, and a wildcard is not one; the gateway's
/// certificate covers the server's own name, so a wildcard that matches the host is
/// replaced by the host. A wildcard that does not match it is refused rather than ignored.
fn accept_wildcard_certificate_name(conn_str: &str, config: &mut Config) -> Result<(), DbError> {
    let wildcard = conn_str
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| {
            let k = k.trim().to_ascii_lowercase();
            k == "hostnameincertificate" || k == "hostname in certificate"
        })
        .map(|(_, v)| v.trim().trim_matches(['{', '}', '\'', '"']).to_ascii_lowercase())
        .filter(|v| v.starts_with("*."));
    let Some(wildcard) = wildcard else { return Ok(()) };
    let addr = config.get_addr();
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).to_ascii_lowercase();
    let suffix = &wildcard[1..];
    match host.strip_suffix(suffix) {
        Some(label) if !label.is_empty() && !label.contains('.') => {
            config.hostname_in_certificate(&host);
            Ok(())
        }
        _ => Err(DbError::validation(
            "database_url",
            format!("hostNameInCertificate {wildcard} does not match the server {host}; name the host instead"),
        )),
    }
}

/// Opens a client: TCP with Nagle off (every request is a small packet waiting for its
/// answer), TLS per the config, and a reconnect when Azure SQL answers the login with a
/// redirect to the node that hosts the database ("Redirect" connection policy).
pub(crate) async fn open_client(config: &Config) -> Result<TdsClient, TdsError> {
    let mut config = config.clone();
    let mut redirects = 0;
    loop {
        let addr = config.get_addr();
        let tcp = tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(&addr)).await.map_err(|_| {
            TdsError::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: format!("TCP connect to {addr} took longer than {TCP_CONNECT_TIMEOUT:?}"),
            }
        })??;
        tcp.set_nodelay(true)?;
        match Client::connect(config.clone(), tcp.compat_write()).await {
            Ok(client) => return Ok(client),
            Err(TdsError::Routing { host, port }) if redirects < MAX_REDIRECTS => {
                redirects += 1;
                // The node's certificate names the node (…worker.database.windows.net), not
                // the gateway, so verification follows the redirect. Lowercase: Azure may
                // send capitals, certificate names are lowercase.
                let host = host.to_ascii_lowercase();
                tracing::debug!(%host, port, "sql server redirected the login");
                config.host(&host);
                config.port(port);
                config.hostname_in_certificate(&host);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A pooled connection. `broken` is set while a request is in flight and cleared only when
/// it completed cleanly, so a connection whose request was cancelled (a timeout around the
/// future, a dropped Lambda invocation) is discarded instead of being reused mid-response
/// or inside an open transaction.
pub(crate) struct Conn {
    pub(crate) client: TdsClient,
    pub(crate) broken: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("broken", &self.broken).finish_non_exhaustive()
    }
}

/// Drains a batch's whole response so errors anywhere in it surface.
pub(crate) async fn batch(client: &mut TdsClient, sql: &str) -> Result<(), TdsError> {
    client.simple_query(sql).await?.into_results().await?;
    Ok(())
}

/// A new connection with the session options set.
pub(crate) async fn open_connection(config: &Config) -> Result<Conn, TdsError> {
    let mut client = open_client(config).await?;
    batch(&mut client, SESSION_SETTINGS).await?;
    Ok(Conn { client, broken: false })
}

pub(crate) struct Manager {
    config: Config,
}

impl Manager {
    pub(crate) fn new(config: Config) -> Manager {
        Manager { config }
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = TdsError;

    async fn connect(&self) -> Result<Conn, TdsError> {
        open_connection(&self.config).await
    }

    /// Runs on every checkout (`test_on_check_out`): a Lambda sandbox can be frozen for
    /// minutes, and the gateway or a NAT closes idle sockets meanwhile.
    async fn is_valid(&self, conn: &mut Conn) -> Result<(), TdsError> {
        if conn.broken {
            return Err(TdsError::Protocol("connection was marked broken".into()));
        }
        conn.broken = true;
        let check = async {
            let rows = conn.client.simple_query("SELECT 1").await?.into_first_result().await?;
            match rows.len() {
                1 => Ok(()),
                n => Err(TdsError::Protocol(format!("SELECT 1 returned {n} rows").into())),
            }
        };
        let outcome = tokio::time::timeout(VALIDATION_TIMEOUT, check).await.unwrap_or_else(|_| {
            Err(TdsError::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: format!("connection check took longer than {VALIDATION_TIMEOUT:?}"),
            })
        });
        conn.broken = outcome.is_err();
        outcome
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

/// bb8 reports connect failures only to its error sink (a checkout that cannot get a
/// connection just times out); this one logs them and keeps the last so the timeout can
/// say why.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl bb8::ErrorSink<TdsError> for LastError {
    fn sink(&self, error: TdsError) {
        tracing::warn!(%error, "sql server connection failed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<TdsError>> {
        Box::new(self.clone())
    }
}

/// A checkout that timed out, with the last connection error seen, if any.
#[derive(Debug, thiserror::Error)]
#[error("no SQL Server connection within {timeout:?}{}", last.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
pub(crate) struct CheckoutTimeout {
    pub(crate) timeout: Duration,
    pub(crate) last: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ado_and_jdbc_strings_are_accepted() {
        let ado =
            parse_config("server=tcp:db.example.com,1433;database=quodsi;user=app;password=p@ss;encrypt=true").unwrap();
        assert_eq!(ado.get_addr(), "db.example.com:1433");
        let jdbc =
            parse_config("jdbc:sqlserver://db.example.com:1444;databaseName=quodsi;user=app;password={p;w}").unwrap();
        assert_eq!(jdbc.get_addr(), "db.example.com:1444");
        let upper = parse_config("JDBC:SQLSERVER://db.example.com:1433;user=app").unwrap();
        assert_eq!(upper.get_addr(), "db.example.com:1433");
    }

    #[test]
    fn a_bad_string_is_a_validation_error_that_does_not_echo_it() {
        let err = parse_config("server=tcp:db,1433;password=s3cret;encrypt=maybe").unwrap_err();
        assert!(matches!(err, DbError::Validation { field: "database_url", .. }));
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn azure_portal_wildcard_certificate_names_are_accepted_for_their_host() {
        let portal = "jdbc:sqlserver://quodsi.database.windows.net:1433;database=q;user=a@quodsi;password={x};\
                      encrypt=true;trustServerCertificate=false;hostNameInCertificate=*.database.windows.net;\
                      loginTimeout=30;";
        assert!(parse_config(portal).is_ok());
        let ado = "Server=tcp:quodsi.database.windows.net,1433;Initial Catalog=q;User ID=a;Password=x;\
                   Encrypt=True;HostNameInCertificate=*.database.windows.net";
        assert!(parse_config(ado).is_ok());
        let mismatch = "Server=tcp:db.internal.example,1433;User ID=a;Password=x;\
                        HostNameInCertificate=*.database.windows.net";
        assert!(matches!(parse_config(mismatch), Err(DbError::Validation { .. })));
    }

    #[test]
    fn session_settings_cover_what_filtered_indexes_need() {
        for option in [
            "ANSI_NULLS ON",
            "ANSI_PADDING ON",
            "ANSI_WARNINGS ON",
            "ARITHABORT ON",
            "CONCAT_NULL_YIELDS_NULL ON",
            "QUOTED_IDENTIFIER ON",
            "NUMERIC_ROUNDABORT OFF",
            "XACT_ABORT ON",
        ] {
            assert!(SESSION_SETTINGS.contains(&format!("SET {option};")), "{option}");
        }
    }
}
