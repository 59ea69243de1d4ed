//! The engine's sandbox: what a caller from outside may and may not run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipfsbench_sql::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use ipfsbench_sql::{ColumnType, Engine, Error, Field, Format, Limits, TableSchema, Value};

const ROWS: TableSchema = TableSchema {
    name: "rows",
    fields: &[
        Field::required("name", ColumnType::Text, "a name"),
        Field::optional("n", ColumnType::Int64, "a count"),
        Field::optional("x", ColumnType::Float64, "a figure"),
    ],
};

fn engine(dir: &std::path::Path, timeout: Duration) -> Engine {
    let limits = Limits {
        timeout,
        max_rows: 1000,
        ..Limits::default()
    };
    Engine::open(&[dir.to_path_buf()], limits).expect("engine opens")
}

fn batch(n: usize) -> RecordBatch {
    let names: StringArray = (0..n).map(|i| Some(format!("r{i}"))).collect();
    let counts = Int64Array::from((0..n as i64).map(Some).collect::<Vec<_>>());
    let xs = Float64Array::from((0..n).map(|i| Some(i as f64 / 2.0)).collect::<Vec<_>>());
    RecordBatch::try_new(
        ROWS.arrow(),
        vec![Arc::new(names), Arc::new(counts), Arc::new(xs)],
    )
    .expect("batch fits the schema")
}

#[test]
fn parquet_written_reads_back_through_a_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_secs(30));
    let file = dir.path().join("part.parquet");
    assert_eq!(
        engine
            .write_parquet(&ROWS, vec![batch(5000)], &file)
            .expect("written"),
        5000
    );
    let list = ipfsbench_sql::literal(&file.display().to_string());
    engine
        .execute_trusted(&format!(
            "CREATE VIEW rows AS SELECT * FROM read_parquet([{list}])"
        ))
        .expect("view");
    let answer = engine
        .query("SELECT count(*) AS n, sum(n) AS total, max(x) AS top FROM rows")
        .expect("query runs");
    assert_eq!(
        answer.rows,
        vec![vec![
            Value::Int(5000),
            Value::Int(12_497_500),
            Value::Float(2499.5)
        ]]
    );
    let cut = engine
        .query("SELECT * FROM rows ORDER BY n")
        .expect("query runs");
    assert_eq!(cut.rows.len(), 1000);
    assert!(cut.truncated);
    assert_eq!(cut.rows[3][0], Value::Text("r3".into()));
    let table = answer.render(Format::Table);
    assert!(table.contains("12497500"), "{table}");
    assert!(answer
        .render(Format::Csv)
        .starts_with("n,total,top\r\n5000,12497500,2499.5"));
}

#[test]
fn only_single_queries_run_and_files_stay_out_of_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_secs(30));
    engine
        .execute_trusted("CREATE TABLE kept AS SELECT 1 AS one")
        .expect("trusted setup");
    let refused = [
        "CREATE TABLE t (a INT)",
        "DROP TABLE kept",
        "INSERT INTO kept VALUES (2)",
        "COPY kept TO '/tmp/ipfsbench-sql-copy.csv'",
        "ATTACH '/tmp/ipfsbench-sql-attach.db' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA database_list",
        "SET threads = 64",
        "SELECT 1; DROP TABLE kept",
        "SELECT 1; SELECT 2",
        "",
        "   ;  ",
    ];
    for sql in refused {
        // Refused by the check, or (COPY, ATTACH: their paths are bound first) by the
        // sandbox; either way the caller's fault and nothing runs.
        match engine.query(sql) {
            Err(e) if e.is_caller_fault() => {}
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }
    for sql in [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('https://example.invalid/x.parquet')",
        "SELEC 1",
    ] {
        let err = engine.query(sql).expect_err(sql);
        assert!(err.is_caller_fault(), "{sql}: {err}");
    }
    // Still serving, and nothing was changed.
    let answer = engine.query("SELECT count(*) FROM kept;").expect("serves");
    assert_eq!(answer.rows, vec![vec![Value::Int(1)]]);
    assert!(!std::path::Path::new("/tmp/ipfsbench-sql-copy.csv").exists());
}

#[test]
fn a_query_that_runs_forever_is_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_millis(500));
    let clock = Instant::now();
    let err = engine
        .query("SELECT sum(range % 7) FROM range(10000000000000)")
        .expect_err("stopped");
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(
        clock.elapsed() < Duration::from_secs(20),
        "{:?}",
        clock.elapsed()
    );
    let answer = engine.query("SELECT 42").expect("serves after");
    assert_eq!(answer.rows, vec![vec![Value::Int(42)]]);
}

#[test]
fn table_functions_off_the_list_and_side_effects_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_secs(30));
    let logs = dir.path().join("logs");
    let refused = [
        format!(
            "SELECT * FROM enable_logging(storage='file', storage_path={})",
            ipfsbench_sql::literal(&logs.display().to_string())
        ),
        "SELECT * FROM enable_profiling()".into(),
        "SELECT * FROM query('SELECT 1')".into(),
        "SELECT * FROM query_table('kept')".into(),
        "SELECT * FROM duckdb_settings()".into(),
        "SELECT * FROM checkpoint()".into(),
        "SELECT * FROM (SELECT * FROM read_text('x'))".into(),
        "WITH t AS (SELECT * FROM glob('*')) SELECT * FROM t".into(),
        "SELECT write_log('x')".into(),
        "SELECT (SELECT setseed(0.5))".into(),
        "SELECT list_transform([1], x -> nextval('s'))".into(),
        "SELECT * FROM 'part.parquet'".into(),
        "SELECT * FROM '/etc/passwd'".into(),
        "SELECT * FROM (PIVOT (SELECT 1 AS a, 2 AS b) ON a USING sum(b))".into(),
    ];
    for sql in &refused {
        match engine.query(sql) {
            Err(Error::Refused(_)) => {}
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }
    assert!(!logs.exists(), "nothing was logged to a file");
    // What remains allowed runs.
    let answer = engine
        .query(
            "SELECT count(*) AS n, sum(random() * 0) AS z FROM range(10) \
             JOIN generate_series(1, 2) g ON true, unnest([1]) u",
        )
        .expect("allowed functions run");
    assert_eq!(answer.rows[0][0], Value::Int(20));
}

#[test]
fn the_function_lists_match_what_duckdb_has() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_secs(30));
    let list = |sql: &str| -> Vec<String> {
        engine
            .answer(sql)
            .expect("introspection")
            .rows
            .into_iter()
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect()
    };
    let tables = list("SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN ('table', 'table_macro')");
    for name in ipfsbench_sql::allow::TABLE_FUNCTIONS {
        assert!(
            tables.iter().any(|t| t == name),
            "{name} is not a table function of this DuckDB"
        );
    }
    // Every table function off the list is refused by a query that names it.
    for name in tables
        .iter()
        .filter(|t| !ipfsbench_sql::allow::TABLE_FUNCTIONS.contains(&t.as_str()))
    {
        match engine.query(&format!("SELECT * FROM {}()", ipfsbench_sql::ident(name))) {
            Err(Error::Refused(_)) => {}
            other => panic!("{name}() was not refused: {other:?}"),
        }
    }
    // Every function DuckDB marks as having side effects is denied or known to only read.
    let marked =
        list("SELECT DISTINCT function_name FROM duckdb_functions() WHERE has_side_effects");
    for name in &marked {
        assert!(
            ipfsbench_sql::allow::DENIED_FUNCTIONS.contains(&name.as_str())
                || ipfsbench_sql::allow::HARMLESS_SIDE_EFFECTS.contains(&name.as_str()),
            "{name} has side effects and is on neither list"
        );
    }
    for name in ipfsbench_sql::allow::DENIED_FUNCTIONS {
        assert!(
            marked.iter().any(|m| m == name),
            "{name} is not marked by DuckDB"
        );
    }
}

#[test]
fn no_temporary_directory_is_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_secs(30));
    let answer = engine
        .query("SELECT current_setting('temp_directory') AS t, current_setting('allowed_directories')::VARCHAR AS a")
        .expect("settings read");
    assert_eq!(answer.rows[0][0], Value::Text(String::new()));
    // Only the directory the engine was given (DuckDB's default `.tmp` would be added).
    let allowed = answer.rows[0][1].as_str().expect("text").to_string();
    let root = dir.path().canonicalize().expect("canonical");
    assert_eq!(allowed, format!("[{}/]", root.display()));
}

#[test]
fn answers_are_cut_at_the_byte_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        max_rows: 1000,
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    let engine = Engine::open(&[dir.path().to_path_buf()], limits).expect("engine opens");
    let answer = engine
        .query("SELECT repeat('x', 100000) AS s FROM range(100)")
        .expect("answers");
    assert!(answer.truncated);
    assert!(
        (9..=10).contains(&answer.rows.len()),
        "{} rows of 100 kB within 1 MiB",
        answer.rows.len()
    );
    let file = dir.path().join("answer.parquet");
    let (rows, truncated) = engine
        .query_to_parquet(
            "SELECT repeat('x', 100000) AS s FROM range(100)",
            &file,
            None,
        )
        .expect("written");
    assert!(truncated);
    assert!((9..=10).contains(&rows), "{rows}");
    let back = engine
        .answer(&format!(
            "SELECT count(*) FROM read_parquet({})",
            ipfsbench_sql::literal(&file.display().to_string())
        ))
        .expect("reads back");
    assert_eq!(back.rows[0][0], Value::Int(rows as i64));
    // Small answers are whole.
    let small = engine
        .query("SELECT 1 AS a FROM range(1000)")
        .expect("answers");
    assert!(!small.truncated);
    assert_eq!(small.rows.len(), 1000);
}

#[test]
fn csv_carries_every_digit_of_a_float() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path(), Duration::from_secs(30));
    let answer = engine
        .query("SELECT 0.010665161::DOUBLE AS a, 1e-9::DOUBLE AS b, 123456.789012345::DOUBLE AS c, 2.0::DOUBLE AS d")
        .expect("answers");
    let csv = answer.render(Format::Csv);
    let line = csv.lines().nth(1).expect("a row");
    let back: Vec<f64> = line
        .split(',')
        .map(|c| c.parse().expect("a float"))
        .collect();
    assert_eq!(
        back,
        vec![0.010665161, 1e-9, 123456.789012345, 2.0],
        "{csv}"
    );
}
