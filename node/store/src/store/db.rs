//! The sled databases beside the packs: opened so that a handle being dropped or an unfinished
//! snapshot does not make a reopen fail.

/// How long opening a sled database waits for a handle of this process that is being
/// dropped to release the database's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the sled database at `path` with `config`.
///
/// - sled releases its file lock only once its background threads have let go of the last
///   handle, a moment after the handle is dropped; a reopen in that moment waits for it, for
///   at most [`LOCK_WAIT`], instead of failing.
/// - sled writes a snapshot as `snap.N.generating` and renames it when complete, but on
///   opening it also reads a `.generating` file left by a write that failed (a full disk) or
///   was cut short, and then refuses to open at all. Such a file is never a finished
///   snapshot: when sled refuses for corruption and one is there, it is removed and the open
///   tried again (sled then recovers from its log).
pub fn open_db(path: &std::path::Path, config: sled::Config) -> sled::Result<sled::Db> {
    let config = config.path(path);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut cleared = false;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Corruption { .. }) if !cleared && unfinished_snapshots(path)? > 0 => {
                cleared = true;
            }
            other => return other,
        }
    }
}

/// Removes the unfinished snapshots (`snap.*.generating`) in the sled directory `path`;
/// returns how many there were.
fn unfinished_snapshots(path: &std::path::Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing an unfinished sled snapshot");
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
