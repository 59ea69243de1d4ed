//! A member's removal: a statement signed by the cluster's root that a peer is no longer a
//! member from a time on. Anyone holding the root's public key checks it, so the node that
//! relays it (over the replicated state) need not be trusted.
//!
//! Its encoding starts with its own tag byte, which no certificate's does, so neither can be
//! passed off as the other under the same signature.

use libp2p::identity::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::task::WirePeer;

/// The encoding's tag byte (a certificate's version byte is 1).
const TAG: u8 = b'R';
/// A revocation's encoding, at most.
pub const MAX_REVOCATION_BYTES: usize = 1024;
/// The longest reason kept.
pub const MAX_REASON: usize = 256;

/// What the root says of a peer removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The cluster's name.
    pub cluster: String,
    /// The peer removed.
    pub peer: WirePeer,
    /// When, Unix ms.
    pub revoked_ms: u64,
    /// Why, as the master that removed it said.
    pub reason: String,
}

/// A revocation and the root's signature over its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRevocation {
    /// The tag byte, then postcard.
    pub body: Vec<u8>,
    /// The root's Ed25519 signature over `body`.
    pub signature: Vec<u8>,
}

fn malformed(reason: impl ToString) -> Error {
    Error::Malformed {
        what: "revocation",
        reason: reason.to_string(),
    }
}

impl Revocation {
    /// Signs it with the cluster's root key.
    ///
    /// # Errors
    ///
    /// A reason past [`MAX_REASON`], or a key that cannot sign.
    pub fn sign(&self, root: &Keypair) -> Result<SignedRevocation, Error> {
        if self.reason.len() > MAX_REASON || self.cluster.is_empty() {
            return Err(malformed("reason or cluster out of bounds"));
        }
        let mut body = vec![TAG];
        body.extend(postcard::to_allocvec(self).map_err(malformed)?);
        let signature = root.sign(&body).map_err(malformed)?;
        Ok(SignedRevocation { body, signature })
    }
}

impl SignedRevocation {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes one (not yet verified).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when it is too large or does not decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_REVOCATION_BYTES {
            return Err(malformed("too large"));
        }
        postcard::from_bytes(bytes).map_err(malformed)
    }

    /// The revocation, if `root` signed it for `cluster`.
    ///
    /// # Errors
    ///
    /// A bad signature, another cluster, a malformed body.
    pub fn verify(&self, root: &PublicKey, cluster: &str) -> Result<Revocation, Error> {
        if !root.verify(&self.body, &self.signature) {
            return Err(Error::BadSignature);
        }
        let Some((&TAG, rest)) = self.body.split_first() else {
            return Err(malformed("not a revocation"));
        };
        let r: Revocation = postcard::from_bytes(rest).map_err(malformed)?;
        if r.cluster != cluster {
            return Err(Error::OtherCluster {
                found: r.cluster,
                expected: cluster.to_string(),
            });
        }
        if r.reason.len() > MAX_REASON {
            return Err(malformed("reason too long"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{Certificate, Grant, SignedCertificate};
    use libp2p::PeerId;

    fn revocation(peer: PeerId) -> Revocation {
        Revocation {
            cluster: "lab".into(),
            peer: WirePeer(peer),
            revoked_ms: 5,
            reason: "lost laptop".into(),
        }
    }

    #[test]
    fn a_revocation_verifies_under_its_root_only() {
        let root = Keypair::generate_ed25519();
        let other = Keypair::generate_ed25519();
        let peer = PeerId::random();
        let signed = revocation(peer).sign(&root).expect("sign");
        let back = SignedRevocation::decode(&signed.encode()).expect("decode");
        assert_eq!(back.verify(&root.public(), "lab").expect("ok").peer.0, peer);
        assert_eq!(
            back.verify(&other.public(), "lab"),
            Err(Error::BadSignature)
        );
        assert!(matches!(
            back.verify(&root.public(), "other"),
            Err(Error::OtherCluster { .. })
        ));
        let mut long = revocation(peer);
        long.reason = "x".repeat(MAX_REASON + 1);
        assert!(long.sign(&root).is_err());
    }

    #[test]
    fn a_certificate_is_no_revocation_and_back() {
        let root = Keypair::generate_ed25519();
        let peer = PeerId::random();
        let cert = Certificate {
            cluster: "lab".into(),
            peer: WirePeer(peer),
            grant: Grant::Worker,
            tags: vec![],
            issued_ms: 1,
            expires_ms: u64::MAX,
        }
        .sign(&root)
        .expect("sign");
        let as_revocation = SignedRevocation {
            body: cert.body.clone(),
            signature: cert.signature.clone(),
        };
        assert!(as_revocation.verify(&root.public(), "lab").is_err());
        let r = revocation(peer).sign(&root).expect("sign");
        let as_cert = SignedCertificate {
            body: r.body,
            signature: r.signature,
        };
        assert!(as_cert.verify(&root.public(), "lab", 0).is_err());
    }
}
