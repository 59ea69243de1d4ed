//! `/ipfsbench/join/1.0.0`: a new node proves an invite's secret to a master over a stream
//! of its own (never gossip) and gets its certificate back. One request, one response, each
//! a length-prefixed postcard frame; the peer asking is the one the connection
//! authenticated, so a certificate is only ever issued to the key that holds it.

use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::invite::InviteId;

/// The protocol's name.
pub const JOIN_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfsbench/join/1.0.0");
/// The protocol a member answers with its certificate (one frame, at most
/// [`MAX_CERT_BYTES`](super::MAX_CERT_BYTES), then the stream closes): asked once per
/// connection.
pub const MEMBER_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfsbench/member/1.0.0");
/// A request's size, at most.
pub const MAX_JOIN_REQUEST: usize = 256;
/// A response's size, at most.
pub const MAX_JOIN_RESPONSE: usize = 4096;

/// What a joining node sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The invite.
    pub id: InviteId,
    /// Its secret.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("id", &self.id.to_string())
            .finish_non_exhaustive()
    }
}

/// What the master answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinResponse {
    /// Admitted: the certificate (a [`SignedCertificate`](super::SignedCertificate)'s
    /// encoding).
    Admitted {
        /// The certificate.
        certificate: Vec<u8>,
    },
    /// Refused, and why (used up, expired, revoked, unknown, wrong secret).
    Refused {
        /// Why.
        reason: String,
    },
}

fn malformed(what: &'static str, reason: impl ToString) -> Error {
    Error::Malformed {
        what,
        reason: reason.to_string(),
    }
}

impl JoinRequest {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a request, bounded.
    ///
    /// # Errors
    ///
    /// When it is too large or does not decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_JOIN_REQUEST {
            return Err(malformed("join request", "too large"));
        }
        postcard::from_bytes(bytes).map_err(|e| malformed("join request", e))
    }
}

impl JoinResponse {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a response, bounded.
    ///
    /// # Errors
    ///
    /// When it is too large or does not decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_JOIN_RESPONSE {
            return Err(malformed("join response", "too large"));
        }
        postcard::from_bytes(bytes).map_err(|e| malformed("join response", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip_within_bounds() {
        let request = JoinRequest {
            id: InviteId([1; 8]),
            secret: [2; 32],
        };
        assert_eq!(JoinRequest::decode(&request.encode()).unwrap(), request);
        assert!(!format!("{request:?}").contains("2, 2"));
        let response = JoinResponse::Refused {
            reason: "used up".into(),
        };
        assert_eq!(JoinResponse::decode(&response.encode()).unwrap(), response);
        assert!(JoinRequest::decode(&[0xff; MAX_JOIN_REQUEST + 1]).is_err());
        assert!(JoinResponse::decode(&[7, 7, 7]).is_err());
    }
}
