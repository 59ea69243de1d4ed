//! A member's certificate: signed by the cluster's root key.

use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::task::WirePeer;

/// A certificate's encoding, at most (with its signature).
pub const MAX_CERT_BYTES: usize = 2048;
/// The encoding's version byte.
const VERSION: u8 = 1;
/// The most tags a certificate carries, and their longest.
const MAX_TAGS: usize = 16;
const MAX_TEXT: usize = 128;

/// What a member may do in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grant {
    /// Schedule tasks, write task records, invite and remove members.
    Master,
    /// Run tasks, hold pins, write pin statuses and results.
    Worker,
    /// Read: sync the state and the results.
    Leecher,
    /// Submit tasks; read.
    Submitter,
}

impl Grant {
    /// Every grant.
    pub const ALL: [Grant; 4] = [
        Grant::Master,
        Grant::Worker,
        Grant::Leecher,
        Grant::Submitter,
    ];

    /// Its name (`worker`).
    pub fn name(self) -> &'static str {
        match self {
            Grant::Master => "master",
            Grant::Worker => "worker",
            Grant::Leecher => "leecher",
            Grant::Submitter => "submitter",
        }
    }

    /// The grant called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the root says of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The cluster's name.
    pub cluster: String,
    /// The member.
    pub peer: WirePeer,
    /// What it may do.
    pub grant: Grant,
    /// Its tags, `key:value`.
    pub tags: Vec<String>,
    /// When it was issued, Unix ms.
    pub issued_ms: u64,
    /// When it expires, Unix ms.
    pub expires_ms: u64,
}

/// A certificate and the root's signature over its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCertificate {
    /// The certificate's encoding (version byte, then postcard).
    pub body: Vec<u8>,
    /// The root's Ed25519 signature over `body`.
    pub signature: Vec<u8>,
}

fn malformed(reason: impl ToString) -> Error {
    Error::Malformed {
        what: "certificate",
        reason: reason.to_string(),
    }
}

impl Certificate {
    /// Signs the certificate with the cluster's root key.
    ///
    /// # Errors
    ///
    /// When it breaks a size limit, or the key cannot sign.
    pub fn sign(&self, root: &Keypair) -> Result<SignedCertificate, Error> {
        self.check()?;
        let mut body = vec![VERSION];
        body.extend(postcard::to_allocvec(self).map_err(malformed)?);
        let signature = root.sign(&body).map_err(malformed)?;
        let signed = SignedCertificate { body, signature };
        if signed.encode().len() > MAX_CERT_BYTES {
            return Err(malformed("too large"));
        }
        Ok(signed)
    }

    fn check(&self) -> Result<(), Error> {
        let text_ok = |s: &String| !s.is_empty() && s.len() <= MAX_TEXT;
        if !text_ok(&self.cluster) || self.tags.len() > MAX_TAGS || !self.tags.iter().all(text_ok) {
            return Err(malformed("cluster name or tags out of bounds"));
        }
        Ok(())
    }
}

impl SignedCertificate {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a certificate as it travels (not yet verified).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when it is too large or does not decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_CERT_BYTES {
            return Err(malformed("too large"));
        }
        postcard::from_bytes(bytes).map_err(malformed)
    }

    /// The certificate, if `root` signed it for `cluster` and it holds at `now_ms`.
    ///
    /// # Errors
    ///
    /// Why it does not: a bad signature, another cluster, expired, malformed.
    pub fn verify(
        &self,
        root: &PublicKey,
        cluster: &str,
        now_ms: u64,
    ) -> Result<Certificate, Error> {
        if !root.verify(&self.body, &self.signature) {
            return Err(Error::BadSignature);
        }
        let Some((&VERSION, rest)) = self.body.split_first() else {
            return Err(malformed("unknown version"));
        };
        let cert: Certificate = postcard::from_bytes(rest).map_err(malformed)?;
        cert.check()?;
        if cert.cluster != cluster {
            return Err(Error::OtherCluster {
                found: cert.cluster,
                expected: cluster.to_string(),
            });
        }
        if now_ms >= cert.expires_ms {
            return Err(Error::Expired {
                expired_ms: cert.expires_ms,
            });
        }
        Ok(cert)
    }

    /// As [`verify`](Self::verify), and it must name `peer`.
    ///
    /// # Errors
    ///
    /// As `verify`, or [`Error::OtherPeer`].
    pub fn verify_for(
        &self,
        root: &PublicKey,
        cluster: &str,
        peer: &PeerId,
        now_ms: u64,
    ) -> Result<Certificate, Error> {
        let cert = self.verify(root, cluster, now_ms)?;
        if cert.peer.0 != *peer {
            return Err(Error::OtherPeer);
        }
        Ok(cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(peer: PeerId) -> Certificate {
        Certificate {
            cluster: "lab".into(),
            peer: WirePeer(peer),
            grant: Grant::Worker,
            tags: vec!["gpu:a100".into()],
            issued_ms: 1_000,
            expires_ms: 2_000,
        }
    }

    #[test]
    fn a_signed_certificate_verifies_only_as_issued() {
        let root = Keypair::generate_ed25519();
        let peer = PeerId::random();
        let signed = SignedCertificate::decode(&cert(peer).sign(&root).unwrap().encode()).unwrap();
        let public = root.public();
        assert_eq!(
            signed.verify_for(&public, "lab", &peer, 1_500).unwrap(),
            cert(peer)
        );
        assert_eq!(
            signed.verify(&public, "lab", 2_000),
            Err(Error::Expired { expired_ms: 2_000 })
        );
        assert!(matches!(
            signed.verify(&public, "other", 1_500),
            Err(Error::OtherCluster { .. })
        ));
        assert_eq!(
            signed.verify_for(&public, "lab", &PeerId::random(), 1_500),
            Err(Error::OtherPeer)
        );
        // Another root, or one changed byte, and it is not a certificate of this cluster.
        let stranger = Keypair::generate_ed25519().public();
        assert_eq!(
            signed.verify(&stranger, "lab", 1_500),
            Err(Error::BadSignature)
        );
        let mut forged = signed.clone();
        let last = forged.body.len() - 1;
        forged.body[last] ^= 1;
        assert_eq!(
            forged.verify(&public, "lab", 1_500),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn bounds_are_kept() {
        let root = Keypair::generate_ed25519();
        let mut big = cert(PeerId::random());
        big.tags = vec!["k:v".into(); MAX_TAGS + 1];
        assert!(big.sign(&root).is_err());
        assert!(SignedCertificate::decode(&vec![0u8; MAX_CERT_BYTES + 1]).is_err());
        assert!(SignedCertificate::decode(&[0xff, 0xff, 0xff]).is_err());
        for g in Grant::ALL {
            assert_eq!(Grant::from_name(g.name()), Some(g));
        }
    }
}
