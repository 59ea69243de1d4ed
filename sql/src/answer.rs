//! A query's answer as plain values, and its renderings (table, CSV, JSON).

use std::sync::Arc;

use duckdb::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use duckdb::arrow::datatypes::{self as types, DataType};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

/// One cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL (and non-finite floats).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// A floating-point number (decimals too).
    Float(f64),
    /// Everything else, as DuckDB's Arrow output formats it (text, times, lists...).
    Text(String),
}

impl Value {
    /// The number, for integers and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text, for text cells.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The cell as a table shows it: floats rounded for reading.
    fn render(&self) -> String {
        match self {
            Self::Float(f) => float(*f),
            other => other.exact(),
        }
    }

    /// The cell as CSV carries it: floats as the shortest text that reads back as the same
    /// double.
    fn exact(&self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => format!("{f:?}"),
            Self::Text(t) => t.clone(),
        }
    }
}

/// A float with at most four decimals, trailing zeros dropped.
fn float(f: f64) -> String {
    if f.abs() >= 1e15 || (f != 0.0 && f.abs() < 1e-4) {
        return format!("{f:e}");
    }
    let text = format!("{f:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// A column of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its Arrow type, as Arrow prints it.
    pub r#type: String,
}

/// What a query answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each as long as `columns`.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows were left off at the row limit.
    pub truncated: bool,
}

/// Builds an answer from batches as they come, within a row and a byte limit. Cells are
/// read row by row, so only the rows kept are ever copied, and a batch can be dropped as
/// soon as it is pushed.
pub(crate) struct Collector {
    answer: Answer,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Collector {
    pub(crate) fn new(schema: &types::Schema, max_rows: usize, max_bytes: usize) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                r#type: f.data_type().to_string(),
            })
            .collect();
        Self {
            answer: Answer {
                columns,
                ..Answer::default()
            },
            bytes: 0,
            max_rows,
            max_bytes,
        }
    }

    /// Adds the rows of `batch` that fit; false once the answer is full (and cut).
    pub(crate) fn push(&mut self, batch: &RecordBatch) -> Result<bool, String> {
        let n = rows_within(batch, &mut self.bytes, self.max_bytes)
            .min(self.max_rows - self.answer.rows.len());
        if n > 0 {
            let readers: Vec<Reader<'_>> = batch
                .columns()
                .iter()
                .map(Reader::new)
                .collect::<Result<_, _>>()?;
            for row in 0..n {
                self.answer
                    .rows
                    .push(readers.iter().map(|r| r.value(row)).collect());
            }
        }
        if n < batch.num_rows() {
            self.answer.truncated = true;
            return Ok(false);
        }
        Ok(true)
    }

    pub(crate) fn finish(self) -> Answer {
        self.answer
    }
}

/// How many leading rows of `batch` fit in `max_bytes` with `used` already taken; adds
/// theirs to `used`.
pub(crate) fn rows_within(batch: &RecordBatch, used: &mut usize, max_bytes: usize) -> usize {
    for row in 0..batch.num_rows() {
        let next = used.saturating_add(row_bytes(batch, row));
        if next > max_bytes {
            return row;
        }
        *used = next;
    }
    batch.num_rows()
}

/// How an answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns with a header.
    Table,
    /// RFC 4180 CSV with a header.
    Csv,
    /// A JSON array of objects.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown format {other:?}: table, csv or json")),
        }
    }
}

impl Answer {
    /// The rows of `batches`, at most `max_rows` and `max_bytes` of cells (see
    /// [`row_bytes`]); the rest is cut and `truncated` set.
    pub fn from_batches(
        schema: &types::Schema,
        batches: &[RecordBatch],
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Self, String> {
        let mut collector = Collector::new(schema, max_rows, max_bytes);
        for batch in batches {
            if !collector.push(batch)? {
                break;
            }
        }
        Ok(collector.finish())
    }

    /// The column's index by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The answer printed as `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Csv => self.csv(),
            Format::Json => self.json(),
        }
    }

    fn table(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Value::render).collect())
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &body {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .all(|r| matches!(r[i], Value::Int(_) | Value::Float(_) | Value::Null))
            })
            .collect();
        let line = |cells: &[String], out: &mut String| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((c, w), n)| {
                    let pad = w - c.chars().count();
                    if *n {
                        format!("{}{c}", " ".repeat(pad))
                    } else {
                        format!("{c}{}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        let mut out = String::new();
        line(&header, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for row in &body {
            line(row, &mut out);
        }
        out.push_str(&format!(
            "({} row{}{})\n",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            if self.truncated {
                ", cut at the row or size limit"
            } else {
                ""
            }
        ));
        out
    }

    fn csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| quote(&c.name)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|v| quote(&v.exact())).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    fn json(&self) -> String {
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = self
            .rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        let value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
                        (c.name.clone(), value)
                    })
                    .collect()
            })
            .collect();
        serde_json::to_string_pretty(&objects).unwrap_or_default()
    }
}

/// How many bytes a row of `batch` takes, about: the bytes of its text and binary cells and
/// 8 for every other cell. The answer's byte limit counts this.
pub fn row_bytes(batch: &RecordBatch, row: usize) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8 => c.as_string::<i32>().value_length(row).max(0) as usize,
            DataType::LargeUtf8 => c.as_string::<i64>().value_length(row).max(0) as usize,
            DataType::Binary => c.as_binary::<i32>().value_length(row).max(0) as usize,
            DataType::LargeBinary => c.as_binary::<i64>().value_length(row).max(0) as usize,
            DataType::Utf8View => c.as_string_view().value(row).len(),
            _ => 8,
        })
        .sum::<usize>()
        + 8
}

/// Reads the cells of one Arrow column, one at a time.
struct Reader<'a> {
    array: &'a ArrayRef,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Null,
    Bool(&'a BooleanArray),
    Int(Box<dyn Fn(usize) -> i64 + 'a>),
    UInt64(&'a PrimitiveArray<types::UInt64Type>),
    Float(Box<dyn Fn(usize) -> f64 + 'a>),
    Decimal(&'a PrimitiveArray<types::Decimal128Type>, i32),
    Text(Box<dyn Fn(usize) -> &'a str + 'a>),
    /// Anything else, as Arrow's formatter shows it; a timestamp with a zone is shown in
    /// UTC with a `Z`, whatever zone name DuckDB gave it.
    Formatted(ArrayRef, &'static str),
}

impl<'a> Reader<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self, String> {
        macro_rules! ints {
            ($t:ty) => {{
                let a = array.as_primitive::<$t>();
                Kind::Int(Box::new(move |i| i64::from(a.value(i))))
            }};
        }
        let kind = match array.data_type() {
            DataType::Null => Kind::Null,
            DataType::Boolean => Kind::Bool(array.as_boolean()),
            DataType::Int8 => ints!(types::Int8Type),
            DataType::Int16 => ints!(types::Int16Type),
            DataType::Int32 => ints!(types::Int32Type),
            DataType::Int64 => ints!(types::Int64Type),
            DataType::UInt8 => ints!(types::UInt8Type),
            DataType::UInt16 => ints!(types::UInt16Type),
            DataType::UInt32 => ints!(types::UInt32Type),
            DataType::UInt64 => Kind::UInt64(array.as_primitive()),
            DataType::Float32 => {
                let a = array.as_primitive::<types::Float32Type>();
                Kind::Float(Box::new(move |i| f64::from(a.value(i))))
            }
            DataType::Float64 => {
                let a = array.as_primitive::<types::Float64Type>();
                Kind::Float(Box::new(move |i| a.value(i)))
            }
            DataType::Decimal128(_, scale) => {
                Kind::Decimal(array.as_primitive(), i32::from(*scale))
            }
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                Kind::Text(Box::new(move |i| a.value(i)))
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                Kind::Text(Box::new(move |i| a.value(i)))
            }
            DataType::Timestamp(unit, Some(_)) => {
                let plain = duckdb::arrow::compute::cast(array, &DataType::Timestamp(*unit, None))
                    .map_err(|e| e.to_string())?;
                Kind::Formatted(plain, "Z")
            }
            _ => Kind::Formatted(Arc::clone(array), ""),
        };
        Ok(Self { array, kind })
    }

    fn value(&self, i: usize) -> Value {
        if self.array.is_null(i) {
            return Value::Null;
        }
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(a) => Value::Bool(a.value(i)),
            Kind::Int(f) => Value::Int(f(i)),
            Kind::UInt64(a) => match i64::try_from(a.value(i)) {
                Ok(v) => Value::Int(v),
                Err(_) => Value::Float(a.value(i) as f64),
            },
            Kind::Float(f) => finite(f(i)),
            Kind::Decimal(a, scale) => {
                let raw = a.value(i);
                match i64::try_from(raw) {
                    Ok(v) if *scale == 0 => Value::Int(v),
                    _ => finite(raw as f64 / 10f64.powi(*scale)),
                }
            }
            Kind::Text(f) => Value::Text(f(i).to_string()),
            Kind::Formatted(array, suffix) => {
                let options = FormatOptions::default();
                match ArrayFormatter::try_new(array.as_ref(), &options) {
                    Ok(formatter) => Value::Text(format!("{}{suffix}", formatter.value(i))),
                    Err(e) => Value::Text(format!("<{e}>")),
                }
            }
        }
    }
}

fn finite(f: f64) -> Value {
    if f.is_finite() {
        Value::Float(f)
    } else {
        Value::Null
    }
}
