//! The gateway's failures ([`Failure`]), answered as plain text like Kubo's gateway, and the
//! status each error of the layers below maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ipfsbench_net::network;
use ipfsbench_store::unixfs::ReadError;

use crate::api::read::LazyError;

/// A gateway failure, as plain text like Kubo's gateway answers it.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Self {
        let status = match &e {
            ReadError::BadPath { .. } | ReadError::NotDirectory(_) => StatusCode::BAD_REQUEST,
            ReadError::NoSuchLink { .. } => StatusCode::NOT_FOUND,
            ReadError::Sharded(_) => StatusCode::NOT_IMPLEMENTED,
            ReadError::NotFound(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<network::Error> for Failure {
    fn from(e: network::Error) -> Self {
        let status = match e {
            network::Error::NotFound(_) | network::Error::Timeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, e.to_string())
    }
}

impl From<LazyError> for Failure {
    fn from(e: LazyError) -> Self {
        match e {
            LazyError::Read(e) => e.into(),
            LazyError::Net(e) => e.into(),
        }
    }
}

impl From<tokio::task::JoinError> for Failure {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}
