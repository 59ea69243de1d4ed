//! The read-only check: DuckDB's parser splits the text into statements and prepares the one
//! it must be; only a single query passes. Preparing binds names but runs nothing.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::ptr;

use duckdb::ffi;

use crate::error::Error;

/// Longest SQL text accepted from outside.
pub(crate) const MAX_SQL: usize = 64 * 1024;

/// An open in-memory database, shared by every connection of an [`crate::Engine`].
pub(crate) struct Database {
    pub(crate) raw: ffi::duckdb_database,
}

// SAFETY: a DuckDB database handle may be used from any thread; DuckDB locks internally.
unsafe impl Send for Database {}
// SAFETY: as above; connections made from it are used by one thread at a time.
unsafe impl Sync for Database {}

impl Database {
    /// A new in-memory database with no temporary directory: DuckDB's default (`.tmp` in
    /// the process's working directory) would be created there and added to the
    /// directories queries may read, and nothing is ever spilled anyway.
    pub(crate) fn open() -> Result<Self, Error> {
        let mut config: ffi::duckdb_config = ptr::null_mut();
        // SAFETY: `config` is written on success and destroyed below in every case.
        if unsafe { ffi::duckdb_create_config(&mut config) } != ffi::DuckDBSuccess {
            return Err(Error::Engine(
                "creating DuckDB's configuration failed".into(),
            ));
        }
        let name = c"temp_directory";
        let empty = c"";
        // SAFETY: both strings are NUL-terminated and outlive the call.
        let set = unsafe { ffi::duckdb_set_config(config, name.as_ptr(), empty.as_ptr()) };
        let mut raw = ptr::null_mut();
        let mut error: *mut std::os::raw::c_char = ptr::null_mut();
        let state = if set == ffi::DuckDBSuccess {
            // SAFETY: a null path opens an in-memory database; `raw` is written on success
            // and `error` on failure (freed below).
            unsafe { ffi::duckdb_open_ext(ptr::null(), &mut raw, config, &mut error) }
        } else {
            ffi::DuckDBError
        };
        // SAFETY: the configuration is no longer needed once the database is open.
        unsafe { ffi::duckdb_destroy_config(&mut config) };
        // SAFETY: `error` is null or a string DuckDB allocated for us.
        let message = unsafe { message(error) };
        if !error.is_null() {
            // SAFETY: as above; freed once.
            unsafe { ffi::duckdb_free(error.cast()) };
        }
        if state != ffi::DuckDBSuccess || raw.is_null() {
            return Err(Error::Engine(format!(
                "opening an in-memory database failed: {}",
                message.unwrap_or_else(|| "no reason given".into())
            )));
        }
        Ok(Self { raw })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: `raw` came from duckdb_open and every connection made from it holds an
        // `Arc<Database>`, so none outlives this.
        unsafe { ffi::duckdb_close(&mut self.raw) };
    }
}

/// `sql` without surrounding blanks and trailing semicolons, when it is not empty and not
/// too long.
pub(crate) fn trimmed(sql: &str) -> Result<&str, Error> {
    let text = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if text.is_empty() {
        return Err(Error::Refused("the query is empty".into()));
    }
    if text.len() > MAX_SQL {
        return Err(Error::Refused(format!(
            "the query is {} bytes long; at most {MAX_SQL} are accepted",
            text.len()
        )));
    }
    Ok(text)
}

/// The text to run: `sql` without trailing semicolons and blanks, when it is one query.
/// Preparing binds and optimizes the query (constants are folded: `repeat('x', 10^9)` is
/// built here), so this runs only where the query itself will run.
pub(crate) fn read_only(db: &Database, sql: &str) -> Result<String, Error> {
    let text = trimmed(sql)?;
    let c_text = CString::new(text)
        .map_err(|_| Error::Refused("the query contains a NUL character".into()))?;
    let connection = Connection::new(db)?;
    let mut extracted: ffi::duckdb_extracted_statements = ptr::null_mut();
    // SAFETY: the connection is open and the text NUL-terminated; `extracted` is destroyed
    // by the guard whatever the outcome.
    let count =
        unsafe { ffi::duckdb_extract_statements(connection.raw, c_text.as_ptr(), &mut extracted) };
    let extracted = Extracted(extracted);
    if count == 0 {
        // SAFETY: the error string belongs to `extracted`, read before it is destroyed.
        let message = unsafe { message(ffi::duckdb_extract_statements_error(extracted.0)) };
        return Err(Error::Invalid(
            message.unwrap_or_else(|| "the query does not parse".into()),
        ));
    }
    if count > 1 {
        return Err(Error::Refused(format!(
            "one statement at a time: this text has {count}"
        )));
    }
    let mut prepared: ffi::duckdb_prepared_statement = ptr::null_mut();
    // SAFETY: index 0 exists (count is 1); `prepared` is destroyed by its guard.
    let state = unsafe {
        ffi::duckdb_prepare_extracted_statement(connection.raw, extracted.0, 0, &mut prepared)
    };
    let prepared = Prepared(prepared);
    if state != ffi::DuckDBSuccess {
        // SAFETY: the error string belongs to `prepared`, read before it is destroyed.
        let message = unsafe { message(ffi::duckdb_prepare_error(prepared.0)) };
        return Err(Error::Invalid(
            message.unwrap_or_else(|| "the query does not bind".into()),
        ));
    }
    // SAFETY: `prepared` was prepared successfully.
    let kind = unsafe { ffi::duckdb_prepared_statement_type(prepared.0) };
    if kind != ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT {
        return Err(Error::Refused(format!(
            "only queries may run here, and this is {}: the benchmark database is read-only \
             from outside, with file and network access disabled",
            statement_name(kind)
        )));
    }
    Ok(text.to_string())
}

fn statement_name(kind: ffi::duckdb_statement_type) -> &'static str {
    const NAMES: [&str; 31] = [
        "an invalid statement",
        "a SELECT",
        "an INSERT",
        "an UPDATE",
        "an EXPLAIN",
        "a DELETE",
        "a PREPARE",
        "a CREATE",
        "an EXECUTE",
        "an ALTER",
        "a transaction statement",
        "a COPY",
        "an ANALYZE",
        "a SET VARIABLE",
        "a CREATE FUNCTION",
        "a DROP",
        "an EXPORT",
        "a PRAGMA",
        "a VACUUM",
        "a CALL",
        "a SET",
        "a LOAD",
        "a relation statement",
        "an INSTALL",
        "a logical plan",
        "an ATTACH",
        "a DETACH",
        "a multi-statement",
        "a COPY DATABASE",
        "an UPDATE EXTENSIONS",
        "a MERGE INTO",
    ];
    usize::try_from(kind)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("an unknown kind of statement")
}

/// # Safety
/// `text` is null or a NUL-terminated string that lives through the call.
unsafe fn message(text: *const std::os::raw::c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: per the contract above.
    Some(
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned(),
    )
}

struct Connection {
    raw: ffi::duckdb_connection,
}

impl Connection {
    fn new(db: &Database) -> Result<Self, Error> {
        let mut raw = ptr::null_mut();
        // SAFETY: `db` is open for as long as the borrow lasts.
        let state = unsafe { ffi::duckdb_connect(db.raw, &mut raw) };
        if state != ffi::DuckDBSuccess {
            return Err(Error::Engine("connecting to the database failed".into()));
        }
        Ok(Self { raw })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: `raw` came from duckdb_connect.
        unsafe { ffi::duckdb_disconnect(&mut self.raw) };
    }
}

struct Extracted(ffi::duckdb_extracted_statements);

impl Drop for Extracted {
    fn drop(&mut self) {
        // SAFETY: destroying a null or extracted set is allowed once.
        unsafe { ffi::duckdb_destroy_extracted(&mut self.0) };
    }
}

struct Prepared(ffi::duckdb_prepared_statement);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: destroying a null or prepared statement is allowed once.
        unsafe { ffi::duckdb_destroy_prepare(&mut self.0) };
    }
}
