//! `get` as a tar stream: directories and files, names of any length (GNU long names, as
//! Kubo writes them), file content streamed from the store.

use std::io::{self, Write};
use std::path::PathBuf;

use cid::Cid;

use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::block::RAW;
use ipfsbench_store::unixfs::{self, ReadError};

/// The longest name a plain tar header holds.
const NAME_FIELD: usize = 100;

/// Writes `header` for `name`, preceded by a GNU long-name entry when the name does not fit.
fn write_header(header: &mut tar::Header, name: &str, w: &mut dyn Write) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.len() > NAME_FIELD {
        let mut long = tar::Header::new_gnu();
        long.set_entry_type(tar::EntryType::GNULongName);
        long.set_path("././@LongLink")?;
        long.set_mode(0o644);
        long.set_mtime(0);
        long.set_uid(0);
        long.set_gid(0);
        long.set_size(bytes.len() as u64 + 1);
        long.set_cksum();
        w.write_all(long.as_bytes())?;
        w.write_all(bytes)?;
        w.write_all(&[0])?;
        let pad = (512 - (bytes.len() + 1) % 512) % 512;
        w.write_all(&vec![0u8; pad])?;
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field.copy_from_slice(&bytes[..NAME_FIELD]);
    } else {
        header.set_path(name)?;
    }
    header.set_cksum();
    w.write_all(header.as_bytes())
}

/// Writes `cid` as tar entries under `name`, streaming file content.
pub(super) fn write(
    repo: &Repo,
    cid: &Cid,
    name: &str,
    w: &mut dyn Write,
) -> Result<(), ReadError> {
    let io_err = |e: io::Error| ReadError::Io {
        path: PathBuf::from(name),
        source: e,
    };
    let entries = unixfs::ls(repo.store(), cid);
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    let is_dir = match &entries {
        Ok(_) if cid.codec() == RAW => false,
        Ok(_) => {
            let data = repo.store().get(cid)?.ok_or(ReadError::NotFound(*cid))?;
            let node = ipfsbench_protocols::codec::pb::decode_node(&data).map_err(|e| {
                ReadError::Invalid {
                    cid: *cid,
                    reason: e.to_string(),
                }
            })?;
            let fs = ipfsbench_protocols::codec::pb::decode_unixfs(node.data.unwrap_or_default())
                .map_err(|e| ReadError::Invalid {
                cid: *cid,
                reason: e.to_string(),
            })?;
            fs.kind == ipfsbench_protocols::codec::pb::DataType::Directory
        }
        Err(_) => false,
    };
    if is_dir {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        write_header(&mut header, name, w).map_err(io_err)?;
        for e in entries? {
            if e.name.is_empty() || e.name.contains('/') || e.name == ".." || e.name == "." {
                return Err(ReadError::UnsafeName(e.name));
            }
            write(repo, &e.cid, &format!("{name}/{}", e.name), w)?;
        }
        return Ok(());
    }
    let size = unixfs::file_size(repo.store(), cid)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    write_header(&mut header, name, w).map_err(io_err)?;
    let written = unixfs::cat(repo.store(), cid, 0, None, w)?;
    if written != size {
        return Err(ReadError::Invalid {
            cid: *cid,
            reason: format!("filesize says {size} bytes, the DAG holds {written}"),
        });
    }
    let pad = (512 - size % 512) % 512;
    w.write_all(&vec![0u8; pad as usize]).map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_read_back_whole() {
        let name = format!("{}/{}", "d".repeat(150), "f".repeat(120));
        let mut out = Vec::new();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(3);
        write_header(&mut header, &name, &mut out).unwrap();
        out.extend_from_slice(b"abc");
        out.extend_from_slice(&[0u8; 509]);
        out.extend_from_slice(&[0u8; 1024]);
        let mut archive = tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), name);
        let mut data = String::new();
        io::Read::read_to_string(&mut entry, &mut data).unwrap();
        assert_eq!(data, "abc");
    }
}
