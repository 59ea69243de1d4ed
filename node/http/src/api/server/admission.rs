//! Which connections the server takes: a cap on all of them and a share of it per client, so
//! that one client holding many connections (slow ones, say) cannot lock out the others.
//!
//! A client is its address; IPv6 addresses count by their /64, the block one host is usually
//! given, and IPv4-mapped IPv6 addresses as the IPv4 address they carry.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// A client, as connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(IpAddr);

impl Client {
    /// The client an address belongs to.
    pub(crate) fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self(addr),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server holds its most connections.
    Full,
    /// The client holds its share.
    ClientFull,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_client: HashMap<Client, usize>,
}

/// The connection counts, shared by the accept loop and the connections' slots.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    counts: Arc<Mutex<Counts>>,
    total: usize,
    per_client: usize,
}

/// A taken connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    counts: Arc<Mutex<Counts>>,
    client: Client,
}

impl Admission {
    /// At most `total` connections, at most `per_client` of them from one client.
    pub(crate) fn new(total: usize, per_client: usize) -> Self {
        Self {
            counts: Arc::default(),
            total,
            per_client,
        }
    }

    /// A place for a connection from `addr`, unless the server or the client is full.
    pub(crate) fn admit(&self, addr: IpAddr) -> Result<Slot, Refused> {
        let client = Client::of(addr);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.by_client.get(&client).copied().unwrap_or(0);
        if held >= self.per_client {
            return Err(Refused::ClientFull);
        }
        if counts.total >= self.total {
            return Err(Refused::Full);
        }
        counts.total += 1;
        counts.by_client.insert(client, held + 1);
        Ok(Slot {
            counts: Arc::clone(&self.counts),
            client,
        })
    }

    /// Connections held now, and by how many clients.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        (counts.total, counts.by_client.len())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_client_gets_its_share_and_others_still_get_in() {
        let admission = Admission::new(10, 4);
        let hog: Vec<Slot> = (0..4)
            .map(|_| admission.admit(ip("127.0.0.2")).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("127.0.0.2")).unwrap_err(),
            Refused::ClientFull
        );
        let others: Vec<Slot> = ["127.0.0.1", "10.0.0.1", "::1", "fd00::1"]
            .iter()
            .chain(["127.0.0.1", "10.0.0.1"].iter())
            .map(|a| admission.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(admission.admit(ip("10.0.0.9")).unwrap_err(), Refused::Full);
        drop(hog);
        assert_eq!(admission.held(), (6, 4));
        assert!(admission.admit(ip("127.0.0.2")).is_ok());
        drop(others);
        assert_eq!(admission.held(), (0, 0));
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(100, 2);
        let _a = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = admission.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(admission.admit(ip("2001:db8:1:2::77")).is_err());
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
        let _c = admission.admit(ip("192.0.2.7")).unwrap();
        let _d = admission.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert!(admission.admit(ip("192.0.2.7")).is_err());
    }
}
