//! Table schemas written once and used three ways: as Arrow schemas (what rows are built
//! as), as DuckDB DDL (what Parquet is written from), and as documentation.

use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;

use crate::error::Error;
use crate::quote::ident;

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text: Arrow `Utf8`, DuckDB `VARCHAR`.
    Text,
    /// Arrow `Int64`, DuckDB `BIGINT`.
    Int64,
    /// Arrow `Float64`, DuckDB `DOUBLE`.
    Float64,
    /// Arrow `Boolean`, DuckDB `BOOLEAN`.
    Bool,
    /// Microseconds since the Unix epoch, UTC: Arrow `Timestamp(µs, "UTC")`, DuckDB
    /// `TIMESTAMPTZ`.
    Timestamp,
}

impl ColumnType {
    /// The Arrow type.
    pub fn arrow(self) -> DataType {
        match self {
            Self::Text => DataType::Utf8,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    /// The DuckDB type.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Text => "VARCHAR",
            Self::Int64 => "BIGINT",
            Self::Float64 => "DOUBLE",
            Self::Bool => "BOOLEAN",
            Self::Timestamp => "TIMESTAMPTZ",
        }
    }

    /// How the README names it.
    pub fn doc(self) -> &'static str {
        match self {
            Self::Text => "Utf8",
            Self::Int64 => "Int64",
            Self::Float64 => "Float64",
            Self::Bool => "Boolean",
            Self::Timestamp => "Timestamp(µs, UTC)",
        }
    }
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it may be null.
    pub nullable: bool,
    /// What it holds.
    pub doc: &'static str,
}

impl Field {
    /// A column that may be null.
    pub const fn optional(name: &'static str, ty: ColumnType, doc: &'static str) -> Self {
        Self {
            name,
            ty,
            nullable: true,
            doc,
        }
    }

    /// A column that is never null.
    pub const fn required(name: &'static str, ty: ColumnType, doc: &'static str) -> Self {
        Self {
            name,
            ty,
            nullable: false,
            doc,
        }
    }
}

/// A table: its name and columns.
#[derive(Debug, Clone, Copy)]
pub struct TableSchema {
    /// The view's name in SQL.
    pub name: &'static str,
    /// The columns, in order.
    pub fields: &'static [Field],
}

impl TableSchema {
    /// The Arrow schema.
    pub fn arrow(&self) -> Arc<Schema> {
        Arc::new(Schema::new(
            self.fields
                .iter()
                .map(|f| duckdb::arrow::datatypes::Field::new(f.name, f.ty.arrow(), f.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// `CREATE ... TABLE name (...)` columns: `(a VARCHAR NOT NULL, ...)`.
    pub fn columns_sql(&self) -> String {
        let columns: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                let null = if f.nullable { "" } else { " NOT NULL" };
                format!("{} {}{null}", ident(f.name), f.ty.sql())
            })
            .collect();
        format!("({})", columns.join(", "))
    }

    /// The column's index by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// A Markdown table of the columns, for the README.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| column | type | null | what |\n|---|---|---|---|\n");
        for f in self.fields {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                f.name,
                f.ty.doc(),
                if f.nullable { "yes" } else { "no" },
                f.doc
            ));
        }
        out
    }
}

/// One value of a row being built, before it becomes Arrow.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Null.
    Null,
    /// For [`ColumnType::Text`].
    Text(String),
    /// For [`ColumnType::Int64`].
    Int(i64),
    /// For [`ColumnType::Float64`] (non-finite values become null).
    Float(f64),
    /// For [`ColumnType::Bool`].
    Bool(bool),
    /// For [`ColumnType::Timestamp`]: Unix milliseconds.
    TimeMs(i64),
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map_or(Cell::Null, Cell::Text)
    }
}

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Cell::Null, Cell::Float)
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Cell::Null, Cell::Int)
    }
}

impl TableSchema {
    /// The rows as one Arrow batch of this schema.
    ///
    /// # Errors
    ///
    /// When a row's length or a cell's type does not fit its column, or a required column
    /// is null.
    pub fn batch(&self, rows: &[Vec<Cell>]) -> Result<RecordBatch, Error> {
        if let Some((i, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != self.fields.len())
        {
            return Err(Error::Engine(format!(
                "{}: row {i} has {} cells for {} columns",
                self.name,
                row.len(),
                self.fields.len()
            )));
        }
        let columns = self
            .fields
            .iter()
            .enumerate()
            .map(|(c, field)| self.column(field, c, rows))
            .collect::<Result<Vec<ArrayRef>, Error>>()?;
        RecordBatch::try_new(self.arrow(), columns).map_err(|e| Error::Engine(e.to_string()))
    }

    /// Column `c` of `rows` (each as long as the schema) as an Arrow array of `field`'s type.
    fn column(&self, field: &Field, c: usize, rows: &[Vec<Cell>]) -> Result<ArrayRef, Error> {
        let cells = rows.iter().map(|r| &r[c]).enumerate();
        if !field.nullable {
            if let Some((i, cell)) = rows
                .iter()
                .map(|r| &r[c])
                .enumerate()
                .find(|(_, v)| **v == Cell::Null)
            {
                return Err(self.bad(i, field, cell));
            }
        }
        Ok(match field.ty {
            ColumnType::Text => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for (i, cell) in cells {
                    match cell {
                        Cell::Text(t) => b.append_value(t),
                        Cell::Null => b.append_null(),
                        other => return Err(self.bad(i, field, other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Int64 => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for (i, cell) in cells {
                    match cell {
                        Cell::Int(v) => b.append_value(*v),
                        Cell::Null => b.append_null(),
                        other => return Err(self.bad(i, field, other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Float64 => {
                let mut b = Float64Builder::with_capacity(rows.len());
                for (i, cell) in cells {
                    match cell {
                        Cell::Float(v) if v.is_finite() => b.append_value(*v),
                        Cell::Float(_) | Cell::Null => b.append_null(),
                        Cell::Int(v) => b.append_value(*v as f64),
                        other => return Err(self.bad(i, field, other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                for (i, cell) in cells {
                    match cell {
                        Cell::Bool(v) => b.append_value(*v),
                        Cell::Null => b.append_null(),
                        other => return Err(self.bad(i, field, other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Timestamp => {
                let mut b =
                    TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
                for (i, cell) in cells {
                    match cell {
                        Cell::TimeMs(ms) => b.append_value(ms.saturating_mul(1000)),
                        Cell::Null => b.append_null(),
                        other => return Err(self.bad(i, field, other)),
                    }
                }
                Arc::new(b.finish())
            }
        })
    }

    /// The error of a cell that does not fit its column.
    fn bad(&self, row: usize, field: &Field, cell: &Cell) -> Error {
        Error::Engine(format!(
            "{}: row {row}, column {}: {cell:?} does not fit {}",
            self.name,
            field.name,
            field.ty.doc()
        ))
    }
}
