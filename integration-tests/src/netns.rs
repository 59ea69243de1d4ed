//! Hosts in network namespaces, for multi-host tests: each host is a namespace with its own
//! address on a bridge (a veth pair per host), so a partition is made by cutting links, not
//! by killing processes. A host's link can be shaped to a rate (`tc` token bucket), and a
//! host can vanish (its veth pair deleted). Needs root and the `ip` and `tc` commands;
//! [`Lab::new`] says why not when it cannot run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
    /// The namespace-side end of its veth pair (the host's network interface).
    inner: String,
}

/// Hosts on a bridge, with a second bridge to partition some of them onto.
#[derive(Debug)]
pub struct Lab {
    /// The hosts.
    pub hosts: Vec<Host>,
    bridges: [String; 2],
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn tc(args: &[&str]) -> Result<(), String> {
    run("tc", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
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
                inner: inner.clone(),
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

    /// Makes host `i` vanish from the network: its veth pair is deleted, so its interface is
    /// gone (its processes keep running, with only loopback). There is no way back.
    pub fn remove(&self, i: usize) -> Result<(), String> {
        ip(&["link", "delete", &self.hosts[i].link])
    }

    /// Limits host `i`'s link to `mbit` Mbit/s each way: a token bucket (`tc tbf`) on the
    /// egress of both ends of its veth pair, so what it sends and what it receives are shaped.
    /// The bucket holds 64 KiB (a burst is a negligible part of a long transfer) and queues
    /// up to 20 ms of traffic before dropping.
    pub fn shape(&self, i: usize, mbit: u32) -> Result<(), String> {
        let h = &self.hosts[i];
        let rate = format!("{mbit}mbit");
        let tbf = ["tbf", "rate", &rate, "burst", "64kb", "latency", "20ms"];
        let mut outside = vec!["qdisc", "replace", "dev", &h.link, "root"];
        outside.extend(tbf);
        tc(&outside)?;
        let mut inside = vec!["-n", &h.ns, "qdisc", "replace", "dev", &h.inner, "root"];
        inside.extend(tbf);
        tc(&inside)
    }

    /// Lets multicast (mDNS) through: the bridges flood it to every port instead of
    /// waiting for IGMP reports (no querier runs here), and each host routes the multicast
    /// range to its interface.
    pub fn enable_multicast(&self) -> Result<(), String> {
        for b in &self.bridges {
            ip(&["link", "set", b, "type", "bridge", "mcast_snooping", "0"])?;
        }
        for h in &self.hosts {
            ip(&["-n", &h.ns, "link", "set", &h.inner, "multicast", "on"])?;
            ip(&[
                "-n",
                &h.ns,
                "route",
                "replace",
                "224.0.0.0/4",
                "dev",
                &h.inner,
            ])?;
        }
        Ok(())
    }
}

/// Runs `f` on a thread that has entered the network namespace `ns`, and returns what it
/// returned: a socket `f` opens belongs to `ns`, and can be used from any thread afterwards.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                crate::sys::enter_net_namespace(&file)
                    .map_err(|e| format!("entering network namespace {ns}: {e}"))?;
                Ok(f())
            })
            .join()
            .map_err(|_| format!("a thread in network namespace {ns} panicked"))?
    })
}

/// A plain TCP copy of `bytes` bytes from host `from` to host `to` (no libp2p, no disk): the
/// rate the link itself gives one TCP connection. Returns the time from connecting to the
/// receiver reading the last byte.
pub fn tcp_copy(from: &Host, to: &Host, bytes: u64) -> Result<Duration, String> {
    let listener = in_netns(&to.ns, || TcpListener::bind((to.ip.as_str(), 0)))?
        .map_err(|e| format!("listening on {}: {e}", to.ip))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut sender = in_netns(&from.ns, || TcpStream::connect_timeout(&addr, TIMEOUT))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let (mut receiver, _) = listener.accept().map_err(|e| e.to_string())?;
    receiver
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        let send = scope.spawn(move || -> std::io::Result<()> {
            let chunk = vec![0x5a_u8; 1 << 16];
            let mut left = bytes;
            while left > 0 {
                let n = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
                sender.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            sender.shutdown(std::net::Shutdown::Write)
        });
        let mut buf = vec![0_u8; 1 << 16];
        let mut got = 0_u64;
        let read = loop {
            match receiver.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => got += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("reading the copy: {e}")),
            }
        };
        let elapsed = started.elapsed();
        let sent = send
            .join()
            .map_err(|_| "the sending thread panicked".to_string())?;
        read?;
        sent.map_err(|e| format!("sending the copy: {e}"))?;
        if got != bytes {
            return Err(format!("received {got} of {bytes} bytes"));
        }
        Ok(elapsed)
    })
}

/// The longest a step of [`tcp_copy`] may wait (a dial, a read).
const TIMEOUT: Duration = Duration::from_secs(30);

/// A rate in Mbit/s: `bytes` moved in `elapsed`.
pub fn mbit_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / 1e6 / elapsed.as_secs_f64().max(1e-9)
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
