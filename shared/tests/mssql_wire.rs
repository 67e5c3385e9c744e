//! What the SQL Server backend puts on the wire, read from the wire. No SQL Server runs here,
//! so a minimal TDS server on 127.0.0.1 plays one: it answers PRELOGIN (encryption NOT_SUP,
//! so the bytes stay readable), LOGIN7 (LOGINACK + DONE), SQL batches (DONE; `SELECT 1`, the
//! pool's connection check, gets its one row) and every RPC request (DONE), and hands each
//! RPC request to the test. The client is the real one: `MssqlBackend::connect` and
//! `Backend::run`, through tiberius 0.13, exactly as the functions use them.
//!
//! The RPC request is decoded per MS-TDS 2.2.6.6: ALL_HEADERS, the procedure (id 10,
//! sp_executesql), then each parameter as name (B_VARCHAR), status flags and TYPE_INFO +
//! value. The first two parameters are the statement and its declaration list; `@P1…@Pn`
//! follow.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use shared::db::mssql::MssqlBackend;
use shared::db::{Backend, Kind, Step, Stmt, Value, mssql};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;

// ---- the fake server ----------------------------------------------------------------------

const PACKET_BATCH: u8 = 0x01;
const PACKET_RPC: u8 = 0x03;
const PACKET_REPLY: u8 = 0x04;
const PACKET_LOGIN7: u8 = 0x10;
const PACKET_PRELOGIN: u8 = 0x12;

/// TDS NULLTYPE: the TYPE_INFO byte Babelfish refuses ("Data type 0x1F is unknown").
const NULLTYPE: u8 = 0x1F;
const BITN: u8 = 0x68;
const INTN: u8 = 0x26;
const GUIDN: u8 = 0x24;
const NVARCHAR: u8 = 0xE7;
const BIGVARBINARY: u8 = 0xA5;
const DATETIME2N: u8 = 0x2A;
const NUMERICN: u8 = 0x6C;

struct FakeServer {
    port: u16,
    rpcs: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let (tx, rpcs) = mpsc::unbounded_channel();
        // Ends with the test's runtime; serves each connection the pool opens.
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(socket, tx).await {
                        eprintln!("fake TDS server: {e}");
                    }
                });
            }
        });
        FakeServer { port, rpcs }
    }

    fn connection_string(&self) -> String {
        // DANGER_PLAINTEXT: tiberius asks for no encryption at all, and the server agrees.
        format!("server=tcp:127.0.0.1,{};user=quodsi;password=not-a-secret;encrypt=DANGER_PLAINTEXT", self.port)
    }

    async fn next_rpc(&mut self) -> Rpc {
        let payload = tokio::time::timeout(Duration::from_secs(10), self.rpcs.recv())
            .await
            .expect("an RPC request within 10 s")
            .expect("the fake server is running");
        Rpc::decode(&payload)
    }
}

async fn serve(mut socket: TcpStream, rpcs: mpsc::UnboundedSender<Vec<u8>>) -> std::io::Result<()> {
    loop {
        let Some((kind, payload)) = read_message(&mut socket).await? else { return Ok(()) };
        let reply = match kind {
            PACKET_PRELOGIN => prelogin_reply(),
            PACKET_LOGIN7 => [login_ack(), done(0, 0, 0)].concat(),
            PACKET_BATCH if batch_text(&payload).trim() == "SELECT 1" => select_one(),
            PACKET_BATCH => done(0, 0, 0),
            PACKET_RPC => {
                let _ = rpcs.send(payload);
                // DONE_COUNT, one row affected: what an UPDATE of one row answers.
                done(0x10, 0, 1)
            }
            other => return Err(std::io::Error::other(format!("unexpected packet type {other:#04x}"))),
        };
        write_message(&mut socket, &reply).await?;
    }
}

/// One message: the packets up to the one with the end-of-message status bit, joined.
async fn read_message(socket: &mut TcpStream) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 8];
        if let Err(e) = socket.read_exact(&mut header).await {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof { Ok(None) } else { Err(e) };
        }
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let mut body = vec![0u8; length - 8];
        socket.read_exact(&mut body).await?;
        payload.extend_from_slice(&body);
        if header[1] & 0x01 == 0x01 {
            return Ok(Some((header[0], payload)));
        }
    }
}

async fn write_message(socket: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(payload.len() + 8).expect("replies fit one packet");
    let mut packet = vec![PACKET_REPLY, 0x01];
    packet.extend_from_slice(&length.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 1, 0]);
    packet.extend_from_slice(payload);
    socket.write_all(&packet).await
}

/// PRELOGIN reply: VERSION and ENCRYPTION = NOT_SUP (0x02).
fn prelogin_reply() -> Vec<u8> {
    let mut reply = vec![0x00, 0, 11, 0, 6, 0x01, 0, 17, 0, 1, 0xFF];
    reply.extend_from_slice(&[16, 0, 0, 0, 0, 0]);
    reply.push(0x02);
    reply
}

fn b_varchar(s: &str) -> Vec<u8> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = vec![u8::try_from(units.len()).expect("short name")];
    out.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    out
}

/// LOGINACK: interface SQL_TSQL, TDS 7.4, a program name and version.
fn login_ack() -> Vec<u8> {
    let mut body = vec![1u8];
    body.extend_from_slice(&0x7400_0004u32.to_be_bytes());
    body.extend_from_slice(&b_varchar("fake"));
    body.extend_from_slice(&[16, 0, 0, 0]);
    let mut token = vec![0xAD];
    token.extend_from_slice(&u16::try_from(body.len()).expect("short token").to_le_bytes());
    token.extend_from_slice(&body);
    token
}

fn done(status: u16, command: u16, rows: u64) -> Vec<u8> {
    let mut token = vec![0xFD];
    token.extend_from_slice(&status.to_le_bytes());
    token.extend_from_slice(&command.to_le_bytes());
    token.extend_from_slice(&rows.to_le_bytes());
    token
}

/// `SELECT 1`: one INT column, one row.
fn select_one() -> Vec<u8> {
    let mut reply = vec![0x81, 1, 0];
    reply.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x38, 0]);
    reply.push(0xD1);
    reply.extend_from_slice(&1i32.to_le_bytes());
    reply.extend_from_slice(&done(0x10, 0xC1, 1));
    reply
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).expect("UTF-16 text")
}

/// The text of an SQL batch, after its ALL_HEADERS.
fn batch_text(payload: &[u8]) -> String {
    let headers = u32::from_le_bytes(payload[..4].try_into().expect("ALL_HEADERS length")) as usize;
    utf16(&payload[headers..])
}

// ---- decoding an RPC request --------------------------------------------------------------

struct Param {
    name: String,
    type_info: Vec<u8>,
    /// `None` for a NULL.
    value: Option<Vec<u8>>,
}

impl Param {
    fn type_byte(&self) -> u8 {
        self.type_info[0]
    }

    fn text(&self) -> String {
        assert_eq!(self.type_byte(), NVARCHAR, "{} is not NVARCHAR", self.name);
        utf16(self.value.as_deref().expect("a value"))
    }
}

struct Rpc {
    proc_id: u16,
    params: Vec<Param>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        slice
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take(2).try_into().expect("two bytes"))
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("four bytes"))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("eight bytes"))
    }

    /// TYPE_INFO and the value after it (MS-TDS 2.2.5.4–2.2.5.6), for every type tiberius
    /// binds: the TYPE_INFO bytes and the value (`None` = NULL).
    fn type_info_and_value(&mut self) -> (Vec<u8>, Option<Vec<u8>>) {
        let start = self.at;
        let ty = self.u8();
        match ty {
            NULLTYPE => {}
            // length, or the scale of a DATETIME2
            BITN | INTN | GUIDN | DATETIME2N => _ = self.u8(),
            // length, precision, scale
            NUMERICN => _ = self.take(3),
            // maximum length, collation
            NVARCHAR => _ = self.take(2 + 5),
            // maximum length
            BIGVARBINARY => _ = self.take(2),
            other => panic!("type {other:#04x} is not one the backend binds"),
        }
        let type_info = self.bytes[start..self.at].to_vec();
        let value = match ty {
            NULLTYPE => None,
            NVARCHAR | BIGVARBINARY if type_info[1..3] == [0xFF, 0xFF] => self.plp_value(),
            NVARCHAR | BIGVARBINARY => self.ushort_len_value(),
            _ => self.byte_len_value(),
        };
        (type_info, value)
    }

    fn byte_len_value(&mut self) -> Option<Vec<u8>> {
        match self.u8() {
            0 => None,
            n => Some(self.take(usize::from(n)).to_vec()),
        }
    }

    fn ushort_len_value(&mut self) -> Option<Vec<u8>> {
        match self.u16() {
            0xFFFF => None,
            n => Some(self.take(usize::from(n)).to_vec()),
        }
    }

    fn plp_value(&mut self) -> Option<Vec<u8>> {
        if self.u64() == u64::MAX {
            return None;
        }
        let mut value = Vec::new();
        loop {
            let chunk = self.u32() as usize;
            if chunk == 0 {
                return Some(value);
            }
            value.extend_from_slice(self.take(chunk));
        }
    }
}

impl Rpc {
    fn decode(payload: &[u8]) -> Rpc {
        let mut r = Reader { bytes: payload, at: 0 };
        let headers = r.u32() as usize;
        r.at = headers;
        assert_eq!(r.u16(), 0xFFFF, "the procedure is sent by id");
        let proc_id = r.u16();
        r.u16(); // option flags
        let mut params = Vec::new();
        while r.at < payload.len() {
            let name_len = usize::from(r.u8());
            let name = utf16(r.take(name_len * 2));
            r.u8(); // status flags
            let (type_info, value) = r.type_info_and_value();
            params.push(Param { name, type_info, value });
        }
        Rpc { proc_id, params }
    }

    /// The statement text sent (sp_executesql's first parameter).
    fn statement(&self) -> String {
        assert_eq!(self.params[0].name, "stmt");
        self.params[0].text()
    }

    /// The declaration list (sp_executesql's second parameter), one entry per parameter.
    fn declarations(&self) -> Vec<String> {
        assert_eq!(self.params[1].name, "params");
        self.params[1].text().split(',').map(|d| d.trim().to_owned()).collect()
    }

    /// `@P1…@Pn`.
    fn bound(&self) -> &[Param] {
        &self.params[2..]
    }
}

/// Whether the text uses the placeholder `@Pn` (and not merely `@Pn0…`).
fn references(text: &str, n: usize) -> bool {
    let needle = format!("@P{n}");
    text.match_indices(&needle).any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

// ---- the steps ---------------------------------------------------------------------------

/// Every NULL kind. The match makes a new `Kind` a compile error here, so the test below
/// cannot silently leave it out.
fn all_kinds() -> BTreeSet<String> {
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
    kinds.iter().map(|k| format!("{k:?}")).collect()
}

fn ts(s: &str) -> Value {
    Value::from(DateTime::parse_from_rfc3339(s).expect("a timestamp").with_timezone(&Utc))
}

/// Statements with the parameters the store gives them when optional values are absent;
/// together they hold a NULL of every kind.
fn steps_with_nulls() -> Vec<Step> {
    let id = || Value::Uuid(Uuid::new_v4());
    let now = || ts("2026-03-04T05:06:07.123456Z");
    vec![
        // create_connection without refresh token, e-mail, display name or metadata.
        Step::new(
            Stmt::ConnInsert,
            vec![
                id(),
                id(),
                id(),
                "onedrive".into(),
                "acct-1".into(),
                Value::Null(Kind::Text),
                vec![1u8, 2].into(),
                Value::Null(Kind::Bytes),
                now(),
                "scope".into(),
                "active".into(),
                Value::Null(Kind::Text),
                Value::Null(Kind::Text),
                now(),
            ],
        ),
        // create_folder without auto-sync frequency or path.
        Step::new(
            Stmt::FolderInsert,
            vec![
                id(),
                id(),
                id(),
                "Models".into(),
                "fld-1".into(),
                Value::Null(Kind::Text),
                "models".into(),
                false.into(),
                false.into(),
                false.into(),
                Value::Null(Kind::I32),
                "read_write".into(),
                now(),
            ],
        ),
        // create_file without entity, path, hash, type, provider times, URLs or metadata.
        Step::new(
            Stmt::FileInsert,
            vec![
                id(),
                id(),
                id(),
                "model".into(),
                Value::Null(Kind::Uuid),
                "file-1".into(),
                "a.qsm".into(),
                Value::Null(Kind::Text),
                Value::I64(10),
                Value::Null(Kind::Text),
                Value::Null(Kind::Text),
                Value::Null(Kind::Timestamp),
                Value::Null(Kind::Timestamp),
                Value::Null(Kind::Timestamp),
                "synced".into(),
                Value::Null(Kind::Text),
                Value::Null(Kind::Text),
                Value::Null(Kind::Text),
                now(),
            ],
        ),
        // update_job to running, nothing else patched: each patch is (false, typed NULL).
        Step::new(
            Stmt::JobUpdate,
            vec![
                id(),
                id(),
                "pending".into(),
                now(),
                "running".into(),
                false.into(),
                Value::Null(Kind::Hundredths),
                false.into(),
                Value::Null(Kind::I32),
                false.into(),
                Value::Null(Kind::I32),
                false.into(),
                Value::Null(Kind::I64),
                false.into(),
                Value::Null(Kind::Text),
                false.into(),
                Value::Null(Kind::Text),
            ],
        ),
        // list_links without filters (a read: sent alone, outside a transaction).
        Step::new(
            Stmt::LinkList,
            vec![
                id(),
                Value::I64(0),
                Value::I64(51),
                Value::Null(Kind::Uuid),
                Value::Null(Kind::Uuid),
                Value::Null(Kind::Bool),
            ],
        ),
    ]
}

async fn connect(server: &FakeServer) -> MssqlBackend {
    MssqlBackend::connect(&server.connection_string()).await.expect("the client logs in to the fake server")
}

// ---- the tests ---------------------------------------------------------------------------

#[tokio::test]
async fn no_parameter_goes_out_as_nulltype_and_every_parameter_keeps_its_number() {
    // Arrange
    let mut server = FakeServer::start().await;
    let backend = connect(&server).await;
    let steps = steps_with_nulls();
    let kinds_sent: BTreeSet<String> = steps
        .iter()
        .flat_map(|s| &s.params)
        .filter_map(|p| match p {
            Value::Null(kind) => Some(format!("{kind:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(kinds_sent, all_kinds(), "the steps hold a NULL of every kind");

    for step in steps {
        // Act
        backend.run(vec![step.clone()]).await.unwrap_or_else(|e| panic!("{}: {e}", step.stmt));
        let rpc = server.next_rpc().await;

        // Assert
        let stmt = step.stmt;
        assert_eq!(rpc.proc_id, 10, "{stmt}: sent through sp_executesql");
        for p in &rpc.params {
            assert_ne!(p.type_byte(), NULLTYPE, "{stmt}: {} went out as NULLTYPE (0x1F)", p.name);
        }
        let text = rpc.statement();
        let bound = rpc.bound();
        assert_eq!(bound.len(), step.params.len(), "{stmt}: one parameter per value");
        let declarations = rpc.declarations();
        assert_eq!(declarations.len(), step.params.len(), "{stmt}: one declaration per value");
        for (i, (value, param)) in step.params.iter().zip(bound).enumerate() {
            let n = i + 1;
            assert_eq!(param.name, format!("@P{n}"), "{stmt}: parameters keep their numbers");
            assert!(declarations[i].starts_with(&format!("@P{n} ")), "{stmt}: declaration {}", declarations[i]);
            match value {
                // Sent typed, as a NULL of its own type, and used where it was.
                Value::Null(kind @ (Kind::Bool | Kind::I32 | Kind::I64 | Kind::Uuid)) => {
                    let expected = if *kind == Kind::Uuid {
                        GUIDN
                    } else if *kind == Kind::Bool {
                        BITN
                    } else {
                        INTN
                    };
                    assert_eq!(param.type_byte(), expected, "{stmt}: @P{n} ({kind:?})");
                    assert_eq!(param.value, None, "{stmt}: @P{n} is NULL");
                    assert!(references(&text, n), "{stmt}: @P{n} is still used");
                }
                // Written into the text as a NULL of the column's type; the slot is a typed
                // NULL that nothing reads.
                Value::Null(kind) => {
                    let literal = match kind {
                        Kind::Text => "CAST(NULL AS NVARCHAR(4000))",
                        Kind::Bytes => "CAST(NULL AS VARBINARY(MAX))",
                        Kind::Timestamp => "CAST(NULL AS DATETIME2)",
                        _ => "CAST(NULL AS DECIMAL(5, 2))",
                    };
                    assert_eq!(param.value, None, "{stmt}: @P{n} is NULL");
                    assert!(!references(&text, n), "{stmt}: @P{n} ({kind:?}) is still read from the parameter");
                    assert!(text.contains(literal), "{stmt}: no {literal} in {text}");
                }
                _ => {
                    assert!(param.value.is_some(), "{stmt}: @P{n} carries its value");
                    assert!(references(&text, n), "{stmt}: @P{n} is used");
                }
            }
        }
        assert_eq!(text, mssql::sent_sql(stmt, &step.params), "{stmt}: the text tsql_parse checks");
    }
}

#[tokio::test]
async fn timestamps_go_out_in_whole_microseconds() {
    // Arrange: a time with nanoseconds, as Utc::now() has them.
    let mut server = FakeServer::start().await;
    let backend = connect(&server).await;
    let at = ts("2026-03-04T05:06:07.123456789Z");
    let step = Step::new(Stmt::LinkExpire, vec![Value::Uuid(Uuid::new_v4()), at]);

    // Act
    backend.run(vec![step]).await.expect("LinkExpire");
    let rpc = server.next_rpc().await;

    // Assert: DATETIME2 of scale 7 = 5 bytes of 100 ns increments since midnight + 3 bytes of
    // days since 0001-01-01, little-endian.
    let param = &rpc.bound()[1];
    assert_eq!(param.type_info, [DATETIME2N, 7]);
    let bytes = param.value.as_deref().expect("a value");
    assert_eq!(bytes.len(), 8);
    let mut increments = [0u8; 8];
    increments[..5].copy_from_slice(&bytes[..5]);
    let increments = u64::from_le_bytes(increments);
    let days = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], 0]);
    assert_eq!(increments % 10, 0, "the 100 ns digit is 0: whole microseconds");
    let sent = NaiveDate::from_ymd_opt(1, 1, 1).expect("day one").and_hms_opt(0, 0, 0).expect("midnight")
        + chrono::Duration::days(i64::from(days))
        + chrono::Duration::nanoseconds(i64::try_from(increments * 100).expect("within a day"));
    assert_eq!(sent.and_utc().to_rfc3339(), "2026-03-04T05:06:07.123456+00:00");
}
