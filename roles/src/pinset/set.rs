//! The pinset over the replicated state: pins added, replaced, removed and recovered, each
//! allocated among the peers the role service has heard.

use std::collections::BTreeMap;

use cid::Cid;
use ipfsbench_core::network::PeerId;
use ipfsbench_core::state::{self, Op};

use super::allocate::{self, Allocation, Candidate};
use super::error::Error;
use super::input;
use super::pin::{Pin, PinRequest};
use super::status::PeerStatus;
use crate::service::{self, PeerView};
use crate::settings::ClusterSettings;

/// How long the count of pins per peer (for balance) is reused before it is counted again;
/// this node's own allocations are added to it meanwhile.
const LOAD_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Pins allocated per peer, counted at a moment.
type Load = BTreeMap<PeerId, u64>;

/// The pinset over the replicated state, with the cluster's peer table for allocation.
#[derive(Debug, Clone)]
pub struct Pinset {
    state: state::Handle,
    service: service::Handle,
    settings: ClusterSettings,
    load: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, Load)>>>,
    /// Held across each read-then-write of a pin on this node (update, remove, the healer's
    /// re-allocation), so that one cannot write back a pin another has just replaced.
    writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Pinset {
    /// The pinset of `state`, allocating among the peers `service` has heard.
    pub fn new(state: state::Handle, service: service::Handle, settings: ClusterSettings) -> Self {
        Self {
            state,
            service,
            settings,
            load: Default::default(),
            writes: Default::default(),
        }
    }

    /// Waits for this node's turn to read a pin and write it back; the turn ends when the
    /// guard drops.
    pub(crate) async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// The replicated state.
    pub fn state(&self) -> &state::Handle {
        &self.state
    }

    /// The settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Adds (or replaces) a pin, allocated now; returns it.
    pub async fn add(&self, req: PinRequest, now_ms: u64) -> Result<Pin, Error> {
        let cid = req
            .cid
            .ok_or_else(|| Error::Invalid("a CID is required".into()))?;
        check(&req, now_ms)?;
        let mut pin = Pin {
            cid,
            name: req.name,
            replication_factor_min: req.min.unwrap_or(self.settings.replication_min),
            replication_factor_max: req.max.unwrap_or(self.settings.replication_max),
            allocations: Vec::new(),
            user_allocations: req.allocations,
            tags: req.tags,
            metadata: req.metadata,
            expire_at_ms: req.expire_at_ms,
            added_at_ms: now_ms,
            under_replicated: false,
            recover: 0,
        };
        input::check_factors(pin.replication_factor_min, pin.replication_factor_max)
            .map_err(Error::Invalid)?;
        // Re-adding keeps the recover counter, so holders' earlier reports stay comparable.
        if let Some(old) = self.get(&cid)? {
            pin.recover = old.recover;
        }
        let Allocation {
            peers,
            under_replicated,
        } = allocate::allocate(&pin.wanted(&self.settings), &self.candidates(None).await?)?;
        pin.allocations = peers;
        pin.under_replicated = under_replicated;
        self.put(&pin).await?;
        if let Some((_, load)) = self.lock_load().as_mut() {
            for p in &pin.allocations {
                *load.entry(*p).or_default() += 1;
            }
        }
        Ok(pin)
    }

    /// Stores `pin` as it is.
    pub async fn put(&self, pin: &Pin) -> Result<(), Error> {
        let value = serde_json::to_vec(pin).map_err(|source| Error::Corrupt {
            key: pin.cid.to_string(),
            source,
        })?;
        self.state.put(Pin::key(&pin.cid), value).await?;
        Ok(())
    }

    /// Removes a pin, and every peer's report on it, in one change; its holders unpin it.
    pub async fn remove(&self, cid: &Cid) -> Result<Pin, Error> {
        let _turn = self.write_turn().await;
        let pin = self.get(cid)?.ok_or(Error::NotPinned(*cid))?;
        let mut ops = vec![Op {
            key: Pin::key(cid),
            value: None,
        }];
        for kv in self.state.scan(&PeerStatus::prefix(cid)) {
            ops.push(Op {
                key: kv?.0,
                value: None,
            });
        }
        self.state.write(ops).await?;
        Ok(pin)
    }

    /// Pins `to` as `from` is pinned (same options and peers), then removes `from`, in one
    /// change.
    pub async fn update(&self, from: &Cid, to: Cid, now_ms: u64) -> Result<Pin, Error> {
        let _turn = self.write_turn().await;
        let old = self.get(from)?.ok_or(Error::NotPinned(*from))?;
        let recover = if *from == to { old.recover } else { 0 };
        let pin = Pin {
            cid: to,
            added_at_ms: now_ms,
            recover,
            ..old
        };
        let value = serde_json::to_vec(&pin).map_err(|source| Error::Corrupt {
            key: to.to_string(),
            source,
        })?;
        let mut ops = vec![Op {
            key: Pin::key(&to),
            value: Some(value),
        }];
        if *from != to {
            ops.push(Op {
                key: Pin::key(from),
                value: None,
            });
        }
        self.state.write(ops).await?;
        Ok(pin)
    }

    /// The pin of `cid`, if the cluster keeps it.
    pub fn get(&self, cid: &Cid) -> Result<Option<Pin>, Error> {
        let key = Pin::key(cid);
        self.state.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// Every pin, in CID-text order.
    pub fn list(&self) -> impl Iterator<Item = Result<Pin, Error>> {
        self.state.scan(b"pin/").map(|kv| {
            let (k, v) = kv?;
            decode(&k, &v)
        })
    }

    /// The pins that may be allocated to `peer`: those whose stored JSON names it anywhere
    /// (found without decoding the rest, which is most of a large pinset on any one node).
    /// The caller checks the allocations of what it gets.
    pub fn naming(&self, peer: &PeerId) -> impl Iterator<Item = Result<Pin, Error>> {
        let needle = peer.to_string().into_bytes();
        self.state.scan(b"pin/").filter_map(move |kv| match kv {
            Ok((k, v)) => memchr::memmem::find(&v, &needle)
                .is_some()
                .then(|| decode(&k, &v)),
            Err(e) => Some(Err(e.into())),
        })
    }

    /// Every pin as stored (its JSON), in CID-text order.
    pub fn list_raw(&self) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
        self.state.scan(b"pin/").map(|kv| Ok(kv?.1))
    }

    /// Asks every holder of `cid` (or of every pin) to retry what failed.
    pub async fn recover(&self, cid: Option<&Cid>) -> Result<Vec<Pin>, Error> {
        let pins: Vec<Pin> = match cid {
            Some(c) => vec![self.get(c)?.ok_or(Error::NotPinned(*c))?],
            None => self.list().collect::<Result<_, _>>()?,
        };
        let mut ops = Vec::new();
        let mut out = Vec::new();
        for mut pin in pins {
            pin.recover += 1;
            let value = serde_json::to_vec(&pin).map_err(|source| Error::Corrupt {
                key: pin.cid.to_string(),
                source,
            })?;
            ops.push(Op {
                key: Pin::key(&pin.cid),
                value: Some(value),
            });
            out.push(pin);
        }
        for chunk in ops.chunks(1_024) {
            self.state.write(chunk.to_vec()).await?;
        }
        Ok(out)
    }

    /// The peers that may hold pins, each with the number of pins it holds. Only peers whose
    /// changes to the state this node applies are candidates (a peer whose reports are
    /// dropped could never be seen to hold a pin); silent peers (past `reallocate_after`)
    /// and `except` are left out.
    pub async fn candidates(&self, except: Option<&PeerId>) -> Result<Vec<Candidate>, Error> {
        let peers = self.service.peers().await?;
        let load = self.load()?;
        let silent = self.settings.reallocate_after.as_millis() as u64;
        Ok(peers
            .iter()
            .filter(|p| p.trusted && p.last_heartbeat_ms_ago <= silent)
            .filter_map(|p| candidate(p, &load))
            .filter(|c| Some(&c.peer) != except)
            .collect())
    }
}

impl Pinset {
    fn lock_load(&self) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, Load)>> {
        self.load.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pins allocated per peer: counted again when older than [`LOAD_TTL`].
    fn load(&self) -> Result<Load, Error> {
        if let Some((at, load)) = self.lock_load().as_ref() {
            if at.elapsed() < LOAD_TTL {
                return Ok(load.clone());
            }
        }
        let mut load = Load::new();
        for pin in self.list() {
            for p in pin?.allocations {
                *load.entry(p).or_default() += 1;
            }
        }
        *self.lock_load() = Some((std::time::Instant::now(), load.clone()));
        Ok(load)
    }
}

fn candidate(p: &PeerView, load: &BTreeMap<PeerId, u64>) -> Option<Candidate> {
    let peer: PeerId = p.peer.parse().ok()?;
    Some(Candidate {
        peer,
        role: p.role,
        free_bytes: p.capacity.store_free_bytes,
        tags: p.capacity.tags.clone(),
        pins: load.get(&peer).copied().unwrap_or(0),
    })
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value).map_err(|source| Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// A request's own limits: its labels, and its expiry as seen at `now_ms`.
fn check(req: &PinRequest, now_ms: u64) -> Result<(), Error> {
    input::check_labels(&req.name, &req.tags, &req.metadata, req.allocations.len())
        .map_err(Error::Invalid)?;
    if let Some(at) = req.expire_at_ms {
        input::check_expiry(now_ms, at).map_err(Error::Invalid)?;
    }
    Ok(())
}
