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
