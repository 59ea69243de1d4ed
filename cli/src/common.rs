//! What `add` and `get` do alike, on a repo opened directly or through a running daemon.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::args::AddArgs;

/// Refuses, before anything is added, a missing path or a directory without `-r`.
pub(crate) fn check_add_paths(args: &AddArgs) -> Result<()> {
    for path in &args.paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() && !args.recursive {
            bail!(
                "{} is a directory; use -r to add directories",
                path.display()
            );
        }
    }
    Ok(())
}

/// Prints `(cid, name)` entries as `ipfs add` does, honouring `-q` and `-Q`.
pub(crate) fn print_added(
    args: &AddArgs,
    entries: &[(String, String)],
    out: &mut dyn Write,
) -> Result<()> {
    for (i, (cid, name)) in entries.iter().enumerate() {
        let last = i + 1 == entries.len();
        if args.quieter && !last {
            continue;
        }
        if args.quiet || args.quieter {
            writeln!(out, "{cid}")?;
        } else {
            writeln!(out, "added {cid} {name}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Where `get PATH [-o OUTPUT]` writes: OUTPUT, or the last name of PATH; never over
/// something that exists.
pub(crate) fn get_destination(path: &str, output: Option<PathBuf>) -> Result<PathBuf> {
    let dest = output.unwrap_or_else(|| {
        PathBuf::from(
            path.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(path),
        )
    });
    if dest.symlink_metadata().is_ok() {
        bail!("{} already exists", dest.display());
    }
    eprintln!("Saving file(s) to {}", dest.display());
    Ok(dest)
}
