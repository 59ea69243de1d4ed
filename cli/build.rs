//! The binary finds DuckDB's library where the `ipfsbench-sql` build put it (or beside
//! itself, for a copied install): an rpath, so it runs without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_IPFSBENCH_DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_IPFSBENCH_DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:{dir}");
    }
}
