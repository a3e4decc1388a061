//! The answer of a check's query (pure over a row): exactly one column, at most one row, and
//! a number (or a boolean: `true` is 1). No row, or NULL, is "no data"; more than one row or
//! column, or text that is not a number, is an error of the query.

use tokio_postgres::Row;
use tokio_postgres::types::Type;

/// Reads the single value of `rows` (the first two rows of the answer, at most).
pub(super) fn single(rows: &[Row]) -> Result<Option<f64>, String> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    if rows.len() > 1 {
        return Err("the query returned more than one row; it must return one value".into());
    }
    let columns = row.columns();
    if columns.len() != 1 {
        return Err(format!(
            "the query returned {} columns; it must return one value",
            columns.len()
        ));
    }
    let ty = columns[0].type_().clone();
    let read = |e: tokio_postgres::Error| format!("cannot read the {ty} value: {e}");
    let v = match ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(0)
            .map_err(read)?
            .map(|b| f64::from(u8::from(b))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(0)
            .map_err(read)?
            .map(f64::from),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(0)
            .map_err(read)?
            .map(f64::from),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(0)
            .map_err(read)?
            .map(|v| v as f64),
        Type::OID => row
            .try_get::<_, Option<u32>>(0)
            .map_err(read)?
            .map(f64::from),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(0)
            .map_err(read)?
            .map(f64::from),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(0).map_err(read)?,
        Type::NUMERIC => {
            let d = row
                .try_get::<_, Option<rust_decimal::Decimal>>(0)
                .map_err(read)?;
            match d {
                None => None,
                Some(d) => Some(
                    rust_decimal::prelude::ToPrimitive::to_f64(&d)
                        .ok_or_else(|| format!("the numeric value {d} is out of range"))?,
                ),
            }
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            match row.try_get::<_, Option<String>>(0).map_err(read)? {
                None => None,
                Some(t) => Some(t.trim().parse::<f64>().map_err(|_| {
                    let shown: String = t.chars().take(40).collect();
                    format!("the query returned the text {shown:?}, not a number")
                })?),
            }
        }
        other => {
            return Err(format!(
                "the query returned a value of type {other}; return a number or a boolean (for example count(*) or exists(...))"
            ));
        }
    };
    Ok(v)
}
