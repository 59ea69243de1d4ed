//! The one error type of the HTTP API, answered in Kubo's JSON shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfsbench_net::network;
use ipfsbench_store::repo;

use ipfsbench_store::unixfs::ReadError;

/// An API failure: a status and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A failure with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The caller may not do this (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// A malformed request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Something named in the request does not exist (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// The method is not POST (405).
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: message.into(),
        }
    }

    /// The node failed (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Kubo's command errors: Code 1 is a client error, 0 a normal failure.
        let code = u8::from(self.status.is_client_error());
        let body = super::wire::Failure {
            message: self.message,
            code,
            kind: "error".to_string(),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<repo::Error> for ApiError {
    fn from(e: repo::Error) -> Self {
        use ipfsbench_store::repo::Error as R;
        let message = e.to_string();
        match e {
            R::NotFound(_) => Self::not_found(message),
            R::Add(ipfsbench_store::unixfs::AddError::Io { .. }) => Self::internal(message),
            R::Add(_) | R::Car(_) | R::Block(_) | R::Pinned { .. } => Self::bad_request(message),
            R::Pin(ipfsbench_store::store::pins::Error::Dag(
                ipfsbench_store::store::dag::Error::NotFound(_),
            )) => Self::not_found(message),
            R::Pin(
                ipfsbench_store::store::pins::Error::NotPinned(_)
                | ipfsbench_store::store::pins::Error::PinnedIndirectly { .. }
                | ipfsbench_store::store::pins::Error::AlreadyRecursive(_),
            ) => Self::bad_request(message),
            _ => Self::internal(message),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let message = e.to_string();
        match e {
            ReadError::NotFound(_) | ReadError::NoSuchLink { .. } => Self::not_found(message),
            ReadError::Store(_) | ReadError::Io { .. } => Self::internal(message),
            _ => Self::bad_request(message),
        }
    }
}

impl From<network::Error> for ApiError {
    fn from(e: network::Error) -> Self {
        let message = e.to_string();
        match e {
            network::Error::NotFound(_) | network::Error::Timeout { .. } => {
                Self::not_found(message)
            }
            network::Error::BadPeerAddr(_) => Self::bad_request(message),
            _ => Self::internal(message),
        }
    }
}

impl From<ipfsbench_store::store::block::InvalidCid> for ApiError {
    fn from(e: ipfsbench_store::store::block::InvalidCid) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<ipfsbench_store::store::pins::Error> for ApiError {
    fn from(e: ipfsbench_store::store::pins::Error) -> Self {
        ipfsbench_store::repo::Error::from(e).into()
    }
}

impl From<ipfsbench_store::store::Error> for ApiError {
    fn from(e: ipfsbench_store::store::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("worker task failed: {e}"))
    }
}
