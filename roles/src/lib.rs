//! The roles a node runs as: master, worker or leecher.
//!
//! A role is an enum, enforced in code. The behaviour of each role (scheduling, running tasks,
//! caching) builds on the node crate's client handle and arrives with the daemon.

use std::fmt;
use std::str::FromStr;

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes task submissions and schedules them; Kademlia and relay server.
    Master,
    /// Runs tasks, serves blocks, stores allocated pins.
    Worker,
    /// Consumes results with a bounded cache; takes no tasks or pins.
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
    fn parses_and_prints() {
        for role in [Role::Master, Role::Worker, Role::Leecher] {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert!("boss".parse::<Role>().is_err());
    }
}
