//! `ipfsbench-node`: a self-contained IPFS peer for benchmark clusters.

mod args;
mod benchdb;
mod client;
mod cluster;
mod commands;
mod common;
mod daemon;
mod demo;
mod membership;
mod remote;
mod storage;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A child process that runs one SQL query for a daemon (see ipfsbench_sql).
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(ipfsbench_sql::WORKER_ARG))
    {
        return ExitCode::from(u8::try_from(ipfsbench_sql::serve_worker()).unwrap_or(1));
    }
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // Kademlia warns on every bootstrap attempt of a node with no peers yet.
            tracing_subscriber::EnvFilter::try_from_env("IPFSBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,libp2p_kad=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A reader that went away (`cat big | head`) is not a failure of ours.
            let broken_pipe = err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
