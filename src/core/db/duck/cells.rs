//! DuckDB's result columns (Arrow arrays) as the cells SQLite would give: integers and
//! booleans `Integer`, floating and decimal values `Real`, text `Text`, binary `Blob`;
//! every other type (dates, timestamps, intervals, lists, structs) as its text, with
//! timestamps written as SQLite writes them (`2009-01-01 00:00:00`).

use duckdb::arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, LargeBinaryArray, LargeStringArray, StringArray,
};
use duckdb::arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::core::db::exec::{Cell, ExecError};

const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// One row of a batch, refused when a single value is longer than `byte_limit` (as SQLite
/// refuses to build one) before it is copied.
pub(crate) fn row(
    batch: &RecordBatch,
    row: usize,
    byte_limit: usize,
) -> Result<Vec<Cell>, ExecError> {
    batch
        .columns()
        .iter()
        .map(|column| cell(column.as_ref(), row, byte_limit))
        .collect()
}

fn cell(array: &dyn Array, row: usize, byte_limit: usize) -> Result<Cell, ExecError> {
    // A NullArray (DuckDB's type of a bare `NULL`) has no validity buffer, so
    // `is_null` says false for it; its type says every value is NULL.
    if array.is_null(row) || *array.data_type() == DataType::Null {
        return Ok(Cell::Null);
    }
    let too_big = |len: usize| {
        if len > byte_limit {
            Err(ExecError::ValueTooBig(byte_limit))
        } else {
            Ok(())
        }
    };
    let cell = match array.data_type() {
        DataType::Boolean => {
            let booleans: &BooleanArray = array.as_boolean();
            Cell::Integer(i64::from(booleans.value(row)))
        }
        DataType::Int8 => Cell::Integer(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Cell::Integer(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Cell::Integer(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Cell::Integer(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Cell::Integer(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Cell::Integer(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Cell::Integer(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let value = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(value).map_or(Cell::Real(value as f64), Cell::Integer)
        }
        DataType::Float16 => Cell::Real(array.as_primitive::<Float16Type>().value(row).into()),
        DataType::Float32 => Cell::Real(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Cell::Real(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => {
            let text = array
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(row));
            text_cell(text, too_big)?
        }
        DataType::LargeUtf8 => {
            let text = array
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .map(|a| a.value(row));
            text_cell(text, too_big)?
        }
        DataType::Utf8View => text_cell(Some(array.as_string_view().value(row)), too_big)?,
        DataType::Binary => {
            let bytes = array
                .as_any()
                .downcast_ref::<BinaryArray>()
                .map(|a| a.value(row));
            blob_cell(bytes, too_big)?
        }
        DataType::LargeBinary => {
            let bytes = array
                .as_any()
                .downcast_ref::<LargeBinaryArray>()
                .map(|a| a.value(row));
            blob_cell(bytes, too_big)?
        }
        DataType::BinaryView => blob_cell(Some(array.as_binary_view().value(row)), too_big)?,
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let text = formatted(array, row)?;
            text.parse::<f64>().map_or(Cell::Text(text), Cell::Real)
        }
        _ => {
            let text = formatted(array, row)?;
            too_big(text.len())?;
            Cell::Text(text)
        }
    };
    Ok(cell)
}

fn text_cell(
    text: Option<&str>,
    too_big: impl Fn(usize) -> Result<(), ExecError>,
) -> Result<Cell, ExecError> {
    let text = text.unwrap_or_default();
    too_big(text.len())?;
    Ok(Cell::Text(text.to_string()))
}

fn blob_cell(
    bytes: Option<&[u8]>,
    too_big: impl Fn(usize) -> Result<(), ExecError>,
) -> Result<Cell, ExecError> {
    let bytes = bytes.unwrap_or_default();
    too_big(bytes.len())?;
    Ok(Cell::Blob(bytes.to_vec()))
}

/// Arrow's own text for a value of any other type.
fn formatted(array: &dyn Array, row: usize) -> Result<String, ExecError> {
    let options = FormatOptions::new()
        .with_timestamp_format(Some(TIMESTAMP_FORMAT))
        .with_datetime_format(Some(TIMESTAMP_FORMAT));
    let formatter = ArrayFormatter::try_new(array, &options)
        .map_err(|error| ExecError::Sqlite(format!("cannot show a result value: {error}")))?;
    Ok(formatter.value(row).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(sql: &str) -> Vec<Cell> {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let mut statement = conn.prepare(sql).unwrap();
        let batches: Vec<RecordBatch> = statement
            .stream_arrow([])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        row(&batches[0], 0, 1 << 20).unwrap()
    }

    #[test]
    fn values_keep_the_storage_classes_sqlite_gives() {
        assert_eq!(
            cells(
                "SELECT 1::TINYINT, 2::BIGINT, true, 1.5::DOUBLE, 0.99::DECIMAL(10,2), 'x', \
                 'ab'::BLOB, NULL, DATE '2009-01-01', TIMESTAMP '2009-01-01 00:00:00', [1, 2]"
            ),
            [
                Cell::Integer(1),
                Cell::Integer(2),
                Cell::Integer(1),
                Cell::Real(1.5),
                Cell::Real(0.99),
                Cell::Text("x".into()),
                Cell::Blob(b"ab".to_vec()),
                Cell::Null,
                Cell::Text("2009-01-01".into()),
                Cell::Text("2009-01-01 00:00:00".into()),
                Cell::Text("[1, 2]".into()),
            ]
        );
    }
}
