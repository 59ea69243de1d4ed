//! The settings a test gives its nodes, written into a freshly initialised repo's
//! `config.toml` before the daemon starts: faster heartbeats and announcements, shorter
//! leases, a worker's concurrency, the programs `exec` tasks may run, and so on.
//!
//! Each setting names its section and key. The key's line in the file `init` wrote is
//! replaced, whatever value it held; a section or key the file lacks is a panic naming it, so
//! a renamed setting cannot leave a test silently running on the defaults.

use std::path::Path;

/// What prepares a node's repo before its daemon starts: a [`Tuning`], or any
/// `FnOnce(&Path)` (closures need their argument typed, `|repo: &Path| ..`).
pub trait Configure {
    /// Prepares the repo at `repo` (its `config.toml` exists).
    fn configure(self, repo: &Path);
}

impl<F: FnOnce(&Path)> Configure for F {
    fn configure(self, repo: &Path) {
        self(repo);
    }
}

impl Configure for Tuning<'_> {
    fn configure(self, repo: &Path) {
        self.apply(repo);
    }
}

/// Settings for a node's `config.toml`; each left unset keeps the value `init` wrote.
///
/// ```no_run
/// use ipfsbench_integration_tests::daemon::{Node, Tuning};
///
/// const CLUSTER: Tuning = Tuning::FAST.announce_ms(200).leader_lease_ms(2_000);
/// let master = Node::start_configured("master", &[], CLUSTER);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning<'a> {
    fetch_timeout_secs: Option<u64>,
    api_token_file: Option<&'a str>,
    index_cache_bytes: Option<u64>,
    min_free_bytes: Option<u64>,
    cache_max_bytes: Option<u64>,
    trusted_masters: Option<&'a [&'a str]>,
    max_concurrent_tasks: Option<u16>,
    heartbeat_ms: Option<u64>,
    lease_ms: Option<u64>,
    leader_lease_ms: Option<u64>,
    backoff_base_ms: Option<u64>,
    table_cache_bytes: Option<u64>,
    exec_programs: &'a [(&'a str, &'a str)],
    allocate_to_masters: Option<bool>,
    reallocate_after_secs: Option<u64>,
    announce_ms: Option<u64>,
    snapshot_every: Option<u64>,
}

/// The section of `config.toml` that lists the programs `exec` tasks may run.
const EXEC_PROGRAMS: &str = "tasks.exec_programs";

impl<'a> Tuning<'a> {
    /// Nothing changed.
    pub const NONE: Tuning<'static> = Tuning {
        fetch_timeout_secs: None,
        api_token_file: None,
        index_cache_bytes: None,
        min_free_bytes: None,
        cache_max_bytes: None,
        trusted_masters: None,
        max_concurrent_tasks: None,
        heartbeat_ms: None,
        lease_ms: None,
        leader_lease_ms: None,
        backoff_base_ms: None,
        table_cache_bytes: None,
        exec_programs: &[],
        allocate_to_masters: None,
        reallocate_after_secs: None,
        announce_ms: None,
        snapshot_every: None,
    };

    /// Heartbeats every 200 ms, so that a test's cluster forms (and notices a death) quickly.
    pub const FAST: Tuning<'static> = Tuning::NONE.heartbeat_ms(200);

    /// `daemon.fetch_timeout_secs`: how long a block fetch may wait for the network.
    pub const fn fetch_timeout_secs(mut self, secs: u64) -> Self {
        self.fetch_timeout_secs = Some(secs);
        self
    }

    /// `daemon.api_token_file`: the file holding the API's bearer token.
    pub const fn api_token_file(mut self, path: &'a str) -> Self {
        self.api_token_file = Some(path);
        self
    }

    /// `store.index_cache_bytes`: the block index's page cache.
    pub const fn index_cache_bytes(mut self, bytes: u64) -> Self {
        self.index_cache_bytes = Some(bytes);
        self
    }

    /// `store.min_free_bytes`: the free space block writes leave on the disk.
    pub const fn min_free_bytes(mut self, bytes: u64) -> Self {
        self.min_free_bytes = Some(bytes);
        self
    }

    /// `cache.max_bytes`: a leecher's budget of fetched, unpinned blocks.
    pub const fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = Some(bytes);
        self
    }

    /// `tasks.trusted_masters`: the masters whose assignments and outcomes the node takes.
    pub const fn trusted_masters(mut self, peers: &'a [&'a str]) -> Self {
        self.trusted_masters = Some(peers);
        self
    }

    /// `tasks.max_concurrent_tasks`: a worker's attempts at once (0: one per core).
    pub const fn max_concurrent_tasks(mut self, n: u16) -> Self {
        self.max_concurrent_tasks = Some(n);
        self
    }

    /// `tasks.heartbeat_ms`: how often the node announces its role and capacity.
    pub const fn heartbeat_ms(mut self, ms: u64) -> Self {
        self.heartbeat_ms = Some(ms);
        self
    }

    /// `tasks.lease_ms`: how long a master keeps an attempt leased without a heartbeat
    /// naming it.
    pub const fn lease_ms(mut self, ms: u64) -> Self {
        self.lease_ms = Some(ms);
        self
    }

    /// `tasks.leader_lease_ms`: how long the leading master may be silent before a standby
    /// takes over (and how long a restarted master honours the lease it recorded).
    pub const fn leader_lease_ms(mut self, ms: u64) -> Self {
        self.leader_lease_ms = Some(ms);
        self
    }

    /// `tasks.backoff_base_ms`: a master's wait before a task's first retry.
    pub const fn backoff_base_ms(mut self, ms: u64) -> Self {
        self.backoff_base_ms = Some(ms);
        self
    }

    /// `tasks.table_cache_bytes`: the task table's page cache.
    pub const fn table_cache_bytes(mut self, bytes: u64) -> Self {
        self.table_cache_bytes = Some(bytes);
        self
    }

    /// `[tasks.exec_programs]`: programs `exec` tasks may run, as (name, absolute path).
    pub const fn exec_programs(mut self, programs: &'a [(&'a str, &'a str)]) -> Self {
        self.exec_programs = programs;
        self
    }

    /// `cluster.allocate_to_masters`: whether masters hold allocated pins too.
    pub const fn allocate_to_masters(mut self, allow: bool) -> Self {
        self.allocate_to_masters = Some(allow);
        self
    }

    /// `cluster.reallocate_after_secs`: the silence after which a peer's pins go elsewhere.
    pub const fn reallocate_after_secs(mut self, secs: u64) -> Self {
        self.reallocate_after_secs = Some(secs);
        self
    }

    /// `cluster.announce_ms`: how often the replicated state's heads are announced.
    pub const fn announce_ms(mut self, ms: u64) -> Self {
        self.announce_ms = Some(ms);
        self
    }

    /// `cluster.snapshot_every`: changes between snapshots of the state (0: on demand).
    pub const fn snapshot_every(mut self, changes: u64) -> Self {
        self.snapshot_every = Some(changes);
        self
    }

    /// Writes the settings into `<repo>/config.toml`.
    ///
    /// # Panics
    ///
    /// When the file cannot be read or written, or lacks a section or key that is set.
    pub fn apply(&self, repo: &Path) {
        let path = repo.join("config.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let edited = self.edit(&text);
        std::fs::write(&path, edited).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// `text`, a `config.toml`, with the settings written in.
    ///
    /// # Panics
    ///
    /// When `text` lacks a section or key that is set.
    pub fn edit(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (section, key, value) in self.values() {
            text = set(&text, section, key, &value);
        }
        // Each new program goes to the top of its table: added last to first, they are
        // listed in the order given.
        for (name, program) in self.exec_programs.iter().rev() {
            text = set_or_add(&text, EXEC_PROGRAMS, name, &quoted(program));
        }
        text
    }

    /// The settings that are set: section, key and the value as TOML.
    fn values(&self) -> Vec<(&'static str, &'static str, String)> {
        let number = |v: Option<u64>| v.map(|v| v.to_string());
        let masters = self.trusted_masters.map(|peers| {
            let quoted: Vec<String> = peers.iter().map(|p| quoted(p)).collect();
            format!("[{}]", quoted.join(", "))
        });
        let all = [
            (
                "daemon",
                "fetch_timeout_secs",
                number(self.fetch_timeout_secs),
            ),
            ("daemon", "api_token_file", self.api_token_file.map(quoted)),
            ("store", "index_cache_bytes", number(self.index_cache_bytes)),
            ("store", "min_free_bytes", number(self.min_free_bytes)),
            ("cache", "max_bytes", number(self.cache_max_bytes)),
            ("tasks", "trusted_masters", masters),
            (
                "tasks",
                "max_concurrent_tasks",
                number(self.max_concurrent_tasks.map(u64::from)),
            ),
            ("tasks", "heartbeat_ms", number(self.heartbeat_ms)),
            ("tasks", "lease_ms", number(self.lease_ms)),
            ("tasks", "leader_lease_ms", number(self.leader_lease_ms)),
            ("tasks", "backoff_base_ms", number(self.backoff_base_ms)),
            ("tasks", "table_cache_bytes", number(self.table_cache_bytes)),
            (
                "cluster",
                "allocate_to_masters",
                self.allocate_to_masters.map(|b| b.to_string()),
            ),
            (
                "cluster",
                "reallocate_after_secs",
                number(self.reallocate_after_secs),
            ),
            ("cluster", "announce_ms", number(self.announce_ms)),
            ("cluster", "snapshot_every", number(self.snapshot_every)),
        ];
        all.into_iter()
            .filter_map(|(section, key, value)| value.map(|v| (section, key, v)))
            .collect()
    }
}

/// `s` as a TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The name of the table a line opens (`[tasks]` -> `tasks`), if it opens one.
fn header(line: &str) -> Option<&str> {
    let line = line.trim();
    line.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// Whether `line` assigns `key` (not a comment, not a longer key that ends in it).
fn assigns(line: &str, key: &str) -> bool {
    line.trim_start()
        .strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// `text` with `key`'s line in table `section` replaced by `key = value`; whether the table
/// was found, and whether the key was.
fn replace(text: &str, section: &str, key: &str, value: &str) -> (String, bool, bool) {
    let (mut found_section, mut found_key) = (false, false);
    let mut current: Option<&str> = None;
    let mut out = String::with_capacity(text.len() + value.len());
    for line in text.split_inclusive('\n') {
        if let Some(name) = header(line) {
            current = Some(name);
            found_section |= name == section;
        }
        if current == Some(section) && header(line).is_none() && assigns(line, key) {
            assert!(!found_key, "config.toml sets `{key}` in [{section}] twice");
            found_key = true;
            out.push_str(&format!("{key} = {value}"));
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    (out, found_section, found_key)
}

/// `text` with `key` in table `section` set to `value`.
///
/// # Panics
///
/// When the table or the key is missing.
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let (out, found_section, found_key) = replace(text, section, key, value);
    assert!(
        found_section,
        "config.toml has no [{section}] table: the node's config changed, update daemon::Tuning"
    );
    assert!(
        found_key,
        "config.toml has no `{key}` in [{section}]: the node's config changed, update \
         daemon::Tuning"
    );
    out
}

/// `text` with `key` in table `section` set to `value`, added at the top of the table if
/// the table does not have it.
///
/// # Panics
///
/// When the table is missing.
fn set_or_add(text: &str, section: &str, key: &str, value: &str) -> String {
    let (out, found_section, found_key) = replace(text, section, key, value);
    assert!(
        found_section,
        "config.toml has no [{section}] table: the node's config changed, update daemon::Tuning"
    );
    if found_key {
        return out;
    }
    let mut added = String::with_capacity(out.len() + key.len() + value.len() + 4);
    for line in out.split_inclusive('\n') {
        added.push_str(line);
        if header(line) == Some(section) {
            if !line.ends_with('\n') {
                added.push('\n');
            }
            added.push_str(&format!("{key} = {value}\n"));
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# A comment naming lease_ms = 1
[tasks]
# Masters: how long an attempt stays leased.
lease_ms = 10000
leader_lease_ms = 10000
heartbeat_ms = 1000
trusted_masters = []

[tasks.exec_programs]

[cluster]
announce_ms = 5000
";

    #[test]
    fn a_key_is_set_in_its_table_only_and_longer_keys_are_left_alone() {
        let out = Tuning::NONE.lease_ms(1500).heartbeat_ms(200).edit(CONFIG);
        assert!(out.contains("\nlease_ms = 1500\n"), "{out}");
        assert!(out.contains("\nleader_lease_ms = 10000\n"), "{out}");
        assert!(out.contains("heartbeat_ms = 200\n"), "{out}");
        assert!(out.contains("# A comment naming lease_ms = 1\n"), "{out}");
        assert!(out.contains("announce_ms = 5000\n"), "{out}");
    }

    #[test]
    fn nothing_set_changes_nothing() {
        assert_eq!(Tuning::NONE.edit(CONFIG), CONFIG);
    }

    #[test]
    fn programs_and_lists_are_written_as_toml() {
        let out = Tuning::NONE
            .exec_programs(&[("sleep", "/bin/sleep"), ("echo", "/bin/echo")])
            .trusted_masters(&["12D3KooWA", "12D3KooWB"])
            .edit(CONFIG);
        assert!(
            out.contains(
                "[tasks.exec_programs]\nsleep = \"/bin/sleep\"\necho = \"/bin/echo\"\n\n[cluster]"
            ),
            "{out}"
        );
        assert!(
            out.contains("trusted_masters = [\"12D3KooWA\", \"12D3KooWB\"]\n"),
            "{out}"
        );
        // Set again, a program replaces its line.
        let again = Tuning::NONE
            .exec_programs(&[("sleep", "/usr/bin/sleep")])
            .edit(&out);
        assert!(again.contains("sleep = \"/usr/bin/sleep\"\n"), "{again}");
        assert!(!again.contains("\"/bin/sleep\""), "{again}");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("tab\there"), "\"tab\\u0009here\"");
    }

    #[test]
    #[should_panic(expected = "config.toml has no `snapshot_every` in [cluster]")]
    fn a_missing_key_is_a_panic() {
        Tuning::NONE.snapshot_every(0).edit(CONFIG);
    }

    #[test]
    #[should_panic(expected = "config.toml has no [store] table")]
    fn a_missing_table_is_a_panic() {
        Tuning::NONE.min_free_bytes(0).edit(CONFIG);
    }

    #[test]
    fn the_config_init_writes_has_every_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        crate::daemon::init_repo(&repo);
        let text = std::fs::read_to_string(repo.join("config.toml")).expect("config.toml");
        let programs = [("sleep", "/bin/sleep")];
        let all = Tuning::NONE
            .fetch_timeout_secs(1)
            .api_token_file("/t")
            .index_cache_bytes(2)
            .min_free_bytes(3)
            .cache_max_bytes(4)
            .trusted_masters(&["p"])
            .max_concurrent_tasks(5)
            .heartbeat_ms(6)
            .lease_ms(7)
            .leader_lease_ms(8)
            .backoff_base_ms(9)
            .table_cache_bytes(10)
            .exec_programs(&programs)
            .allocate_to_masters(true)
            .reallocate_after_secs(11)
            .announce_ms(12)
            .snapshot_every(13);
        let out = all.edit(&text);
        for line in [
            "fetch_timeout_secs = 1\n",
            "api_token_file = \"/t\"\n",
            "\nlease_ms = 7\n",
            "\nleader_lease_ms = 8\n",
            "\nmax_bytes = 4\n",
            "sleep = \"/bin/sleep\"\n",
            "snapshot_every = 13\n",
        ] {
            assert!(out.contains(line), "{line:?} missing from\n{out}");
        }
    }
}
