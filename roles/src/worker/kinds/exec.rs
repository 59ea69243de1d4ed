//! `exec`: a program on the worker's allowlist, run without a shell; inputs materialised
//! under `inputs/<cid>`, outputs collected from `outputs/` (capped) and added to the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use ipfsbench_core::network::Client;
use ipfsbench_core::repo::Repo;
use ipfsbench_core::unixfs::AddOptions;
use ipfsbench_protocols::task::Spec;
use tokio::io::AsyncReadExt;

use super::common::{fail, RunError};
use crate::results::record::Metrics;

/// The most bytes of an `exec` program's stdout or stderr kept in its record.
pub(crate) const MAX_CAPTURE: usize = 16 << 10;

/// Where and with what an `exec` attempt runs.
pub(crate) struct Exec<'a> {
    pub(crate) repo: &'a Arc<Repo>,
    pub(crate) client: &'a Client,
    /// The allowlist: name to program.
    pub(crate) programs: &'a BTreeMap<String, PathBuf>,
    /// The most bytes of outputs.
    pub(crate) output_cap: u64,
    /// The attempt's own directory (removed when dropped).
    pub(crate) dir: &'a Path,
}

impl Exec<'_> {
    /// Runs the program `spec` names; its metrics and the root of its outputs.
    pub(crate) async fn run(
        &self,
        spec: &Spec,
        report: &(dyn Fn(u16, &str) + Sync),
    ) -> Result<(Metrics, Cid), RunError> {
        let name = spec.param("program").unwrap_or_default();
        let program = self.programs.get(name).ok_or_else(|| {
            RunError(format!(
                "program {name:?} is not on this worker's allowlist (tasks.exec_programs)"
            ))
        })?;
        let inputs = self.dir.join("inputs");
        let outputs = self.dir.join("outputs");
        std::fs::create_dir_all(&inputs).map_err(fail)?;
        std::fs::create_dir_all(&outputs).map_err(fail)?;
        self.materialise(spec, &inputs).await?;
        report(100, "inputs ready");
        let args: Vec<&str> = spec
            .params
            .iter()
            .filter(|(k, _)| k == "arg")
            .map(|(_, v)| v.as_str())
            .collect();
        let clock = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .current_dir(self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("IPFSBENCH_INPUTS", &inputs)
            .env("IPFSBENCH_OUTPUTS", &outputs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RunError(format!("starting {}: {e}", program.display())))?;
        let stdout = capture(child.stdout.take());
        let stderr = capture(child.stderr.take());
        let status = self.wait_capped(&mut child, &outputs).await?;
        let seconds = clock.elapsed().as_secs_f64();
        let (stdout, stderr) = (stdout.await.map_err(fail)?, stderr.await.map_err(fail)?);
        let used = self.check_cap(&outputs)?;
        if !status.success() {
            return Err(RunError(format!(
                "{name} exited with {status}: {}",
                stderr.trim()
            )));
        }
        report(900, "adding outputs");
        let root = self.add_outputs(&outputs).await?;
        let _ = self.client.provide(root).await;
        let metrics = Metrics {
            program: Some(name.to_string()),
            exit_code: status.code(),
            seconds: Some(seconds),
            output_bytes: Some(used),
            stdout: Some(stdout),
            stderr: Some(stderr),
            ..Metrics::default()
        };
        Ok((metrics, root))
    }

    /// The bytes under `outputs`, or the failure when they pass the cap.
    fn check_cap(&self, outputs: &Path) -> Result<u64, RunError> {
        let used = dir_size(outputs);
        if used > self.output_cap {
            return Err(RunError(format!(
                "outputs reached {used} bytes, over the {}-byte cap",
                self.output_cap
            )));
        }
        Ok(used)
    }

    /// Waits for the program, killing it once its outputs pass the cap.
    async fn wait_capped(
        &self,
        child: &mut tokio::process::Child,
        outputs: &Path,
    ) -> Result<std::process::ExitStatus, RunError> {
        let mut check = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                status = child.wait() => return status.map_err(fail),
                _ = check.tick() => {
                    if let Err(e) = self.check_cap(outputs) {
                        let _ = child.kill().await;
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Fetches each input and writes it under `dir/<cid>`.
    async fn materialise(&self, spec: &Spec, dir: &Path) -> Result<(), RunError> {
        for input in &spec.inputs {
            self.client
                .fetch_dag(self.repo, input.0)
                .await
                .map_err(fail)?;
            let repo = Arc::clone(self.repo);
            let (cid, dest) = (input.0, dir.join(input.0.to_string()));
            tokio::task::spawn_blocking(move || {
                ipfsbench_core::unixfs::get(repo.store(), &cid, &dest)
            })
            .await
            .map_err(fail)?
            .map_err(fail)?;
        }
        Ok(())
    }

    /// Adds and pins what a program wrote; the root of `outputs/`.
    async fn add_outputs(&self, outputs: &Path) -> Result<Cid, RunError> {
        let repo = Arc::clone(self.repo);
        let out_dir = outputs.to_path_buf();
        let added = tokio::task::spawn_blocking(move || {
            let options = AddOptions {
                hidden: true,
                ..AddOptions::default()
            };
            repo.add_path(&out_dir, &options, true, &mut |_| {})
        })
        .await
        .map_err(fail)?
        .map_err(fail)?;
        added
            .iter()
            .find(|a| a.name == "outputs")
            .map(|a| a.cid)
            .ok_or_else(|| RunError("adding the outputs gave no root".into()))
    }
}

/// Reads a child's pipe to the end, keeping the first [`MAX_CAPTURE`] bytes.
fn capture<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    pipe: Option<R>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = MAX_CAPTURE.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Bytes of the regular files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => total += entry.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}
