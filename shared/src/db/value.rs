//! Backend-neutral parameters and result cells. Operations build their parameters once as
//! [`Value`]s; each backend binds them with its driver and hands rows back as [`Row`]s of
//! [`Cell`]s, which the model decoders below read in SELECT-list order.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde_json::Value as Json;
use uuid::Uuid;

use super::enums::*;
use super::error::DbError;
use super::model::*;

/// The SQL type of a NULL parameter (SQL Server wants typed NULLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    I32,
    I64,
    Text,
    Bytes,
    Uuid,
    Timestamp,
    Hundredths,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Bool(bool),
    I32(i32),
    I64(i64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
    /// UTC, stored without zone (DATETIME2 / ISO text), in whole microseconds: built by
    /// `From<DateTime<Utc>>`, which cuts it (see [`micros`]).
    Timestamp(NaiveDateTime),
    /// DECIMAL(5,2) in hundredths.
    Hundredths(i64),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Uuid(v)
    }
}
impl From<TenantId> for Value {
    fn from(v: TenantId) -> Self {
        Value::Uuid(v.0)
    }
}
macro_rules! id_values {
    ($($t:ty),+) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Uuid(v.0) }
        }
        impl Typed for $t {
            const KIND: Kind = Kind::Uuid;
        }
    )+};
}
id_values!(ConnectionId, FolderId, JobId, FileId, LinkId, SyncErrorId);

impl From<UserId> for Value {
    fn from(v: UserId) -> Self {
        Value::Uuid(v.0)
    }
}

/// A timestamp at the precision both engines keep: microseconds. SQLite's text form has six
/// fractional digits, while SQL Server's DATETIME2(7) keeps 100 ns (and tiberius sends 100 ns
/// increments), so a value with nanoseconds would read back differently from each engine.
/// This is the one place timestamps are cut: every timestamp parameter is built through
/// `Value::from(DateTime<Utc>)` below, and the store's clock (`Store::now`) uses it too so
/// that the "now" it hands out equals what it writes.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Timestamp(micros(v).naive_utc())
    }
}
impl From<Percent> for Value {
    fn from(v: Percent) -> Self {
        Value::Hundredths(i64::from(v.hundredths()))
    }
}
impl From<&Json> for Value {
    fn from(v: &Json) -> Self {
        Value::Text(v.to_string())
    }
}

macro_rules! enum_values {
    ($($t:ty),+) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Text(v.as_str().to_owned()) }
        }
    )+};
}
enum_values!(
    ProviderType,
    ConnectionStatus,
    FolderType,
    FolderPermissions,
    JobType,
    JobStatus,
    QuodsiFileType,
    SyncStatus,
    ResourceType,
    ShareType,
    ErrorType,
    CursorKind,
    SubscriptionKind
);

/// A value of a type with a fixed NULL kind.
pub trait Typed {
    const KIND: Kind;
}
impl Typed for bool {
    const KIND: Kind = Kind::Bool;
}
impl Typed for i32 {
    const KIND: Kind = Kind::I32;
}
impl Typed for i64 {
    const KIND: Kind = Kind::I64;
}
impl Typed for String {
    const KIND: Kind = Kind::Text;
}
impl Typed for &str {
    const KIND: Kind = Kind::Text;
}
impl Typed for Vec<u8> {
    const KIND: Kind = Kind::Bytes;
}
impl Typed for Uuid {
    const KIND: Kind = Kind::Uuid;
}
impl Typed for UserId {
    const KIND: Kind = Kind::Uuid;
}
impl Typed for DateTime<Utc> {
    const KIND: Kind = Kind::Timestamp;
}
impl Typed for Percent {
    const KIND: Kind = Kind::Hundredths;
}
impl Typed for &Json {
    const KIND: Kind = Kind::Text;
}
macro_rules! enum_typed {
    ($($t:ty),+) => {$( impl Typed for $t { const KIND: Kind = Kind::Text; } )+};
}
enum_typed!(
    ProviderType,
    ConnectionStatus,
    FolderType,
    FolderPermissions,
    JobType,
    JobStatus,
    QuodsiFileType,
    SyncStatus,
    ErrorType
);

/// An optional value as a parameter: `None` is a typed NULL.
pub fn opt<T: Into<Value> + Typed>(v: Option<T>) -> Value {
    v.map_or(Value::Null(T::KIND), Into::into)
}

/// The two parameters of a patchable column: "change it?" and the new value.
pub fn patch<T: Into<Value> + Typed>(v: Option<Option<T>>) -> [Value; 2] {
    match v {
        None => [Value::Bool(false), Value::Null(T::KIND)],
        Some(inner) => [Value::Bool(true), opt(inner)],
    }
}

/// A patchable column that is never set to NULL.
pub fn patch_some<T: Into<Value> + Typed>(v: Option<T>) -> [Value; 2] {
    patch(v.map(Some))
}

/// A result cell as a driver produced it; decoders convert leniently between the shapes
/// SQLite (text, integers, reals) and SQL Server (typed values) use for the same column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
    Timestamp(NaiveDateTime),
    /// A DECIMAL as an unscaled integer and its scale.
    Decimal(i128, u8),
}

/// One result row, read left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    cells: Vec<Cell>,
    col: usize,
}

/// The text form SQLite stores timestamps in: fixed width, so text order is time order.
pub const SQLITE_TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

fn corrupt(col: usize, what: &str, cell: &Cell) -> DbError {
    DbError::Corrupt(format!("column {col}: expected {what}, found {cell:?}"))
}

impl Row {
    pub fn new(cells: Vec<Cell>) -> Row {
        Row { cells, col: 0 }
    }

    fn next_cell(&mut self) -> Result<Cell, DbError> {
        self.col += 1;
        self.cells
            .get_mut(self.col - 1)
            .map(|c| std::mem::replace(c, Cell::Null))
            .ok_or_else(|| DbError::Corrupt(format!("row has fewer than {} columns", self.col)))
    }

    fn nullable<T>(&mut self, f: impl FnOnce(usize, Cell) -> Result<T, DbError>) -> Result<Option<T>, DbError> {
        match self.next_cell()? {
            Cell::Null => Ok(None),
            c => f(self.col, c).map(Some),
        }
    }

    fn required<T>(&mut self, f: impl FnOnce(usize, Cell) -> Result<T, DbError>) -> Result<T, DbError> {
        match self.next_cell()? {
            Cell::Null => Err(DbError::Corrupt(format!("column {} is NULL", self.col))),
            c => f(self.col, c),
        }
    }

    pub fn uuid(&mut self) -> Result<Uuid, DbError> {
        self.required(cell_uuid)
    }
    pub fn opt_uuid(&mut self) -> Result<Option<Uuid>, DbError> {
        self.nullable(cell_uuid)
    }
    pub fn i64(&mut self) -> Result<i64, DbError> {
        self.required(cell_i64)
    }
    pub fn opt_i64(&mut self) -> Result<Option<i64>, DbError> {
        self.nullable(cell_i64)
    }
    pub fn i32(&mut self) -> Result<i32, DbError> {
        self.required(cell_i32)
    }
    pub fn opt_i32(&mut self) -> Result<Option<i32>, DbError> {
        self.nullable(cell_i32)
    }
    pub fn bool(&mut self) -> Result<bool, DbError> {
        self.required(|c, v| cell_i64(c, v).map(|i| i != 0))
    }
    pub fn text(&mut self) -> Result<String, DbError> {
        self.required(cell_text)
    }
    pub fn opt_text(&mut self) -> Result<Option<String>, DbError> {
        self.nullable(cell_text)
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>, DbError> {
        self.required(cell_bytes)
    }
    pub fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, DbError> {
        self.nullable(cell_bytes)
    }
    pub fn ts(&mut self) -> Result<DateTime<Utc>, DbError> {
        self.required(cell_ts)
    }
    pub fn opt_ts(&mut self) -> Result<Option<DateTime<Utc>>, DbError> {
        self.nullable(cell_ts)
    }
    pub fn parsed<T: std::str::FromStr>(&mut self) -> Result<T, DbError> {
        let col = self.col + 1;
        let s = self.text()?;
        s.parse().map_err(|_| DbError::Corrupt(format!("column {col}: unexpected value '{s}'")))
    }
    /// A JSON column; text that is not JSON (written by something else) is kept as a string
    /// rather than failing the whole read.
    pub fn opt_json(&mut self) -> Result<Option<Json>, DbError> {
        Ok(self.opt_text()?.map(|s| serde_json::from_str(&s).unwrap_or(Json::String(s))))
    }
    pub fn percent(&mut self) -> Result<Percent, DbError> {
        self.required(|col, c| {
            let h = match &c {
                Cell::Decimal(v, scale) => Some(rescale(*v, *scale)),
                Cell::Real(r) => Some((r * 100.0).round() as i128),
                Cell::Int(i) => Some(i128::from(*i) * 100),
                _ => None,
            };
            h.and_then(|h| u16::try_from(h).ok())
                .and_then(Percent::from_hundredths)
                .ok_or_else(|| corrupt(col, "a percentage", &c))
        })
    }
}

fn rescale(v: i128, scale: u8) -> i128 {
    match scale {
        2 => v,
        s if s < 2 => v * 10i128.pow(u32::from(2 - s)),
        s => v / 10i128.pow(u32::from(s - 2)),
    }
}

fn cell_uuid(col: usize, c: Cell) -> Result<Uuid, DbError> {
    match c {
        Cell::Uuid(u) => Ok(u),
        Cell::Text(ref s) => Uuid::parse_str(s).map_err(|_| corrupt(col, "a uuid", &c)),
        Cell::Bytes(ref b) => Uuid::from_slice(b).map_err(|_| corrupt(col, "a uuid", &c)),
        c => Err(corrupt(col, "a uuid", &c)),
    }
}

fn cell_i64(col: usize, c: Cell) -> Result<i64, DbError> {
    match c {
        Cell::Int(i) => Ok(i),
        c => Err(corrupt(col, "an integer", &c)),
    }
}

fn cell_i32(col: usize, c: Cell) -> Result<i32, DbError> {
    let i = cell_i64(col, c)?;
    i32::try_from(i).map_err(|_| corrupt(col, "a 32-bit integer", &Cell::Int(i)))
}

fn cell_text(col: usize, c: Cell) -> Result<String, DbError> {
    match c {
        Cell::Text(s) => Ok(s),
        c => Err(corrupt(col, "text", &c)),
    }
}

fn cell_bytes(col: usize, c: Cell) -> Result<Vec<u8>, DbError> {
    match c {
        Cell::Bytes(b) => Ok(b),
        c => Err(corrupt(col, "bytes", &c)),
    }
}

fn cell_ts(col: usize, c: Cell) -> Result<DateTime<Utc>, DbError> {
    match c {
        Cell::Timestamp(t) => Ok(t.and_utc()),
        Cell::Text(ref s) => NaiveDateTime::parse_from_str(s, SQLITE_TIMESTAMP_FORMAT)
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
            .map(|t| t.and_utc())
            .map_err(|_| corrupt(col, "a timestamp", &c)),
        c => Err(corrupt(col, "a timestamp", &c)),
    }
}

/// Decodes a model from a row whose columns follow that model's column list in
/// [`super::columns`].
pub trait FromRow: Sized {
    fn from_row(r: &mut Row) -> Result<Self, DbError>;
}

impl<I: From<Uuid>> FromRow for Base<I> {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(Base {
            id: r.uuid()?.into(),
            index_id: r.i64()?,
            tenant_id: TenantId(r.uuid()?),
            created_at: r.ts()?,
            updated_at: r.ts()?,
            is_deleted: r.bool()?,
        })
    }
}

impl FromRow for Connection {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(Connection {
            base: Base::from_row(r)?,
            user_id: UserId(r.uuid()?),
            provider_type: r.parsed()?,
            provider_user_id: r.text()?,
            provider_user_email: r.opt_text()?,
            encrypted_access_token: r.bytes()?,
            encrypted_refresh_token: r.opt_bytes()?,
            token_expiry: r.ts()?,
            scope: r.text()?,
            last_used_at: r.opt_ts()?,
            last_sync_at: r.opt_ts()?,
            status: r.parsed()?,
            display_name: r.opt_text()?,
            connection_metadata: r.opt_json()?,
        })
    }
}

impl FromRow for Folder {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(Folder {
            base: Base::from_row(r)?,
            connection_id: r.uuid()?.into(),
            folder_name: r.text()?,
            provider_folder_id: r.text()?,
            folder_path: r.opt_text()?,
            folder_type: r.parsed()?,
            is_default_export_folder: r.bool()?,
            is_default_import_folder: r.bool()?,
            auto_sync_enabled: r.bool()?,
            last_sync_at: r.opt_ts()?,
            sync_frequency_minutes: r.opt_i32()?,
            folder_permissions: r.parsed()?,
        })
    }
}

impl FromRow for SyncJob {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(SyncJob {
            base: Base::from_row(r)?,
            folder_id: r.uuid()?.into(),
            initiated_by_user_id: r.opt_uuid()?.map(UserId),
            job_type: r.parsed()?,
            status: r.parsed()?,
            started_at: r.opt_ts()?,
            completed_at: r.opt_ts()?,
            progress_percentage: r.percent()?,
            files_processed: r.i32()?,
            files_total: r.opt_i32()?,
            bytes_transferred: r.i64()?,
            error_message: r.opt_text()?,
            job_metadata: r.opt_json()?,
        })
    }
}

impl FromRow for CloudFile {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(CloudFile {
            base: Base::from_row(r)?,
            folder_id: r.uuid()?.into(),
            quodsi_file_type: r.parsed()?,
            quodsi_entity_id: r.opt_uuid()?,
            provider_file_id: r.text()?,
            file_name: r.text()?,
            file_path: r.opt_text()?,
            file_size_bytes: r.i64()?,
            content_hash: r.opt_text()?,
            mime_type: r.opt_text()?,
            cloud_created_at: r.opt_ts()?,
            cloud_modified_at: r.opt_ts()?,
            last_synced_at: r.opt_ts()?,
            sync_status: r.parsed()?,
            upload_url: r.opt_text()?,
            download_url: r.opt_text()?,
            file_metadata: r.opt_json()?,
        })
    }
}

impl FromRow for SharedLink {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(SharedLink {
            base: Base::from_row(r)?,
            created_by_user_id: UserId(r.uuid()?),
            resource_type: r.parsed()?,
            file_id: r.opt_uuid()?.map(Into::into),
            folder_id: r.opt_uuid()?.map(Into::into),
            provider_share_id: r.opt_text()?,
            share_url: r.text()?,
            share_type: r.parsed()?,
            password_protected: r.bool()?,
            expires_at: r.opt_ts()?,
            access_count: r.i32()?,
            last_accessed_at: r.opt_ts()?,
            is_active: r.bool()?,
        })
    }
}

impl FromRow for SyncError {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(SyncError {
            base: Base::from_row(r)?,
            sync_job_id: r.opt_uuid()?.map(Into::into),
            connection_id: r.uuid()?.into(),
            file_id: r.opt_uuid()?.map(Into::into),
            error_type: r.parsed()?,
            error_code: r.opt_text()?,
            error_message: r.text()?,
            stack_trace: r.opt_text()?,
            retry_count: r.i32()?,
            resolved_at: r.opt_ts()?,
            resolution_notes: r.opt_text()?,
            error_metadata: r.opt_json()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_text_timestamps_sort_like_time() {
        let a = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.000001Z").unwrap();
        let b = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.1Z").unwrap();
        let fa = a.naive_utc().format(SQLITE_TIMESTAMP_FORMAT).to_string();
        let fb = b.naive_utc().format(SQLITE_TIMESTAMP_FORMAT).to_string();
        assert_eq!(fa, "2026-01-02 03:04:05.000001");
        assert!(fa < fb);
        let mut row = Row::new(vec![Cell::Text(fa)]);
        assert_eq!(row.ts().unwrap(), a.with_timezone(&Utc));
    }

    #[test]
    fn decimals_of_any_scale_become_hundredths() {
        let mut row =
            Row::new(vec![Cell::Decimal(3333, 2), Cell::Decimal(5, 0), Cell::Real(12.5), Cell::Decimal(1000001, 4)]);
        assert_eq!(row.percent().unwrap().hundredths(), 3333);
        assert_eq!(row.percent().unwrap().hundredths(), 500);
        assert_eq!(row.percent().unwrap().hundredths(), 1250);
        assert_eq!(row.percent().unwrap().hundredths(), 10000);
    }

    #[test]
    fn a_null_in_a_required_column_is_corrupt_not_a_panic() {
        let mut row = Row::new(vec![Cell::Null]);
        assert!(matches!(row.uuid(), Err(DbError::Corrupt(_))));
        let mut short = Row::new(vec![]);
        assert!(matches!(short.text(), Err(DbError::Corrupt(_))));
    }

    #[test]
    fn timestamps_are_cut_to_microseconds_where_they_become_parameters() {
        // Arrange: a time with nanoseconds, as Utc::now() gives.
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07.123456789Z").unwrap().with_timezone(&Utc);
        let cut = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07.123456Z").unwrap().naive_utc();

        // Act
        let direct = Value::from(t);
        let optional = opt(Some(t));
        let patched = patch(Some(Some(t)));
        let patched_some = patch_some(Some(t));

        // Assert
        assert_eq!(direct, Value::Timestamp(cut));
        assert_eq!(optional, Value::Timestamp(cut));
        assert_eq!(patched[1], Value::Timestamp(cut));
        assert_eq!(patched_some[1], Value::Timestamp(cut));
        assert_eq!(micros(t).naive_utc(), cut);
    }

    #[test]
    fn patch_params_carry_a_flag_and_a_typed_null() {
        assert_eq!(patch::<String>(None), [Value::Bool(false), Value::Null(Kind::Text)]);
        assert_eq!(patch::<String>(Some(None)), [Value::Bool(true), Value::Null(Kind::Text)]);
        assert_eq!(patch_some(Some(5i32)), [Value::Bool(true), Value::I32(5)]);
    }
}
