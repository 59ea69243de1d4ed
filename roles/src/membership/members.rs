//! The members this node knows: each one's certificate, checked under the cluster's root,
//! and the peers the root removed. Every trust check of the roles asks it (through
//! [`Settings`](crate::settings::Settings)), beside the configuration's explicit lists.
//!
//! One writer, the [`keeper`](super::keeper), fills it from the certificates peers present
//! when they connect and from the `member/` and `revoked/` records of the replicated state;
//! everything else reads it. A certificate that does not verify, names another cluster or
//! peer, or has expired is never a member; a revoked peer never again is.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use ipfsbench_core::network::PeerId;
use ipfsbench_core::trust::Trust;
use ipfsbench_protocols::membership::{
    Certificate, Grant, Revocation, SignedCertificate, SignedRevocation,
};
use libp2p::identity::PublicKey;

/// The most members one node keeps; past it, new certificates are refused.
pub const MAX_MEMBERS: usize = 4096;

/// A member as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The certificate, checked.
    pub certificate: Certificate,
    /// Its encoding, as the root signed it.
    pub signed: Vec<u8>,
}

impl Member {
    /// The member's peer id.
    pub fn peer(&self) -> PeerId {
        self.certificate.peer.0
    }
}

/// The cluster a node belongs to: its name and the root's public key.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The cluster's name.
    pub name: String,
    /// The root's public key.
    pub root: PublicKey,
}

#[derive(Debug, Default)]
struct Table {
    cluster: Option<Cluster>,
    members: HashMap<PeerId, Member>,
    revoked: HashMap<PeerId, Revocation>,
    /// Revocations checked already, as they travel (at most [`MAX_MEMBERS`]).
    known_revocations: HashSet<Vec<u8>>,
}

/// See the module docs. Cheap to clone: every clone is the same table.
#[derive(Debug, Clone, Default)]
pub struct Members {
    table: Arc<RwLock<Table>>,
    trust: Trust,
}

impl Members {
    /// An empty table whose refusals are counted in `trust`.
    pub fn new(trust: Trust) -> Self {
        Self {
            table: Arc::default(),
            trust,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The same table without the trust it feeds: what the trust's own rules read, so that
    /// the two do not hold each other.
    pub fn table_only(&self) -> Self {
        Self {
            table: Arc::clone(&self.table),
            trust: Trust::default(),
        }
    }

    /// Who this node trusts to write, and where what it drops is counted.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The cluster, once this node belongs to one.
    pub fn cluster(&self) -> Option<Cluster> {
        self.read().cluster.clone()
    }

    /// Whether this node belongs to a cluster (membership decides, beside the lists).
    pub fn active(&self) -> bool {
        self.read().cluster.is_some()
    }

    /// What `peer` may do, if it is a member at `now_ms` (its certificate holds and it is not
    /// revoked).
    pub fn grant_at(&self, peer: &PeerId, now_ms: u64) -> Option<Grant> {
        let t = self.read();
        if t.revoked.contains_key(peer) {
            return None;
        }
        t.members
            .get(peer)
            .filter(|m| now_ms < m.certificate.expires_ms)
            .map(|m| m.certificate.grant)
    }

    /// What `peer` may do now.
    pub fn grant(&self, peer: &PeerId) -> Option<Grant> {
        self.grant_at(peer, crate::clock::now_ms())
    }

    /// Whether the root removed `peer`.
    pub fn is_revoked(&self, peer: &PeerId) -> bool {
        self.read().revoked.contains_key(peer)
    }

    /// The members now, by peer id.
    pub fn list(&self) -> Vec<Member> {
        self.list_at(crate::clock::now_ms())
    }

    /// The members at `now`, by peer id.
    pub fn list_at(&self, now: u64) -> Vec<Member> {
        let t = self.read();
        let mut out: Vec<Member> = t
            .members
            .values()
            .filter(|m| !t.revoked.contains_key(&m.peer()) && now < m.certificate.expires_ms)
            .cloned()
            .collect();
        out.sort_by_key(Member::peer);
        out
    }

    /// A member's record, expired or not, unless revoked.
    pub fn get(&self, peer: &PeerId) -> Option<Member> {
        let t = self.read();
        if t.revoked.contains_key(peer) {
            return None;
        }
        t.members.get(peer).cloned()
    }

    /// The peers removed, by peer id.
    pub fn revoked(&self) -> Vec<Revocation> {
        let mut out: Vec<Revocation> = self.read().revoked.values().cloned().collect();
        out.sort_by_key(|r| r.peer.0);
        out
    }

    /// Members whose writes count (every grant but a leecher's), now.
    pub fn writers(&self) -> HashSet<PeerId> {
        self.writers_at(crate::clock::now_ms())
    }

    /// Members whose writes count at `now`.
    pub fn writers_at(&self, now: u64) -> HashSet<PeerId> {
        self.list_at(now)
            .into_iter()
            .filter(|m| m.certificate.grant != Grant::Leecher)
            .map(|m| m.peer())
            .collect()
    }

    /// Makes this node a member of `cluster`.
    pub(crate) fn set_cluster(&self, cluster: Cluster) {
        self.write().cluster = Some(cluster);
    }

    /// Takes the certificate `signed` if it verifies for this cluster at `now_ms`, names
    /// `presenter` when one presented it, and is newer than the one held. `Ok(true)` when
    /// the table changed.
    ///
    /// # Errors
    ///
    /// Why it is no member's, in words.
    pub(crate) fn offer(
        &self,
        signed: &[u8],
        presenter: Option<PeerId>,
        now_ms: u64,
    ) -> Result<bool, String> {
        let Some(cluster) = self.cluster() else {
            return Err("this node belongs to no cluster".into());
        };
        // The same bytes as the presenter's certificate held: nothing to check again.
        if let Some(p) = presenter {
            if self
                .read()
                .members
                .get(&p)
                .is_some_and(|m| m.signed == signed)
            {
                return Ok(false);
            }
        }
        let decoded = SignedCertificate::decode(signed).map_err(|e| e.to_string())?;
        let certificate = match presenter {
            Some(peer) => decoded.verify_for(&cluster.root, &cluster.name, &peer, now_ms),
            None => decoded.verify(&cluster.root, &cluster.name, now_ms),
        }
        .map_err(|e| e.to_string())?;
        let peer = certificate.peer.0;
        let mut t = self.write();
        if t.revoked.contains_key(&peer) {
            return Err(format!("{peer} was removed from the cluster"));
        }
        match t.members.get(&peer) {
            Some(held) if held.certificate.issued_ms >= certificate.issued_ms => return Ok(false),
            None if t.members.len() >= MAX_MEMBERS => {
                return Err(format!("this node keeps at most {MAX_MEMBERS} members"))
            }
            _ => {}
        }
        t.members.insert(
            peer,
            Member {
                certificate,
                signed: signed.to_vec(),
            },
        );
        Ok(true)
    }

    /// Takes the revocation `signed` if the root signed it for this cluster. The peer it
    /// names, when new.
    ///
    /// # Errors
    ///
    /// Why it does not count.
    pub(crate) fn revoke(&self, signed: &[u8]) -> Result<Option<PeerId>, String> {
        let Some(cluster) = self.cluster() else {
            return Err("this node belongs to no cluster".into());
        };
        if self.read().known_revocations.contains(signed) {
            return Ok(None);
        }
        let revocation = SignedRevocation::decode(signed)
            .and_then(|r| r.verify(&cluster.root, &cluster.name))
            .map_err(|e| e.to_string())?;
        let peer = revocation.peer.0;
        let mut t = self.write();
        if t.known_revocations.len() < MAX_MEMBERS {
            t.known_revocations.insert(signed.to_vec());
        }
        t.members.remove(&peer);
        Ok(t.revoked.insert(peer, revocation).is_none().then_some(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_protocols::task::WirePeer;
    use libp2p::identity::Keypair;

    fn cert(root: &Keypair, peer: PeerId, grant: Grant, issued: u64, expires: u64) -> Vec<u8> {
        Certificate {
            cluster: "lab".into(),
            peer: WirePeer(peer),
            grant,
            tags: vec![],
            issued_ms: issued,
            expires_ms: expires,
        }
        .sign(root)
        .expect("sign")
        .encode()
    }

    fn table(root: &Keypair) -> Members {
        let members = Members::default();
        members.set_cluster(Cluster {
            name: "lab".into(),
            root: root.public(),
        });
        members
    }

    #[test]
    fn members_are_what_the_root_signed_until_expiry_or_revocation() {
        let root = Keypair::generate_ed25519();
        let members = table(&root);
        let [worker, leecher, other, master] = std::array::from_fn(|_| PeerId::random());
        let m = cert(&root, master, Grant::Master, 1, 1_000);
        assert_eq!(members.offer(&m, Some(master), 10), Ok(true));
        let w = cert(&root, worker, Grant::Worker, 1, 1_000);
        assert_eq!(members.offer(&w, Some(worker), 10), Ok(true));
        assert_eq!(members.offer(&w, Some(worker), 10), Ok(false), "held");
        // Presented by another peer: refused.
        assert!(members.offer(&w, Some(other), 10).is_err());
        // Signed by another key: refused.
        let forged = cert(&Keypair::generate_ed25519(), other, Grant::Master, 1, 1_000);
        assert!(members.offer(&forged, Some(other), 10).is_err());
        // Expired: refused.
        assert!(members
            .offer(&cert(&root, other, Grant::Master, 1, 5), None, 10)
            .is_err());
        let l = cert(&root, leecher, Grant::Leecher, 1, 1_000);
        assert_eq!(members.offer(&l, None, 10), Ok(true));
        assert_eq!(members.grant_at(&worker, 10), Some(Grant::Worker));
        assert_eq!(members.grant_at(&worker, 1_000), None, "expired");
        assert_eq!(members.grant_at(&other, 10), None);
        // A newer certificate replaces the held one.
        let renewed = cert(&root, worker, Grant::Worker, 2, 5_000);
        assert_eq!(members.offer(&renewed, None, 10), Ok(true));
        assert_eq!(members.grant_at(&worker, 1_000), Some(Grant::Worker));

        let revocation = Revocation {
            cluster: "lab".into(),
            peer: WirePeer(worker),
            revoked_ms: 11,
            reason: "test".into(),
        }
        .sign(&root)
        .expect("sign")
        .encode();
        assert_eq!(members.revoke(&revocation), Ok(Some(worker)));
        assert_eq!(members.revoke(&revocation), Ok(None), "known");
        assert_eq!(members.grant_at(&worker, 12), None);
        assert!(members.offer(&renewed, Some(worker), 12).is_err());
        assert!(members.is_revoked(&worker));
        // A revocation the root did not sign is nothing.
        let forged = Revocation {
            cluster: "lab".into(),
            peer: WirePeer(leecher),
            revoked_ms: 11,
            reason: String::new(),
        }
        .sign(&Keypair::generate_ed25519())
        .expect("sign")
        .encode();
        assert!(members.revoke(&forged).is_err());
        assert_eq!(members.grant_at(&leecher, 12), Some(Grant::Leecher));
        // A leecher's writes never count, nor a removed worker's.
        assert_eq!(members.writers_at(12), HashSet::from([master]));
    }
}
