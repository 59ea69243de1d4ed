//! Running a set of trials that need a live Kubo node: reported as ignored when Kubo cannot
//! be loaded, and as failed instead when `IPFSBENCH_REQUIRE_KUBO=1`.

use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::kubo::{Kubo, TestRepo};

/// Set to `1` to make a missing Kubo a failure rather than a skip.
pub const REQUIRE_ENV: &str = "IPFSBENCH_REQUIRE_KUBO";

/// What every trial gets: Kubo and one running, isolated Kubo node.
#[derive(Debug)]
pub struct KuboCtx {
    /// The library.
    pub kubo: Kubo,
    /// The running node's repo.
    pub repo: TestRepo,
}

/// One named check.
pub type Check = Box<dyn FnOnce(&KuboCtx) -> Result<(), Failed> + Send>;

/// Runs `checks` as a libtest-compatible harness named `suite`, then exits the process.
/// With `serial`, trials run one at a time (they share the Kubo node's state).
pub fn run(suite: &str, checks: Vec<(String, Check)>, serial: bool) -> ! {
    let mut args = Arguments::from_args();
    if serial {
        args.test_threads = Some(1);
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    let setup = if args.list {
        Ok(None)
    } else {
        match Kubo::load() {
            Err(unavailable) if required => Err(format!("{unavailable} (and {REQUIRE_ENV}=1)")),
            Err(unavailable) => {
                eprintln!(
                    "{suite}: every trial is IGNORED: {unavailable}. \
                     Set {REQUIRE_ENV}=1 to make this a failure."
                );
                Ok(None)
            }
            Ok(kubo) => match kubo.test_repo(None, true) {
                Ok(repo) => {
                    eprintln!(
                        "{suite}: Kubo from {} (log: {})",
                        kubo.library_path().display(),
                        kubo.log_path().display()
                    );
                    Ok(Some(Arc::new(KuboCtx { kubo, repo })))
                }
                Err(e) => Err(format!("Kubo loaded but its test node did not start: {e}")),
            },
        }
    };
    let trials = checks
        .into_iter()
        .map(|(name, check)| match &setup {
            Ok(Some(ctx)) => {
                let ctx = Arc::clone(ctx);
                Trial::test(name, move || check(&ctx))
            }
            Ok(None) => {
                Trial::ignorable_test(name, || Ok(Completion::ignored_with("Kubo is unavailable")))
                    .with_ignored_flag(true)
            }
            Err(reason) => {
                let reason = reason.clone();
                Trial::test(name, move || Err(reason.into()))
            }
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // Stops the Kubo node and deletes its repo before exiting.
    drop(setup);
    conclusion.exit()
}
