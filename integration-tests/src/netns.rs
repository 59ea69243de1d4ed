//! Hosts in network namespaces, for multi-host tests: each host is a namespace with its own
//! address on a bridge (a veth pair per host), so a partition is made by cutting links, not
//! by killing processes. Needs root and the `ip` command; [`Lab::new`] says why not when it
//! cannot run.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Labs made by this process, so concurrent tests get distinct names and subnets.
static LABS: AtomicU32 = AtomicU32::new(0);

/// One host: a namespace with an address.
#[derive(Debug)]
pub struct Host {
    /// The namespace's name (`ip netns exec <ns> ...`).
    pub ns: String,
    /// Its IPv4 address on the lab's network.
    pub ip: String,
    /// The host-side end of its veth pair.
    link: String,
}

/// Hosts on a bridge, with a second bridge to partition some of them onto.
#[derive(Debug)]
pub struct Lab {
    /// The hosts.
    pub hosts: Vec<Host>,
    bridges: [String; 2],
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// `n` hosts on one bridge. Fails (with the reason) without root or `ip`.
    pub fn new(n: usize) -> Result<Lab, String> {
        // Only root may create namespaces.
        let uid = effective_uid()?;
        if uid != 0 {
            return Err("network namespaces need root".into());
        }
        let id = (std::process::id() % 4_000) * 16 + LABS.fetch_add(1, Ordering::SeqCst) % 16;
        let subnet = format!("10.{}.{}", 100 + id / 256 % 100, id % 256);
        let bridges = [format!("ib{id}a"), format!("ib{id}b")];
        let mut lab = Lab {
            hosts: Vec::new(),
            bridges: bridges.clone(),
        };
        for b in &bridges {
            ip(&["link", "add", b, "type", "bridge"])?;
            ip(&["link", "set", b, "up"])?;
        }
        for i in 0..n {
            let ns = format!("ibns{id}h{i}");
            let link = format!("ib{id}h{i}");
            let inner = format!("ib{id}i{i}");
            let addr = format!("{subnet}.{}", i + 1);
            ip(&["netns", "add", &ns])?;
            lab.hosts.push(Host {
                ns: ns.clone(),
                ip: addr.clone(),
                link: link.clone(),
            });
            ip(&["link", "add", &link, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &link, "master", &bridges[0]])?;
            ip(&["link", "set", &link, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// Splits the network: the hosts in `side` move to a bridge of their own, so they reach
    /// each other but none of the rest.
    pub fn partition(&self, side: &[usize]) -> Result<(), String> {
        for &i in side {
            ip(&[
                "link",
                "set",
                &self.hosts[i].link,
                "master",
                &self.bridges[1],
            ])?;
        }
        Ok(())
    }

    /// Joins every host on one bridge again.
    pub fn heal(&self) -> Result<(), String> {
        for h in &self.hosts {
            ip(&["link", "set", &h.link, "master", &self.bridges[0]])?;
        }
        Ok(())
    }

    /// Cuts host `i` off entirely (its link goes down).
    pub fn unplug(&self, i: usize) -> Result<(), String> {
        ip(&["link", "set", &self.hosts[i].link, "down"])
    }

    /// Plugs host `i` back in.
    pub fn plug(&self, i: usize) -> Result<(), String> {
        ip(&["link", "set", &self.hosts[i].link, "up"])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = ip(&["netns", "delete", &h.ns]);
            let _ = ip(&["link", "delete", &h.link]);
        }
        for b in &self.bridges {
            let _ = ip(&["link", "delete", b]);
        }
    }
}

/// The effective user id, read from `/proc` (no unsafe code).
fn effective_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no Uid line in /proc/self/status".into())
}
