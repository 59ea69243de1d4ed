//! The cluster commands that run on the repo itself: `cluster init`, `cluster root export`
//! and `cluster root import`.

use anyhow::Result;
use ipfsbench_core::repo::Repo;
use ipfsbench_roles::clock::now_ms;
use ipfsbench_roles::membership::root::{self, ClusterInfo};

use crate::args::{ClusterCommand, ClusterRootCommand};

fn describe(info: &ClusterInfo, repo: &Repo) {
    println!(
        "cluster {:?} ({}), root key in {}",
        info.name,
        if info.private {
            "private network"
        } else {
            "public network"
        },
        root::dir(repo).join("root.key").display()
    );
    println!("this node ({}) is a master of it", repo.peer_id());
}

/// Runs a local cluster command.
pub(crate) fn run(repo: &Repo, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Init { name, private } => {
            let info = root::init(repo, &name, private, now_ms())?;
            describe(&info, repo);
            if private {
                println!("swarm key in {}", repo.path().join("swarm.key").display());
            }
        }
        ClusterCommand::Root(ClusterRootCommand::Export { file }) => {
            root::export(repo, &file)?;
            println!(
                "root written to {} (owner-only): import it on a standby master, then delete it",
                file.display()
            );
        }
        ClusterCommand::Root(ClusterRootCommand::Import { file }) => {
            let info = root::import(repo, &file, now_ms())?;
            describe(&info, repo);
        }
        other => anyhow::bail!("{other:?} needs a running daemon"),
    }
    Ok(())
}
