//! The second half of a running node: the HTTP API (the node's own calls and the routes the
//! role adds) and the gateway, started once everything they serve runs; stopped first.
//!
//! [`Servers::start`] binds both (port 0 is fine) and writes `<repo>/api` with the API's
//! address and `<repo>/gateway` with the gateway's URL, as Kubo does; [`Servers::shutdown`]
//! stops them and removes both files.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::oneshot;

use super::host::Node;
use super::options::{api_multiaddr, remove_if_present, Error, Options};
use crate::{api, gateway};

/// The API and the gateway, serving. See the module docs.
#[derive(Debug)]
pub struct Servers {
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    api_addr: SocketAddr,
    stop_api: oneshot::Sender<()>,
    gateway: Option<gateway::Server>,
    repo: PathBuf,
}

impl Servers {
    /// Serves `node`'s API with `routes` beside its own calls, and the gateway when `options`
    /// asks for one.
    ///
    /// # Errors
    ///
    /// When a listener cannot bind or the address files cannot be written.
    pub async fn start(
        node: &Node,
        options: &Options,
        routes: axum::Router,
    ) -> Result<Self, Error> {
        let bind_error = |source| Error::Api {
            addr: options.api,
            source,
        };
        let listener = api::bind(options.api).await.map_err(bind_error)?;
        let api_addr = listener.local_addr().map_err(bind_error)?;
        let state = api::State::new(
            std::sync::Arc::clone(node.repo()),
            node.client().clone(),
            node.metrics().clone(),
        );
        let access = api::Access::new(
            api_addr.port(),
            &options.api_allowed_origins,
            &options.api_allowed_hosts,
        )
        .with_token(options.api_token.clone());
        let gateway = match options.gateway {
            Some(addr) => Some(
                gateway::Server::start(addr, state.clone(), options.fetch_timeout)
                    .await
                    .map_err(|source| Error::Gateway { addr, source })?,
            ),
            None => None,
        };
        let (stop_api, stopped) = oneshot::channel::<()>();
        let api = tokio::spawn(api::serve(listener, state, access, routes, async {
            let _ = stopped.await;
        }));
        let servers = Self {
            api,
            api_addr,
            stop_api,
            gateway,
            repo: node.repo().path().to_path_buf(),
        };
        servers.write_files()?;
        Ok(servers)
    }

    /// `<repo>/api` with the API's address, and `<repo>/gateway` with the gateway's URL (or
    /// none, when there is no gateway).
    fn write_files(&self) -> Result<(), Error> {
        let api_file = self.repo.join("api");
        std::fs::write(&api_file, api_multiaddr(self.api_addr)).map_err(|source| {
            Error::ApiFile {
                path: api_file.clone(),
                source,
            }
        })?;
        let gateway_file = self.repo.join("gateway");
        let written = match &self.gateway {
            Some(g) => std::fs::write(&gateway_file, format!("http://{}\n", g.addr())),
            None => remove_if_present(&gateway_file),
        };
        written.map_err(|source| Error::ApiFile {
            path: gateway_file,
            source,
        })
    }

    /// The bound API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The bound gateway address, if the gateway runs.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(gateway::Server::addr)
    }

    /// Stops the gateway and the API and removes their address files.
    ///
    /// # Errors
    ///
    /// When the API had failed, or its file cannot be removed.
    pub async fn shutdown(self) -> Result<(), Error> {
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await;
            let _ = remove_if_present(&self.repo.join("gateway"));
        }
        let _ = self.stop_api.send(());
        let api_result = self.api.await;
        let api_file = self.repo.join("api");
        remove_if_present(&api_file).map_err(|source| Error::ApiFile {
            path: api_file,
            source,
        })?;
        if let Ok(Err(source)) = api_result {
            return Err(Error::Api {
                addr: self.api_addr,
                source,
            });
        }
        Ok(())
    }
}
