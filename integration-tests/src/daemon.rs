//! Running `ipfsbench-node` daemons as child processes on loopback, for multi-node tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bin::ipfsbench_node_binary;
pub use crate::tuning::{Configure, Tuning};

/// How long a daemon may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A loopback TCP port that was free a moment ago, for a node that must come back on the
/// same address after a restart.
///
/// # Panics
///
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Initialises a repo at `repo`; returns its PeerId (so that peers can be told to trust it
/// before it starts).
///
/// # Panics
///
/// When `init` fails.
pub fn init_repo(repo: &Path) -> String {
    let init = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(repo)
        .arg("init")
        .output()
        .expect("run init");
    assert!(init.status.success(), "init failed: {init:?}");
    let config = std::fs::read_to_string(repo.join("config.toml")).expect("config.toml");
    let line = config
        .lines()
        .find(|l| l.starts_with("peer_id = "))
        .expect("peer_id in config.toml");
    line.trim_start_matches("peer_id = ")
        .trim_matches('"')
        .to_string()
}

/// A daemon in its own temporary repo: TCP on an ephemeral loopback port (unless told
/// otherwise), API on an ephemeral port, mDNS off (unless its flags say `--mdns true`).
/// Killed when dropped.
pub struct Node {
    child: Option<Child>,
    repo: PathBuf,
    _dir: tempfile::TempDir,
    /// The node's PeerId.
    pub peer_id: String,
    /// A dialable address of the node, ending in `/p2p/<peer id>`.
    pub addr: String,
    role: String,
    listen: String,
    extra: Vec<String>,
    /// The network namespace it runs in (and its CLI calls), if any.
    netns: Option<String>,
}

impl Node {
    /// Starts a daemon with `role`, extra flags appended.
    ///
    /// # Panics
    ///
    /// When the daemon does not come up in time.
    pub fn start(role: &str, extra: &[&str]) -> Node {
        Self::start_configured(role, extra, Tuning::NONE)
    }

    /// Starts a daemon with `role`, extra flags appended, once `configure` (a [`Tuning`] of
    /// its `config.toml`, or a closure) has prepared its freshly initialised repo.
    ///
    /// # Panics
    ///
    /// When the daemon does not come up in time.
    pub fn start_configured(role: &str, extra: &[&str], configure: impl Configure) -> Node {
        Self::launch(None, "/ip4/127.0.0.1/tcp/0", role, extra, configure)
    }

    /// Like [`Node::start_configured`], with the repo at `repo` (a directory that need not
    /// exist yet, on a file system of the test's choosing).
    ///
    /// # Panics
    ///
    /// When the daemon does not come up in time.
    pub fn start_in(repo: &Path, role: &str, extra: &[&str], configure: impl Configure) -> Node {
        Self::launch(Some(repo), "/ip4/127.0.0.1/tcp/0", role, extra, configure)
    }

    /// Like [`Node::start_in`], inside the network namespace `ns`, listening on TCP at `ip`
    /// (see [`crate::netns`]); its CLI calls run in the namespace too.
    ///
    /// # Panics
    ///
    /// When the daemon does not come up in time.
    pub fn start_in_netns(
        ns: &str,
        ip: &str,
        repo: &Path,
        role: &str,
        extra: &[&str],
        configure: impl Configure,
    ) -> Node {
        let listen = format!("/ip4/{ip}/tcp/0");
        Self::launch_with(Some(repo), Some(ns), &listen, role, extra, configure)
    }

    /// Like [`Node::start_configured`], listening on `listen` (a fixed address, so that a
    /// restarted node comes back where its peers knew it).
    ///
    /// # Panics
    ///
    /// When the daemon does not come up in time.
    pub fn start_listening(
        listen: &str,
        role: &str,
        extra: &[&str],
        configure: impl Configure,
    ) -> Node {
        Self::launch(None, listen, role, extra, configure)
    }

    fn launch(
        repo: Option<&Path>,
        listen: &str,
        role: &str,
        extra: &[&str],
        configure: impl Configure,
    ) -> Node {
        Self::launch_with(repo, None, listen, role, extra, configure)
    }

    fn launch_with(
        repo: Option<&Path>,
        netns: Option<&str>,
        listen: &str,
        role: &str,
        extra: &[&str],
        configure: impl Configure,
    ) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = repo.map_or_else(|| dir.path().join("repo"), Path::to_path_buf);
        // A repo the test prepared (see [`init_repo`]) is used as it is.
        if !repo.join("config.toml").exists() {
            init_repo(&repo);
        }
        configure.configure(&repo);
        let mut node = Node {
            child: None,
            repo,
            _dir: dir,
            peer_id: String::new(),
            addr: String::new(),
            role: role.to_string(),
            listen: listen.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns: netns.map(str::to_string),
        };
        node.spawn();
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    panic!("daemon exited early: {status}\n{log}");
                }
            }
            if self.repo.join("api").exists() {
                let out = self.cli(&["id"]);
                if out.status.success() {
                    let id: serde_json::Value =
                        serde_json::from_slice(&out.stdout).expect("id JSON");
                    let addrs = id["Addresses"].as_array().cloned().unwrap_or_default();
                    let tcp = addrs
                        .iter()
                        .filter_map(|a| a.as_str())
                        .find(|a| a.contains("/tcp/") && !a.contains("/tcp/0/"));
                    if let Some(addr) = tcp {
                        self.peer_id = id["ID"].as_str().unwrap_or_default().to_string();
                        self.addr = addr.to_string();
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "daemon did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The binary, run in the node's namespace if it has one (`ip netns exec` execs it, so
    /// the child's pid is the daemon's).
    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(ipfsbench_node_binary());
                c
            }
            None => Command::new(ipfsbench_node_binary()),
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("daemon log");
        // mDNS is off unless the test's flags turn it on.
        let mdns: &[&str] = if self.extra.iter().any(|f| f == "--mdns") {
            &[]
        } else {
            &["--mdns", "false"]
        };
        // The API and the gateway take ephemeral loopback ports unless the test's flags say.
        let given = |flag: &str| self.extra.iter().any(|f| f == flag);
        let api: &[&str] = if given("--api") {
            &[]
        } else {
            &["--api", "127.0.0.1:0"]
        };
        let gateway: &[&str] = if given("--gateway") {
            &[]
        } else {
            &["--gateway", "127.0.0.1:0"]
        };
        let child = self
            .command()
            .arg("--repo")
            .arg(&self.repo)
            .args(["--role", &self.role, "--listen", &self.listen])
            .args(api)
            .args(gateway)
            .args(mdns)
            .args(&self.extra)
            .env("IPFSBENCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
    }

    /// Starts the daemon again on the same repo, with the same role and flags, after
    /// [`Node::kill`] or [`Node::stop`]; its addresses change unless it listens on a fixed
    /// one.
    ///
    /// # Panics
    ///
    /// When it does not come up in time.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the daemon still runs");
        // A killed daemon leaves its `api` file; the new one writes its own.
        let _ = std::fs::remove_file(self.repo.join("api"));
        self.spawn();
        self.wait_ready();
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's resident set size now, in KiB (0 when it does not run).
    pub fn rss_kib(&self) -> u64 {
        let Some(pid) = self.pid() else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The daemon's stderr, captured in a file.
    pub fn log_path(&self) -> PathBuf {
        self._dir.path().join("daemon.log")
    }

    /// The repo directory.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// The base of this node's gateway, `http://127.0.0.1:PORT`, from `<repo>/gateway`.
    ///
    /// # Panics
    ///
    /// When the node runs no gateway.
    pub fn gateway_base(&self) -> String {
        let text = std::fs::read_to_string(self.repo.join("gateway")).expect("gateway file");
        text.trim().to_string()
    }

    /// The base of this node's HTTP API, `http://127.0.0.1:PORT/api/v0`.
    ///
    /// # Panics
    ///
    /// When the node has not written its API address.
    pub fn api_base(&self) -> String {
        let addr = std::fs::read_to_string(self.repo.join("api")).expect("the api file");
        let port = addr.trim().rsplit('/').next().unwrap_or_default();
        format!("http://127.0.0.1:{port}/api/v0")
    }

    /// Runs a CLI command against this node's repo (and so through its API).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command()
            .arg("--repo")
            .arg(&self.repo)
            .args(args)
            .output()
            .expect("run CLI")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs the CLI against this node like [`Node::ok`]; the first line it printed (a task
    /// submission's id, for one).
    ///
    /// # Panics
    ///
    /// When the command fails or prints nothing.
    pub fn first_line(&self, args: &[&str]) -> String {
        let out = String::from_utf8(self.ok(args)).expect("UTF-8 output");
        out.lines().next().expect("a line of output").to_string()
    }

    /// Dials `other` from this node.
    pub fn connect(&self, other: &Node) {
        self.ok(&["swarm", "connect", &other.addr]);
    }

    /// Stops the daemon with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits for a clean exit; returns whether it was one.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        crate::sys::terminate(child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
