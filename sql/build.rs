//! Provides the prebuilt DuckDB library this crate links against, so nothing of DuckDB's
//! C++ is compiled here.
//!
//! The library is DuckDB 1.5.6's `libduckdb.so` as the npm registry ships it inside
//! `@duckdb/node-bindings-linux-x64` (the tarball is checked against its pinned sha256). It is
//! fetched once into `<target dir>/duckdb-1.5.6/` (or taken from `$IPFSBENCH_DUCKDB_DIR`, a
//! directory holding `libduckdb.so`, for machines without access to the registry), and that
//! directory is put on the link search path. Cargo adds search paths inside the target
//! directory to the library path of `cargo run` and `cargo test`; the binary gets an rpath
//! to it from its own build script (`DEP_IPFSBENCH_DUCKDB_LIB_DIR`).

use std::path::PathBuf;
use std::process::Command;

const VERSION: &str = "1.5.6";
const TARBALL: &str =
    "https://registry.npmjs.org/@duckdb/node-bindings-linux-x64/-/node-bindings-linux-x64-1.5.6-r.1.tgz";
const SHA256: &str = "1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff";

/// Downloads the tarball, checks its hash and extracts `libduckdb.so`, with Python's
/// standard library only (the README's one prerequisite besides Rust).
const FETCH: &str = r#"
import hashlib, io, os, sys, tarfile, urllib.request
url, want, dest = sys.argv[1], sys.argv[2], sys.argv[3]
data = urllib.request.urlopen(url, timeout=120).read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"{url}: sha256 {got}, expected {want}")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
    lib = t.extractfile("package/libduckdb.so").read()
os.makedirs(dest, exist_ok=True)
tmp = os.path.join(dest, "libduckdb.so.part")
with open(tmp, "wb") as f:
    f.write(lib)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, os.path.join(dest, "libduckdb.so"))
"#;

fn main() {
    println!("cargo:rerun-if-env-changed=IPFSBENCH_DUCKDB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = match std::env::var_os("IPFSBENCH_DUCKDB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join(format!("duckdb-{VERSION}")),
    };
    let lib = dir.join("libduckdb.so");
    if !lib.exists() {
        let target = std::env::var("TARGET").unwrap_or_default();
        if target != "x86_64-unknown-linux-gnu" {
            fail(&format!(
                "no prebuilt DuckDB for {target}: set IPFSBENCH_DUCKDB_DIR to a directory \
                 holding libduckdb.so {VERSION}"
            ));
        }
        let status = Command::new("python3")
            .args(["-c", FETCH, TARBALL, SHA256])
            .arg(&dir)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => fail(&format!("fetching {TARBALL} failed ({s})")),
            Err(e) => fail(&format!("running python3 to fetch DuckDB: {e}")),
        }
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rerun-if-changed={}", lib.display());
    // `cargo run` and `cargo test` put `<profile>/deps` on the library path: a link there
    // lets every test binary of the workspace load the library.
    let deps = profile_dir().join("deps");
    let beside = deps.join("libduckdb.so");
    if !beside.exists() {
        let _ = std::fs::create_dir_all(&deps);
        if std::fs::hard_link(&lib, &beside).is_err() {
            if let Err(e) = std::fs::copy(&lib, &beside) {
                fail(&format!("copying libduckdb.so to {}: {e}", deps.display()));
            }
        }
    }
    println!("cargo:lib_dir={}", dir.display());
}

/// `<target dir>[/<triple>]/<profile>`, from `OUT_DIR` = `<that>/build/<pkg>/out`.
fn profile_dir() -> PathBuf {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    match out.ancestors().nth(3) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => fail(&format!("unexpected OUT_DIR {}", out.display())),
    }
}

/// `<target dir>`: the profile directory's parent.
fn target_dir() -> PathBuf {
    match profile_dir().parent() {
        Some(dir) => dir.to_path_buf(),
        None => fail("the profile directory has no parent"),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("ipfsbench-sql: {message}");
    std::process::exit(1)
}
