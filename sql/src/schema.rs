//! Table schemas written once and used three ways: as Arrow schemas (what rows are built
//! as), as DuckDB DDL (what Parquet is written from), and as documentation.

use std::sync::Arc;

use duckdb::arrow::datatypes::{DataType, Schema, TimeUnit};

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
                format!("{} {}{null}", crate::ident(f.name), f.ty.sql())
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
