//! Locating the `ipfsbench-node` binary.
//!
//! Cargo cannot build another package's binary for a test or bench of this package, so it must
//! be built beforehand in the same profile: `cargo build -p ipfsbench-node` for tests,
//! `cargo build --release -p ipfsbench-node` for benchmarks. A stale binary is used as is.

use std::env;
use std::path::{Path, PathBuf};

/// Environment variable naming the `ipfsbench-node` binary explicitly.
pub const NODE_BIN_ENV: &str = "IPFSBENCH_NODE_BIN";

/// The `ipfsbench-node` binary to test.
///
/// `$IPFSBENCH_NODE_BIN` if set; otherwise the binary in the cargo profile directory of the
/// running test or bench executable (which lives in `target/<profile>/deps/`, the binary in
/// `target/<profile>/`).
///
/// # Panics
///
/// When the binary does not exist, with a message saying how to build it.
pub fn ipfsbench_node_binary() -> PathBuf {
    if let Some(path) = env::var_os(NODE_BIN_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{NODE_BIN_ENV}={} does not name an existing file",
            path.display()
        );
        return path;
    }
    let profile_dir = match profile_dir() {
        Ok(dir) => dir,
        Err(reason) => panic!(
            "cannot locate the ipfsbench-node binary ({reason}); set {NODE_BIN_ENV} to its path"
        ),
    };
    let binary = profile_dir.join(format!("ipfsbench-node{}", env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        let build = match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") => "cargo build -p ipfsbench-node".to_owned(),
            Some("release") => "cargo build --release -p ipfsbench-node".to_owned(),
            Some(profile) => format!("cargo build --profile {profile} -p ipfsbench-node"),
            None => "cargo build -p ipfsbench-node".to_owned(),
        };
        panic!(
            "the ipfsbench-node binary is missing at {}: build it first with `{build}` \
             (same CARGO_TARGET_DIR and profile as this test), or set {NODE_BIN_ENV}",
            binary.display()
        );
    }
    binary
}

/// The cargo profile directory (`target/<profile>`) of the running executable.
///
/// # Errors
///
/// When the path of the running executable cannot be determined.
pub fn profile_dir() -> Result<PathBuf, String> {
    let exe = env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let in_subdir = matches!(
        dir.file_name().and_then(|name| name.to_str()),
        Some("deps" | "examples")
    );
    Ok(match (in_subdir, dir.parent()) {
        (true, Some(parent)) => parent.to_path_buf(),
        _ => dir.to_path_buf(),
    })
}

/// The cargo target directory of the running executable (the parent of [`profile_dir`]).
///
/// # Errors
///
/// When the path of the running executable cannot be determined.
pub fn target_dir() -> Result<PathBuf, String> {
    let profile = profile_dir()?;
    Ok(profile
        .parent()
        .map_or_else(|| profile.clone(), Path::to_path_buf))
}
