//! A query's answer as plain values, and its renderings (table, CSV, JSON).

use duckdb::arrow::array::{Array, ArrayRef, AsArray};
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

    fn render(&self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => float(*f),
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
    /// The rows of `batches`, at most `max_rows` (the rest cut, `truncated` set).
    pub fn from_batches(
        schema: &types::Schema,
        batches: &[RecordBatch],
        max_rows: usize,
    ) -> Result<Self, String> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                r#type: f.data_type().to_string(),
            })
            .collect();
        let mut rows = Vec::new();
        let mut truncated = false;
        'batches: for batch in batches {
            let cells: Vec<Vec<Value>> = batch
                .columns()
                .iter()
                .map(values)
                .collect::<Result<_, _>>()?;
            for row in 0..batch.num_rows() {
                if rows.len() == max_rows {
                    truncated = true;
                    break 'batches;
                }
                rows.push(cells.iter().map(|c| c[row].clone()).collect());
            }
        }
        Ok(Self {
            columns,
            rows,
            truncated,
        })
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
                ", cut at the row limit"
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
            let cells: Vec<String> = row.iter().map(|v| quote(&v.render())).collect();
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

/// The cells of one Arrow column.
fn values(array: &ArrayRef) -> Result<Vec<Value>, String> {
    let n = array.len();
    let cell = |i: usize, f: &dyn Fn(usize) -> Value| {
        if array.is_null(i) {
            Value::Null
        } else {
            f(i)
        }
    };
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            (0..n)
                .map(|i| cell(i, &|i| Value::Int(i64::from(a.value(i)))))
                .collect()
        }};
    }
    let out = match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n)
                .map(|i| cell(i, &|i| Value::Bool(a.value(i))))
                .collect()
        }
        DataType::Int8 => ints!(types::Int8Type),
        DataType::Int16 => ints!(types::Int16Type),
        DataType::Int32 => ints!(types::Int32Type),
        DataType::Int64 => ints!(types::Int64Type),
        DataType::UInt8 => ints!(types::UInt8Type),
        DataType::UInt16 => ints!(types::UInt16Type),
        DataType::UInt32 => ints!(types::UInt32Type),
        DataType::UInt64 => {
            let a = array.as_primitive::<types::UInt64Type>();
            (0..n)
                .map(|i| {
                    cell(i, &|i| match i64::try_from(a.value(i)) {
                        Ok(v) => Value::Int(v),
                        Err(_) => Value::Float(a.value(i) as f64),
                    })
                })
                .collect()
        }
        DataType::Float32 => {
            let a = array.as_primitive::<types::Float32Type>();
            (0..n)
                .map(|i| cell(i, &|i| finite(f64::from(a.value(i)))))
                .collect()
        }
        DataType::Float64 => {
            let a = array.as_primitive::<types::Float64Type>();
            (0..n).map(|i| cell(i, &|i| finite(a.value(i)))).collect()
        }
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive::<types::Decimal128Type>();
            let scale = i32::from(*scale);
            (0..n)
                .map(|i| {
                    cell(i, &|i| {
                        let raw = a.value(i);
                        match i64::try_from(raw) {
                            Ok(v) if scale == 0 => Value::Int(v),
                            _ => finite(raw as f64 / 10f64.powi(scale)),
                        }
                    })
                })
                .collect()
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..n)
                .map(|i| cell(i, &|i| Value::Text(a.value(i).to_string())))
                .collect()
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            (0..n)
                .map(|i| cell(i, &|i| Value::Text(a.value(i).to_string())))
                .collect()
        }
        DataType::Timestamp(unit, Some(_)) => {
            // Shown in UTC, whatever zone name DuckDB gave it.
            let plain = duckdb::arrow::compute::cast(array, &DataType::Timestamp(*unit, None))
                .map_err(|e| e.to_string())?;
            let options = FormatOptions::default();
            let formatter =
                ArrayFormatter::try_new(plain.as_ref(), &options).map_err(|e| e.to_string())?;
            (0..n)
                .map(|i| cell(i, &|i| Value::Text(format!("{}Z", formatter.value(i)))))
                .collect()
        }
        _ => {
            let options = FormatOptions::default();
            let formatter =
                ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| e.to_string())?;
            (0..n)
                .map(|i| cell(i, &|i| Value::Text(formatter.value(i).to_string())))
                .collect()
        }
    };
    Ok(out)
}

fn finite(f: f64) -> Value {
    if f.is_finite() {
        Value::Float(f)
    } else {
        Value::Null
    }
}
