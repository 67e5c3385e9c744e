//! Parameters to tiberius values and result values back to cells.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use tiberius::numeric::Numeric;
use tiberius::{ColumnData, FromSql, IntoSql};

use crate::db::error::DbError;
use crate::db::value::{Cell, Kind, Value};

/// The SQL Server value a parameter is bound as. Strings and bytes are borrowed from the
/// step, so binding copies nothing.
///
/// tiberius declares every parameter in the `sp_executesql` parameter list from its value,
/// and sends a NULL Bit, Int or Guid with its type. A NULL String, Binary, DateTime2 or
/// Numeric, though, goes out as TDS NULLTYPE (0x1F) whatever `ColumnData` variant holds it
/// (tiberius 0.13, `column_data.rs`, the `(_, None)` arm of the encoder). SQL Server accepts
/// that; Babelfish refuses it ("Data type 0x1F is unknown"). So a NULL of those kinds
/// ([`null_literal`] is `Some`) is not sent as a value at all: [`sent_text`] writes a typed
/// NULL into the statement in its place, and its slot in the parameter list is a typed NULL
/// bit that the text no longer refers to, so every later parameter keeps its number.
///
/// Timestamps are `NaiveDateTime` (DATETIME2, UTC by convention), never `DateTime<Utc>`:
/// the columns are DATETIME2 and must not be compared with a DATETIMEOFFSET. They arrive
/// here already cut to microseconds (`Value::from(DateTime<Utc>)`), so the 100 ns digit
/// DATETIME2 keeps is always 0 and a value reads back as it was written on both engines.
pub(crate) fn column_data(v: &Value) -> ColumnData<'_> {
    match v {
        Value::Null(kind) => match kind {
            Kind::Bool => ColumnData::Bit(None),
            Kind::I32 => ColumnData::I32(None),
            Kind::I64 => ColumnData::I64(None),
            Kind::Uuid => ColumnData::Guid(None),
            // Written into the text as a typed NULL (`null_literal`, `sent_text`); this slot
            // only keeps the numbering of the parameters after it.
            Kind::Text | Kind::Bytes | Kind::Timestamp | Kind::Hundredths => ColumnData::Bit(None),
        },
        Value::Bool(b) => ColumnData::Bit(Some(*b)),
        Value::I32(i) => ColumnData::I32(Some(*i)),
        Value::I64(i) => ColumnData::I64(Some(*i)),
        Value::Text(s) => ColumnData::String(Some(Cow::Borrowed(s.as_str()))),
        Value::Bytes(b) => ColumnData::Binary(Some(Cow::Borrowed(b.as_slice()))),
        Value::Uuid(u) => ColumnData::Guid(Some(*u)),
        Value::Timestamp(t) => (*t).into_sql(),
        // DECIMAL(5,2): the value in hundredths is the unscaled decimal at scale 2.
        Value::Hundredths(h) => ColumnData::Numeric(Some(Numeric::new_with_scale(i128::from(*h), 2))),
    }
}

/// The typed NULL a NULL parameter of this kind is written as in the statement text, for
/// the kinds tiberius would send as NULLTYPE; `None` for the kinds it sends typed. Each type
/// is the one the parameter is declared with when it holds a value (NVARCHAR, VARBINARY,
/// DATETIME2), or the column's own type (DECIMAL(5,2)), so the statement compiles to what
/// it would with a typed NULL parameter.
pub(crate) fn null_literal(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Bool | Kind::I32 | Kind::I64 | Kind::Uuid => None,
        Kind::Text => Some("CAST(NULL AS NVARCHAR(4000))"),
        Kind::Bytes => Some("CAST(NULL AS VARBINARY(MAX))"),
        Kind::Timestamp => Some("CAST(NULL AS DATETIME2)"),
        Kind::Hundredths => Some("CAST(NULL AS DECIMAL(5, 2))"),
    }
}

/// The statement text sent for these parameters: `text` with every `@Pn` whose parameter is
/// a NULL of a [`null_literal`] kind replaced by that typed NULL (never inside a string
/// literal; `@P1` never matches the start of `@P12`). Borrowed when nothing is replaced.
///
/// Each NULL pattern of a statement is a text of its own, and so a plan of its own in the
/// server's cache; a statement has few patterns in practice (which optional values and
/// which patched columns are absent), and no value ever enters the text, only `NULL`.
pub(crate) fn sent_text(text: &'static str, params: &[Value]) -> Cow<'static, str> {
    let literal_of = |n: usize| match n.checked_sub(1).and_then(|i| params.get(i)) {
        Some(Value::Null(kind)) => null_literal(*kind),
        _ => None,
    };
    if !params.iter().any(|p| matches!(p, Value::Null(kind) if null_literal(*kind).is_some())) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 32);
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // A doubled quote inside a literal toggles twice, which leaves it inside.
            b'\'' => in_string = !in_string,
            b'@' if !in_string && bytes.get(i + 1) == Some(&b'P') => {
                let digits = bytes[i + 2..].iter().take_while(|b| b.is_ascii_digit()).count();
                let end = i + 2 + digits;
                if let Some(literal) = text[i + 2..end].parse().ok().and_then(literal_of) {
                    out.push_str(&text[copied..i]);
                    out.push_str(literal);
                    copied = end;
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn unsupported(what: &str, e: tiberius::error::Error) -> DbError {
    DbError::Corrupt(format!("a {what} value does not decode: {e}"))
}

/// A result value as a [`Cell`]. The decoders in `value.rs` convert leniently between cell
/// shapes, so this only has to keep the value, not know the column it came from.
pub(crate) fn cell(data: ColumnData<'static>) -> Result<Cell, DbError> {
    Ok(match data {
        ColumnData::U8(v) => v.map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
        ColumnData::I16(v) => v.map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
        ColumnData::I32(v) => v.map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
        ColumnData::I64(v) => v.map_or(Cell::Null, Cell::Int),
        ColumnData::Bit(v) => v.map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
        ColumnData::F32(v) => v.map_or(Cell::Null, |v| Cell::Real(f64::from(v))),
        ColumnData::F64(v) => v.map_or(Cell::Null, Cell::Real),
        ColumnData::String(v) => v.map_or(Cell::Null, |s| Cell::Text(s.into_owned())),
        ColumnData::Guid(v) => v.map_or(Cell::Null, Cell::Uuid),
        ColumnData::Binary(v) => v.map_or(Cell::Null, |b| Cell::Bytes(b.into_owned())),
        ColumnData::Numeric(v) => v.map_or(Cell::Null, |n| Cell::Decimal(n.value(), n.scale())),
        ColumnData::Xml(v) => v.map_or(Cell::Null, |x| Cell::Text(x.to_string())),
        d @ (ColumnData::DateTime2(_) | ColumnData::DateTime(_) | ColumnData::SmallDateTime(_)) => {
            NaiveDateTime::from_sql(&d).map_err(|e| unsupported("datetime", e))?.map_or(Cell::Null, Cell::Timestamp)
        }
        // Not used by the schema; kept total so an unexpected column type reads as a value
        // the decoders can reject with a column number rather than failing the whole query.
        d @ ColumnData::DateTimeOffset(_) => chrono::DateTime::<chrono::Utc>::from_sql(&d)
            .map_err(|e| unsupported("datetimeoffset", e))?
            .map_or(Cell::Null, |t| Cell::Timestamp(t.naive_utc())),
        d @ ColumnData::Date(_) => NaiveDate::from_sql(&d)
            .map_err(|e| unsupported("date", e))?
            .map_or(Cell::Null, |t| Cell::Timestamp(t.and_time(NaiveTime::MIN))),
        d @ ColumnData::Time(_) => NaiveTime::from_sql(&d)
            .map_err(|e| unsupported("time", e))?
            .map_or(Cell::Null, |t| Cell::Text(t.format("%H:%M:%S%.f").to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ts() -> NaiveDateTime {
        chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07.123456Z").map(|t| t.naive_utc()).unwrap_or_default()
    }

    #[test]
    fn nulls_tiberius_types_are_bound_and_the_others_keep_only_their_slot() {
        let cases = [
            (Kind::Bool, ColumnData::Bit(None)),
            (Kind::I32, ColumnData::I32(None)),
            (Kind::I64, ColumnData::I64(None)),
            (Kind::Uuid, ColumnData::Guid(None)),
            (Kind::Text, ColumnData::Bit(None)),
            (Kind::Bytes, ColumnData::Bit(None)),
            (Kind::Timestamp, ColumnData::Bit(None)),
            (Kind::Hundredths, ColumnData::Bit(None)),
        ];
        for (kind, expected) in cases {
            assert_eq!(column_data(&Value::Null(kind)), expected, "{kind:?}");
        }
    }

    #[test]
    fn a_null_tiberius_cannot_type_is_written_into_the_text_at_its_own_placeholder() {
        // Arrange: @P1 (text) is NULL, @P12 is a value; @P1 also appears in a string literal.
        let text = "UPDATE t SET a = @P1, b = @P12, c = '@P1' WHERE d = @P1 AND e = @P2";
        let mut params = vec![Value::Null(Kind::Text), Value::Null(Kind::Uuid)];
        params.extend((3..=12).map(Value::I32));

        // Act
        let sent = sent_text(text, &params);

        // Assert
        assert_eq!(
            sent,
            "UPDATE t SET a = CAST(NULL AS NVARCHAR(4000)), b = @P12, c = '@P1' \
             WHERE d = CAST(NULL AS NVARCHAR(4000)) AND e = @P2"
        );
    }

    #[test]
    fn every_untyped_null_kind_has_its_typed_literal() {
        let text = "SELECT @P1, @P2, @P3, @P4, @P5";
        let params = [
            Value::Null(Kind::Text),
            Value::Null(Kind::Bytes),
            Value::Null(Kind::Timestamp),
            Value::Null(Kind::Hundredths),
            Value::Text("kept".into()),
        ];

        let sent = sent_text(text, &params);

        assert_eq!(
            sent,
            "SELECT CAST(NULL AS NVARCHAR(4000)), CAST(NULL AS VARBINARY(MAX)), CAST(NULL AS DATETIME2), \
             CAST(NULL AS DECIMAL(5, 2)), @P5"
        );
    }

    #[test]
    fn a_text_without_untyped_nulls_is_sent_as_it_is() {
        let text = "SELECT @P1, @P2, @P3";
        let params = [Value::Null(Kind::Bool), Value::Null(Kind::Uuid), Value::Text(String::new())];

        let sent = sent_text(text, &params);

        assert!(matches!(sent, Cow::Borrowed(t) if std::ptr::eq(t, text)));
    }

    #[test]
    fn values_bind_as_the_column_types() {
        let id = Uuid::new_v4();
        assert_eq!(column_data(&Value::Bool(true)), ColumnData::Bit(Some(true)));
        assert_eq!(column_data(&Value::I32(7)), ColumnData::I32(Some(7)));
        assert_eq!(column_data(&Value::I64(1 << 40)), ColumnData::I64(Some(1 << 40)));
        assert_eq!(column_data(&Value::Text("é".into())), ColumnData::String(Some(Cow::Borrowed("é"))));
        assert_eq!(column_data(&Value::Bytes(vec![1, 2])), ColumnData::Binary(Some(Cow::Borrowed(&[1u8, 2][..]))));
        assert_eq!(column_data(&Value::Uuid(id)), ColumnData::Guid(Some(id)));
        assert!(matches!(column_data(&Value::Timestamp(ts())), ColumnData::DateTime2(Some(_))));
        match column_data(&Value::Hundredths(3333)) {
            ColumnData::Numeric(Some(n)) => assert_eq!((n.value(), n.scale()), (3333, 2)),
            other => panic!("expected a numeric, got {other:?}"),
        }
    }

    #[test]
    fn timestamps_round_trip_through_datetime2() {
        let value = Value::Timestamp(ts());
        let ColumnData::DateTime2(bound) = column_data(&value) else { panic!("not a datetime2") };
        assert_eq!(cell(ColumnData::DateTime2(bound)).unwrap(), Cell::Timestamp(ts()));
    }

    #[test]
    fn result_values_become_cells() {
        let id = Uuid::new_v4();
        assert_eq!(cell(ColumnData::I64(None)).unwrap(), Cell::Null);
        assert_eq!(cell(ColumnData::String(None)).unwrap(), Cell::Null);
        assert_eq!(cell(ColumnData::Bit(Some(true))).unwrap(), Cell::Int(1));
        assert_eq!(cell(ColumnData::U8(Some(3))).unwrap(), Cell::Int(3));
        assert_eq!(cell(ColumnData::I16(Some(-3))).unwrap(), Cell::Int(-3));
        assert_eq!(cell(ColumnData::F64(Some(1.5))).unwrap(), Cell::Real(1.5));
        assert_eq!(cell(ColumnData::Guid(Some(id))).unwrap(), Cell::Uuid(id));
        assert_eq!(cell(ColumnData::String(Some("x".into()))).unwrap(), Cell::Text("x".into()));
        assert_eq!(cell(ColumnData::Binary(Some(vec![9u8].into()))).unwrap(), Cell::Bytes(vec![9]));
        assert_eq!(cell(ColumnData::Numeric(Some(Numeric::new_with_scale(1250, 2)))).unwrap(), Cell::Decimal(1250, 2));
    }
}
