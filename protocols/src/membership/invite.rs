//! An invite: one line a new node is started with, carrying what it needs to join.

use libp2p::identity::PublicKey;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Error;

/// What every invite's text starts with.
pub const INVITE_PREFIX: &str = "ipfsbench-invite-1-";
/// An invite's encoding, at most (bytes before base64).
pub const MAX_INVITE_BYTES: usize = 4096;
/// The most addresses an invite carries.
pub const MAX_INVITE_ADDRS: usize = 16;
const MAX_ADDRS: usize = MAX_INVITE_ADDRS;

/// An invite's id: public, names it in listings and revocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InviteId(pub [u8; 8]);

impl std::fmt::Display for InviteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::str::FromStr for InviteId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Malformed {
            what: "invite id",
            reason: format!("{s:?} is not 16 hex digits"),
        };
        if s.len() != 16 || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 8];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(id))
    }
}

/// What an invite carries. The secret admits; the rest tells the new node where and what
/// the cluster is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The cluster's name.
    pub cluster: String,
    /// The root's public key (protobuf encoding): what certificates are checked against.
    pub root: Vec<u8>,
    /// The private network's key, when the cluster is private.
    pub swarm_key: Option<[u8; 32]>,
    /// Where the inviting masters listen.
    pub addrs: Vec<Vec<u8>>,
    /// The invite's id.
    pub id: InviteId,
    /// The admission secret.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets never reach a log.
        f.debug_struct("Invite")
            .field("cluster", &self.cluster)
            .field("id", &self.id.to_string())
            .field("private", &self.swarm_key.is_some())
            .field("addrs", &self.addrs.len())
            .finish_non_exhaustive()
    }
}

fn malformed(reason: impl ToString) -> Error {
    Error::Malformed {
        what: "invite",
        reason: reason.to_string(),
    }
}

impl Invite {
    /// The digest of `secret` the cluster keeps (never the secret itself).
    pub fn digest(secret: &[u8; 32]) -> [u8; 32] {
        Sha256::digest(secret).into()
    }

    /// The root's public key.
    ///
    /// # Errors
    ///
    /// When the bytes are not a public key.
    pub fn root_key(&self) -> Result<PublicKey, Error> {
        PublicKey::try_decode_protobuf(&self.root).map_err(malformed)
    }

    /// The masters' addresses.
    pub fn multiaddrs(&self) -> Vec<Multiaddr> {
        self.addrs
            .iter()
            .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
            .collect()
    }

    /// The one line people copy.
    ///
    /// # Errors
    ///
    /// When it breaks a size limit.
    pub fn encode(&self) -> Result<String, Error> {
        if self.addrs.len() > MAX_ADDRS || self.cluster.is_empty() || self.cluster.len() > 64 {
            return Err(malformed("too many addresses, or a bad cluster name"));
        }
        let bytes = postcard::to_allocvec(self).map_err(malformed)?;
        if bytes.len() > MAX_INVITE_BYTES {
            return Err(malformed("too large"));
        }
        let text = multibase::encode(multibase::Base::Base64Url, bytes);
        // multibase's own prefix letter is dropped: ours says what the text is.
        Ok(format!("{INVITE_PREFIX}{}", &text[1..]))
    }

    /// Reads an invite as people paste it (surrounding white space allowed).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`], saying what is wrong.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let body = text
            .strip_prefix(INVITE_PREFIX)
            .ok_or_else(|| malformed(format!("it does not start with {INVITE_PREFIX}")))?;
        if body.len() > MAX_INVITE_BYTES * 4 / 3 + 4 {
            return Err(malformed("too large"));
        }
        let (_, bytes) = multibase::decode(format!("u{body}")).map_err(malformed)?;
        let invite: Invite = postcard::from_bytes(&bytes).map_err(malformed)?;
        if invite.addrs.len() > MAX_ADDRS || invite.cluster.is_empty() || invite.cluster.len() > 64
        {
            return Err(malformed("too many addresses, or a bad cluster name"));
        }
        invite.root_key()?;
        Ok(invite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn invite() -> Invite {
        Invite {
            cluster: "lab".into(),
            root: Keypair::generate_ed25519().public().encode_protobuf(),
            swarm_key: Some([7; 32]),
            addrs: vec!["/ip4/10.0.0.1/tcp/4101"
                .parse::<Multiaddr>()
                .unwrap()
                .to_vec()],
            id: InviteId([1, 2, 3, 4, 5, 6, 7, 8]),
            secret: [9; 32],
        }
    }

    #[test]
    fn an_invite_is_one_line_that_reads_back() {
        let original = invite();
        let text = original.encode().unwrap();
        assert!(text.starts_with(INVITE_PREFIX));
        assert!(text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let back = Invite::decode(&format!("  {text}\n")).unwrap();
        assert_eq!(back, original);
        assert_eq!(back.multiaddrs().len(), 1);
        // Nothing secret in its debug form.
        let debug = format!("{back:?}");
        assert!(
            !debug.contains("9, 9") && debug.contains("0102030405060708"),
            "{debug}"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let text = invite().encode().unwrap();
        for bad in [
            String::new(),
            "hello".into(),
            text.replacen(INVITE_PREFIX, "ipfsbench-invite-2-", 1),
            text[..text.len() - 10].to_string(),
            format!("{INVITE_PREFIX}{}", "A".repeat(MAX_INVITE_BYTES * 2)),
        ] {
            assert!(Invite::decode(&bad).is_err(), "{bad:?}");
        }
        let mut no_root = invite();
        no_root.root = vec![1, 2, 3];
        assert!(Invite::decode(&no_root.encode().unwrap()).is_err());
    }

    #[test]
    fn ids_print_and_parse() {
        let id = InviteId([0xab, 0, 1, 2, 3, 4, 5, 0xff]);
        assert_eq!(id.to_string(), "ab000102030405ff");
        assert_eq!("ab000102030405ff".parse::<InviteId>().unwrap(), id);
        assert!("xyz".parse::<InviteId>().is_err());
        assert!("ab000102030405f".parse::<InviteId>().is_err());
    }
}
