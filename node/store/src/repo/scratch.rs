//! Scratch space under `<repo>/tmp`: upload spools, benchmark stores, `exec` working
//! directories. Each is a directory that removes itself when its [`Dir`] is dropped; what a
//! crash leaves behind is removed when the repo is next opened, and by `repo gc`, which
//! spares the directories still in use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The scratch area of one open repo.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
    live: Arc<Mutex<HashSet<PathBuf>>>,
}

/// A scratch directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct Dir {
    dir: tempfile::TempDir,
    live: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Dir {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.dir.path());
    }
}

impl Scratch {
    /// The scratch area at `root`. Only the process holding the repo lock may call this:
    /// everything already there is left over from an earlier process and is removed.
    pub fn open(root: PathBuf) -> std::io::Result<Self> {
        let scratch = Self {
            root,
            live: Arc::new(Mutex::new(HashSet::new())),
        };
        let (entries, bytes) = scratch.sweep()?;
        if entries > 0 {
            tracing::info!(
                entries,
                bytes,
                "removed scratch files left by an earlier run"
            );
        }
        Ok(scratch)
    }

    /// A new directory whose name starts with `prefix`.
    pub fn dir(&self, prefix: &str) -> std::io::Result<Dir> {
        std::fs::create_dir_all(&self.root)?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.root)?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.path().to_path_buf());
        Ok(Dir {
            dir,
            live: Arc::clone(&self.live),
        })
    }

    /// Removes every entry that no live [`Dir`] holds; returns how many and their bytes.
    pub fn sweep(&self) -> std::io::Result<(u64, u64)> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(e),
        };
        let mut removed = (0, 0);
        for entry in entries {
            let path = entry?.path();
            // Checked per entry under the lock, so a directory made meanwhile is spared.
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.contains(&path) {
                continue;
            }
            let bytes = disk_usage(&path);
            let result = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            drop(live);
            match result {
                Ok(()) => {
                    removed.0 += 1;
                    removed.1 += bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| disk_usage(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_go_at_open_and_sweeps_spare_live_dirs() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path().join("tmp");
        std::fs::create_dir_all(root.join("add-crashed/sub")).unwrap();
        std::fs::write(root.join("add-crashed/sub/f"), vec![1u8; 1000]).unwrap();
        std::fs::write(root.join("stray"), b"x").unwrap();

        let scratch = Scratch::open(root.clone()).unwrap();
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);

        let live = scratch.dir("exec-").unwrap();
        std::fs::write(live.path().join("out"), b"kept").unwrap();
        std::fs::create_dir_all(root.join("bench-store-old")).unwrap();
        let (entries, _) = scratch.sweep().unwrap();
        assert_eq!(entries, 1);
        assert!(live.path().join("out").exists());

        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
        assert_eq!(scratch.sweep().unwrap(), (0, 0));
    }
}
