//! What a node does in the cluster. It travels in heartbeats, so it is a wire type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a node does in the cluster. An enum enforced in code: it selects the Kademlia mode,
/// whether the node is a relay server, and (with the roles crate) what work it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes task submissions and schedules them; Kademlia server and relay server.
    Master,
    /// Runs tasks, serves blocks, stores allocated pins; Kademlia server, relay client.
    Worker,
    /// Consumes results with a bounded cache; Kademlia client, relay client.
    Leecher,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Leecher => "leecher",
        })
    }
}

/// A string that names no role.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (expected master, worker or leecher)")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "master" => Ok(Role::Master),
            "worker" => Ok(Role::Worker),
            "leecher" => Ok(Role::Leecher),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for role in [Role::Master, Role::Worker, Role::Leecher] {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert!("boss".parse::<Role>().is_err());
    }
}
