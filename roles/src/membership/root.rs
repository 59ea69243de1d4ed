//! The cluster's root: made by `cluster init` on the first master, exported to a file and
//! imported by a standby master. Everything lives under `<repo>/cluster/`:
//!
//! - `root.key`: the root's Ed25519 key (protobuf, mode 0600, like the node's identity): it
//!   signs certificates and is never printed or sent;
//! - `cluster.json`: the cluster's name, the root's public key, whether it is private;
//! - `member.cert`: this node's own certificate, signed by the root.
//!
//! A private cluster's swarm key is written to `<repo>/swarm.key`, where the daemon reads it.
//! Each command writes into a scratch directory and renames it into place, so a failure
//! leaves no half-made cluster.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ipfsbench_core::network::SwarmKey;
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::membership::{Certificate, Grant};
use ipfsbench_protocols::task::{valid_cluster_name, WirePeer};
use libp2p::identity::Keypair;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// How long a certificate `cluster init` or `import` issues to its own node holds.
pub const SELF_CERT_MS: u64 = 365 * 24 * 3600 * 1000;
/// What an export file's first line says.
const EXPORT_HEADER: &str = "# ipfsbench cluster root: keep this file secret";

/// Why a cluster command failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repo already belongs to a cluster.
    #[error("{0} already holds a cluster root (cluster {1:?}); nothing was changed")]
    Exists(PathBuf, String),
    /// The repo belongs to no cluster made with `cluster init`.
    #[error("this repo holds no cluster root: run `cluster init` (or `cluster root import`)")]
    NoRoot,
    /// The name is not a cluster name.
    #[error("{0:?} is not a cluster name: 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    /// A private cluster was asked where a swarm key of another network already is.
    #[error("{0} already holds a swarm key; remove it or leave out --private")]
    SwarmKeyExists(PathBuf),
    /// A file is not what it should be.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Certificate(#[from] ipfsbench_protocols::membership::Error),
    /// Reading or writing failed (the failure is in the message, once: it is not also
    /// chained as a source).
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What `cluster.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterInfo {
    /// The cluster's name (its topics are `/ipfsbench/<name>/...`).
    pub name: String,
    /// The root's public key, protobuf, base64.
    pub root: String,
    /// Whether the cluster is a private network (its swarm key in `<repo>/swarm.key`).
    pub private: bool,
    /// Masters to dial at every start (`/p2p/` addresses), as the invite this node joined
    /// with named them.
    #[serde(default)]
    pub masters: Vec<String>,
}

/// A cluster root as held by a master.
pub struct Root {
    /// The cluster.
    pub info: ClusterInfo,
    key: Keypair,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What issuing invites and admitting members needs: the root, and a private cluster's
/// swarm key.
#[derive(Debug)]
pub struct Issuer {
    /// The cluster's root.
    pub root: Root,
    /// The swarm key, when the cluster is private.
    pub swarm_key: Option<[u8; 32]>,
}

/// The cluster this repo belongs to (made, imported or joined), from `cluster.json`.
///
/// # Errors
///
/// When the file exists but does not read.
pub fn info(repo: &Repo) -> Result<Option<ClusterInfo>, Error> {
    let path = dir(repo).join("cluster.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Malformed {
            path,
            reason: e.to_string(),
        })
}

/// `<repo>/cluster`.
pub fn dir(repo: &Repo) -> PathBuf {
    repo.path().join("cluster")
}

/// Base64 with padding, as `cluster.json` keeps the root's public key.
pub(crate) fn base64(bytes: &[u8]) -> String {
    multibase::encode(multibase::Base::Base64, bytes)[1..].to_string()
}

fn unbase64(text: &str, path: &Path) -> Result<Vec<u8>, Error> {
    multibase::Base::Base64
        .decode(text.trim())
        .map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            reason: format!("not base64: {e}"),
        })
}

impl Root {
    /// A new root for the cluster `name`.
    fn generate(name: &str, private: bool) -> Self {
        let key = Keypair::generate_ed25519();
        let info = ClusterInfo {
            name: name.to_string(),
            root: base64(&key.public().encode_protobuf()),
            private,
            masters: Vec::new(),
        };
        Self { info, key }
    }

    /// The root this repo holds.
    ///
    /// # Errors
    ///
    /// [`Error::NoRoot`], or a file that does not read.
    pub fn open(repo: &Repo) -> Result<Self, Error> {
        let dir = dir(repo);
        let key_path = dir.join("root.key");
        if !key_path.exists() {
            return Err(Error::NoRoot);
        }
        let info_path = dir.join("cluster.json");
        let text = fs::read_to_string(&info_path).map_err(io(&info_path))?;
        let info: ClusterInfo = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: info_path.clone(),
            reason: e.to_string(),
        })?;
        let bytes = fs::read(&key_path).map_err(io(&key_path))?;
        let key = Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Malformed {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        if base64(&key.public().encode_protobuf()) != info.root {
            return Err(Error::Malformed {
                path: info_path,
                reason: "its root is not the key in root.key".into(),
            });
        }
        Ok(Self { info, key })
    }

    /// The root's public key (protobuf encoding).
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public().encode_protobuf()
    }

    /// A private cluster's swarm key (the 32 bytes), as kept with the root.
    ///
    /// # Errors
    ///
    /// When the cluster is private and its key does not read.
    pub fn swarm_key(&self, repo: &Repo) -> Result<Option<[u8; 32]>, Error> {
        if !self.info.private {
            return Ok(None);
        }
        let path = dir(repo).join("swarm.key");
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let bad = || Error::Malformed {
            path: path.clone(),
            reason: "not a swarm key".into(),
        };
        let hex = text.lines().nth(2).ok_or_else(bad)?.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Some(key))
    }

    /// A certificate for `peer`, signed by this root.
    ///
    /// # Errors
    ///
    /// When it breaks a bound (too many tags).
    pub fn certify(
        &self,
        peer: libp2p::PeerId,
        grant: Grant,
        tags: Vec<String>,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> Result<Vec<u8>, Error> {
        let cert = Certificate {
            cluster: self.info.name.clone(),
            peer: WirePeer(peer),
            grant,
            tags,
            issued_ms: now_ms,
            expires_ms: now_ms.saturating_add(lifetime_ms),
        };
        Ok(cert.sign(&self.key)?.encode())
    }

    /// A revocation of `peer`, signed by this root.
    ///
    /// # Errors
    ///
    /// A reason past its bound.
    pub fn revoke(
        &self,
        peer: libp2p::PeerId,
        reason: &str,
        now_ms: u64,
    ) -> Result<Vec<u8>, Error> {
        let revocation = ipfsbench_protocols::membership::Revocation {
            cluster: self.info.name.clone(),
            peer: WirePeer(peer),
            revoked_ms: now_ms,
            reason: reason.to_string(),
        };
        Ok(revocation.sign(&self.key)?.encode())
    }

    /// Writes the root into `repo` with a master's certificate for the repo's own node,
    /// all at once.
    fn install(&self, repo: &Repo, swarm_key: Option<&str>, now_ms: u64) -> Result<(), Error> {
        let target = dir(repo);
        if target.exists() {
            return Err(Error::Exists(target, self.info.name.clone()));
        }
        let swarm_path = repo.path().join("swarm.key");
        if swarm_key.is_some() && swarm_path.exists() {
            return Err(Error::SwarmKeyExists(swarm_path));
        }
        let key = self
            .key
            .to_protobuf_encoding()
            .map_err(|e| Error::Malformed {
                path: target.join("root.key"),
                reason: e.to_string(),
            })?;
        let info = serde_json::to_vec_pretty(&self.info).unwrap_or_default();
        let cert = self.certify(
            repo.peer_id(),
            Grant::Master,
            Vec::new(),
            now_ms,
            SELF_CERT_MS,
        )?;
        let files: [(&str, &[u8]); 3] = [
            ("root.key", &key),
            ("cluster.json", &info),
            ("member.cert", &cert),
        ];
        install_dir(repo, &files, swarm_key)
    }
}

/// Writes `files` (name and bytes) as `<repo>/cluster/`, all at once: staged under
/// `<repo>/tmp`, then renamed into place. A private cluster's `swarm_key` is kept there too
/// and copied to `<repo>/swarm.key`, where the daemon reads it, unless one is there.
pub(crate) fn install_dir(
    repo: &Repo,
    files: &[(&str, &[u8])],
    swarm_key: Option<&str>,
) -> Result<(), Error> {
    let target = dir(repo);
    let scratch = repo.scratch_dir("cluster-").map_err(|e| Error::Malformed {
        path: repo.path().join("tmp"),
        reason: e.to_string(),
    })?;
    let staged = scratch.path().join("cluster");
    fs::create_dir(&staged).map_err(io(&staged))?;
    for (name, bytes) in files {
        write_new(&staged.join(name), bytes)?;
    }
    if let Some(text) = swarm_key {
        write_new(&staged.join("swarm.key"), text.as_bytes())?;
    }
    fs::rename(&staged, &target).map_err(io(&target))?;
    let swarm_path = repo.path().join("swarm.key");
    if swarm_key.is_some() && !swarm_path.exists() {
        fs::copy(target.join("swarm.key"), &swarm_path).map_err(io(&swarm_path))?;
    }
    Ok(())
}

/// Replaces this node's certificate (`<repo>/cluster/member.cert`) with a renewed one, whole:
/// written and synced beside it, then renamed over it.
///
/// # Errors
///
/// A failed write; the old certificate is then left as it was.
pub fn replace_certificate(repo: &Repo, certificate: &[u8]) -> Result<(), Error> {
    let target = dir(repo).join("member.cert");
    let staged = dir(repo).join("member.cert.new");
    let _ = fs::remove_file(&staged);
    write_new(&staged, certificate)?;
    fs::rename(&staged, &target).map_err(io(&target))
}

/// Writes a new file readable by its owner only, synced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(path))
}

/// A fresh private network's key, in Kubo's `swarm.key` format.
fn new_swarm_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SwarmKey::new(bytes).to_string()
}

/// `cluster init`: a new cluster `name` whose root this repo holds, this node its first
/// master; with `private`, a new swarm key too.
///
/// # Errors
///
/// A bad name, a repo that already holds a root (or, with `private`, a swarm key), or a
/// failed write; nothing is left written.
pub fn init(repo: &Repo, name: &str, private: bool, now_ms: u64) -> Result<ClusterInfo, Error> {
    if !valid_cluster_name(name) {
        return Err(Error::BadName(name.to_string()));
    }
    let root = Root::generate(name, private);
    let swarm_key = private.then(new_swarm_key);
    root.install(repo, swarm_key.as_deref(), now_ms)?;
    Ok(root.info)
}

/// `cluster root export FILE`: the root (and a private cluster's swarm key) in a new file,
/// readable by its owner only, for `cluster root import` on a standby master.
///
/// # Errors
///
/// No root here, the file exists, or a failed write.
pub fn export(repo: &Repo, file: &Path) -> Result<(), Error> {
    let root = Root::open(repo)?;
    let key = root
        .key
        .to_protobuf_encoding()
        .map_err(|e| Error::Malformed {
            path: dir(repo).join("root.key"),
            reason: e.to_string(),
        })?;
    let mut text = format!(
        "{EXPORT_HEADER}\nname = {}\nprivate = {}\nkey = {}\n",
        root.info.name,
        root.info.private,
        base64(&key)
    );
    if root.info.private {
        let path = dir(repo).join("swarm.key");
        let swarm = fs::read_to_string(&path).map_err(io(&path))?;
        text.push_str(&format!("swarm = {}\n", base64(swarm.as_bytes())));
    }
    write_new(file, text.as_bytes())
}

/// `cluster root import FILE`: this repo holds the exported root, its node a master of the
/// cluster.
///
/// # Errors
///
/// A file that is not an export, a repo that already holds a root, or a failed write.
pub fn import(repo: &Repo, file: &Path, now_ms: u64) -> Result<ClusterInfo, Error> {
    let text = fs::read_to_string(file).map_err(io(file))?;
    let bad = |reason: &str| Error::Malformed {
        path: file.to_path_buf(),
        reason: reason.to_string(),
    };
    if !text.starts_with(EXPORT_HEADER) {
        return Err(bad("not a cluster root export"));
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .map(str::to_string)
    };
    let name = field("name").ok_or_else(|| bad("no name"))?;
    if !valid_cluster_name(&name) {
        return Err(Error::BadName(name));
    }
    let private = field("private").as_deref() == Some("true");
    let key = unbase64(&field("key").ok_or_else(|| bad("no key"))?, file)?;
    let key = Keypair::from_protobuf_encoding(&key).map_err(|_| bad("the key does not read"))?;
    let swarm_key = match field("swarm") {
        Some(b) => {
            let text = String::from_utf8(unbase64(&b, file)?).map_err(|_| bad("swarm key"))?;
            text.parse::<SwarmKey>()
                .map_err(|_| bad("the swarm key does not read"))?;
            Some(text)
        }
        None if private => return Err(bad("a private cluster's export without its swarm key")),
        None => None,
    };
    let root = Root {
        info: ClusterInfo {
            name,
            root: base64(&key.public().encode_protobuf()),
            private,
            masters: Vec::new(),
        },
        key,
    };
    root.install(repo, swarm_key.as_deref(), now_ms)?;
    Ok(root.info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_protocols::membership::SignedCertificate;
    use libp2p::identity::PublicKey;
    use std::os::unix::fs::PermissionsExt;

    fn repo(dir: &tempfile::TempDir, name: &str) -> Repo {
        Repo::init(&dir.path().join(name)).unwrap()
    }

    /// The node's own certificate, verified under the cluster's root.
    fn own_certificate(repo: &Repo, info: &ClusterInfo) -> Certificate {
        let bytes = fs::read(dir(repo).join("member.cert")).unwrap();
        let root =
            PublicKey::try_decode_protobuf(&unbase64(&info.root, Path::new("")).unwrap()).unwrap();
        SignedCertificate::decode(&bytes)
            .unwrap()
            .verify_for(&root, &info.name, &repo.peer_id(), 1_000)
            .unwrap()
    }

    #[test]
    fn init_makes_a_root_and_this_node_its_first_master() {
        let tmp = tempfile::tempdir().unwrap();
        let a = repo(&tmp, "a");
        let info = init(&a, "lab", false, 1_000).unwrap();
        let cert = own_certificate(&a, &info);
        assert_eq!((cert.grant, cert.cluster.as_str()), (Grant::Master, "lab"));
        let mode = fs::metadata(dir(&a).join("root.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!a.path().join("swarm.key").exists());
        // Once only; a bad name writes nothing.
        assert!(matches!(
            init(&a, "lab", false, 1_000),
            Err(Error::Exists(..))
        ));
        let b = repo(&tmp, "b");
        assert!(matches!(
            init(&b, "a/b", false, 1_000),
            Err(Error::BadName(_))
        ));
        assert!(!dir(&b).exists());
        assert!(matches!(Root::open(&b), Err(Error::NoRoot)));
    }

    #[test]
    fn a_standby_master_imports_the_root_of_a_private_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (repo(&tmp, "a"), repo(&tmp, "b"));
        let info = init(&a, "lab", true, 1_000).unwrap();
        let swarm = fs::read_to_string(a.path().join("swarm.key")).unwrap();
        let parsed = swarm.parse::<SwarmKey>().unwrap();
        let bytes = Root::open(&a).unwrap().swarm_key(&a).unwrap().unwrap();
        assert_eq!(SwarmKey::new(bytes).to_string(), parsed.to_string());
        let file = tmp.path().join("root.export");
        export(&a, &file).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            matches!(export(&a, &file), Err(Error::Io { .. })),
            "never overwritten"
        );
        let imported = import(&b, &file, 1_000).unwrap();
        assert_eq!(imported, info);
        assert_eq!(
            fs::read_to_string(b.path().join("swarm.key")).unwrap(),
            swarm
        );
        let cert = own_certificate(&b, &info);
        assert_eq!((cert.peer.0, cert.grant), (b.peer_id(), Grant::Master));
        // Both masters sign as the same root.
        assert_eq!(Root::open(&b).unwrap().info, Root::open(&a).unwrap().info);
    }

    #[test]
    fn an_import_that_is_not_an_export_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let b = repo(&tmp, "b");
        let file = tmp.path().join("junk");
        for text in [
            "hello".to_string(),
            format!("{EXPORT_HEADER}\nname = lab\n"),
            format!("{EXPORT_HEADER}\nname = lab\nprivate = false\nkey = AAAA\n"),
            format!("{EXPORT_HEADER}\nname = lab\nprivate = true\nkey = AAAA\n"),
        ] {
            fs::write(&file, text).unwrap();
            assert!(import(&b, &file, 1_000).is_err());
            assert!(!dir(&b).exists());
            assert!(!b.path().join("swarm.key").exists());
        }
    }
}
