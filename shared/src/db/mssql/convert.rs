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
/// A NULL keeps its type (the `ColumnData` of `Option::<T>::None`): tiberius declares every parameter in the
/// `sp_executesql` parameter list from its value, and an untyped NULL would change the
/// declared type of, say, a DATETIME2 parameter and with it the cached plan.
/// Timestamps are `NaiveDateTime` (DATETIME2, UTC by convention), never `DateTime<Utc>`:
/// the columns are DATETIME2 and must not be compared with a DATETIMEOFFSET.
pub(crate) fn column_data(v: &Value) -> ColumnData<'_> {
    match v {
        Value::Null(kind) => match kind {
            Kind::Bool => ColumnData::Bit(None),
            Kind::I32 => ColumnData::I32(None),
            Kind::I64 => ColumnData::I64(None),
            Kind::Text => ColumnData::String(None),
            Kind::Bytes => ColumnData::Binary(None),
            Kind::Uuid => ColumnData::Guid(None),
            Kind::Timestamp => Option::<NaiveDateTime>::None.into_sql(),
            Kind::Hundredths => ColumnData::Numeric(None),
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
    fn nulls_are_bound_with_their_type() {
        let cases = [
            (Kind::Bool, ColumnData::Bit(None)),
            (Kind::I32, ColumnData::I32(None)),
            (Kind::I64, ColumnData::I64(None)),
            (Kind::Text, ColumnData::String(None)),
            (Kind::Bytes, ColumnData::Binary(None)),
            (Kind::Uuid, ColumnData::Guid(None)),
            (Kind::Timestamp, ColumnData::DateTime2(None)),
            (Kind::Hundredths, ColumnData::Numeric(None)),
        ];
        for (kind, expected) in cases {
            assert_eq!(column_data(&Value::Null(kind)), expected, "{kind:?}");
        }
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
