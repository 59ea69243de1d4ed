//! What a query from outside may call: every table function it names must be on
//! [`TABLE_FUNCTIONS`], and no function it names may be on [`DENIED_FUNCTIONS`].
//!
//! A statement that passes the read-only check can still act: `enable_logging(...)` is a
//! SELECT over a table function that writes files and changes settings, `query(...)` runs
//! SQL text the check never saw. So the statement's parse tree (DuckDB's own, as
//! `json_serialize_sql` gives it; nothing is bound or run) is walked and every function
//! named anywhere in it (subqueries, CTEs, lambdas, window and aggregate calls) is vetted.
//! A bare name is enough: a caller from outside cannot define functions, so a name always
//! means DuckDB's built-in of that name, however qualified.

use serde_json::Value as Json;

use crate::error::Error;

/// The table functions a query may read from: generators and introspection of the views.
/// Everything else (file readers, logging and profiling switches, `query`, checkpoints,
/// settings and secrets listings) is refused. The list is checked against
/// `duckdb_functions()` by a test, so a name DuckDB drops does not linger.
pub const TABLE_FUNCTIONS: &[&str] = &[
    "range",
    "generate_series",
    "unnest",
    "json_each",
    "json_tree",
    "duckdb_columns",
    "duckdb_tables",
    "duckdb_views",
    "duckdb_schemas",
    "duckdb_types",
    "duckdb_functions",
    "duckdb_keywords",
    "pragma_table_info",
    "pragma_version",
    "pg_timezone_names",
    "icu_calendar_names",
];

/// Scalar functions with side effects beyond the query's answer: writing to DuckDB's log,
/// reseeding the shared random generator, moving sequences. (DuckDB marks these, with
/// harmless ones such as `random()`, as having side effects; a test checks that every
/// function it marks is here or known harmless.)
pub const DENIED_FUNCTIONS: &[&str] = &["write_log", "setseed", "nextval", "currval"];

/// Functions DuckDB marks as having side effects that only read: clocks, random values,
/// identifiers of the running query, and `error`, which fails the query.
pub const HARMLESS_SIDE_EFFECTS: &[&str] = &[
    "current_connection_id",
    "current_query",
    "current_query_id",
    "current_transaction_id",
    "error",
    "gen_random_uuid",
    "random",
    "sleep_ms",
    "stats",
    "uuid",
    "uuidv4",
    "uuidv7",
];

/// What a statement's parse tree names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    /// Table functions (`FROM f(...)`).
    pub table_functions: Vec<String>,
    /// Scalar, aggregate and window functions and operators.
    pub functions: Vec<String>,
    /// Tables and views, as `(schema, name)`; the schema is empty when not written.
    pub tables: Vec<(String, String)>,
    /// How many statements the text holds (each a query, or it would not serialize).
    pub statements: usize,
}

impl Names {
    /// Reads the names out of `json_serialize_sql`'s output for one statement.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when DuckDB could not serialize the statement.
    pub fn from_serialized(serialized: &str) -> Result<Self, Error> {
        let tree: Json = serde_json::from_str(serialized).map_err(|e| {
            Error::Refused(format!(
                "the query is too deeply nested to be checked ({e})"
            ))
        })?;
        if tree.get("error").and_then(Json::as_bool) == Some(true) {
            let message = tree
                .get("error_message")
                .and_then(Json::as_str)
                .unwrap_or("it cannot be serialized");
            if tree.get("error_type").and_then(Json::as_str) == Some("parser") {
                return Err(Error::Invalid(message.to_string()));
            }
            return Err(Error::Refused(format!(
                "only plain queries may run here (SELECT, FROM, WITH; not PIVOT), one at a \
                 time; DuckDB says: {message}"
            )));
        }
        let mut names = Self {
            statements: tree
                .get("statements")
                .and_then(Json::as_array)
                .map_or(0, Vec::len),
            ..Self::default()
        };
        names.walk(&tree);
        Ok(names)
    }

    fn walk(&mut self, node: &Json) {
        match node {
            Json::Array(items) => items.iter().for_each(|v| self.walk(v)),
            Json::Object(fields) => {
                let kind = fields.get("type").and_then(Json::as_str);
                if kind == Some("TABLE_FUNCTION") {
                    if let Some(Json::Object(call)) = fields.get("function") {
                        if let Some(name) = call.get("function_name").and_then(Json::as_str) {
                            self.table_functions.push(name.to_ascii_lowercase());
                        }
                        for (key, value) in call {
                            if key != "function_name" {
                                self.walk(value);
                            }
                        }
                    }
                    for (key, value) in fields {
                        if key != "function" {
                            self.walk(value);
                        }
                    }
                    return;
                }
                if kind == Some("BASE_TABLE") {
                    let text = |k: &str| {
                        fields
                            .get(k)
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    self.tables.push((text("schema_name"), text("table_name")));
                }
                if let Some(name) = fields.get("function_name").and_then(Json::as_str) {
                    self.functions.push(name.to_ascii_lowercase());
                }
                fields.values().for_each(|v| self.walk(v));
            }
            _ => {}
        }
    }

    /// Refuses the text when it holds several statements, or names a table function off
    /// the list, a denied function or a file.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] naming the first function at fault.
    pub fn vet(&self) -> Result<(), Error> {
        if self.statements > 1 {
            return Err(Error::Refused(format!(
                "one statement at a time: this text has {}",
                self.statements
            )));
        }
        if let Some(f) = self
            .table_functions
            .iter()
            .find(|f| !TABLE_FUNCTIONS.contains(&f.as_str()))
        {
            return Err(Error::Refused(format!(
                "the table function {f}() may not be used here; queries from outside may read \
                 the views and these table functions: {}",
                TABLE_FUNCTIONS.join(", ")
            )));
        }
        if let Some(f) = self
            .functions
            .iter()
            .find(|f| DENIED_FUNCTIONS.contains(&f.as_str()))
        {
            return Err(Error::Refused(format!(
                "the function {f}() has side effects and may not be used here"
            )));
        }
        // `FROM 'some/file.csv'` reads a file through DuckDB's replacement scans; the
        // views' names have neither slashes nor dots.
        if let Some((_, name)) = self
            .tables
            .iter()
            .find(|(_, name)| name.contains(['/', '\\', '.']))
        {
            return Err(Error::Refused(format!(
                "{name:?} names a file; queries from outside read the views, not files"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_without_functions_names_none() {
        let names =
            Names::from_serialized(r#"{"error":false,"statements":[{"node":{}}]}"#).expect("reads");
        assert_eq!(
            names,
            Names {
                statements: 1,
                ..Names::default()
            }
        );
        names.vet().expect("nothing to refuse");
    }

    #[test]
    fn a_serializer_error_is_a_refusal() {
        let err = Names::from_serialized(r#"{"error":true,"error_message":"nope"}"#)
            .expect_err("refused");
        assert!(
            matches!(err, Error::Refused(ref m) if m.contains("nope")),
            "{err}"
        );
    }
}
