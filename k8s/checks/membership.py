"""The cluster the pods form by membership: the master's identity and root, the invites it
issues for the join Secret, each joining pod a member connected to it, and a pod added by
scaling up that joins, takes a task and holds a pin."""

from __future__ import annotations

import re
import secrets
import time

from .api import add, call, connections, peer_id, poll
from .cluster import Cluster, Pod
from .report import Report
from .values import is_placeholder

# The invites the README has operators make.
INVITE_USES = 1000
INVITE_TTL = "720h"
# Seconds a joined pod may take to be listed as a member and to be connected to the master.
MEMBER_TIMEOUT = 30
# Seconds a task or a pin may take to reach the scaled-up pod and be done there.
WORK_TIMEOUT = 60
# Task states after which nothing changes.
FINAL_STATES = ("succeeded", "failed", "cancelled")


def role(cluster: Cluster, pod: Pod) -> str:
    return cluster.flag(pod, "role") or "?"


def issue_invites(cluster: Cluster, master: Pod | None, joiners: list[Pod], report: Report):
    """Fills each join Secret key that holds a placeholder with a token from the master's
    `cluster/invite`, for the role of the pods that join with it, as the README has the
    operator do it (`--addr` the master's DNS address, as the pods see it here)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for pod in joiners:
        wanted.setdefault(cluster.join_secret(pod), set()).add(role(cluster, pod))
    addr = cluster.invite_address(master) if master else None
    for (secret, key), roles in wanted.items():
        if not is_placeholder(cluster.secrets[secret][key]):
            continue
        grant = min(roles)
        name = (
            f"{master.name if master else 'master'}: cluster/invite gives {secret}/{key} "
            f"(role {grant}, {INVITE_USES} uses, ttl {INVITE_TTL}, --addr {addr})"
        )
        if len(roles) > 1:
            report.fail(name, f"pods of the roles {sorted(roles)} join with it")
            continue
        if master is None or not master.ready:
            report.fail(name, f"{master.name} is not ready" if master else "no master pod")
            continue
        if addr is None:
            report.fail(name, "no DNS name and listen port for the master")
            continue
        local = cluster.remap_ports(addr, master)
        status, answer = call(
            master, "cluster/invite", role=grant, uses=INVITE_USES, ttl=INVITE_TTL, addr=local
        )
        token = answer.get("Token")
        if report.check(name, None if status == 200 and token else f"{status}: {answer}"):
            # As `kubectl create secret --from-file` keeps a file the CLI wrote: one line.
            cluster.secrets[secret][key] = f"{token}\n".encode()
            print(f"     ({secret}/{key}: that token, its --addr as run here: {local})")


def secret_with(cluster: Cluster, pod: Pod, key: str) -> tuple[str, bytes] | None:
    """The first Secret a volume of the pod names that has `key`, and its value."""
    for v in pod.spec.get("volumes") or []:
        name = (v.get("secret") or {}).get("secretName")
        if name and key in cluster.secrets.get(name, {}):
            return name, cluster.secrets[name][key]
    return None


def check_master(cluster: Cluster, master: Pod, report: Report) -> None:
    """The master runs with the identity of its Secret, and is a master of the cluster of
    the root it imported."""
    got = peer_id(master)
    found = secret_with(cluster, master, "peer-id")
    if found:
        secret, want = found[0], found[1].decode().strip()
        report.check(
            f"{master.name}: runs as the PeerId of {secret} ({want[:16]}…)",
            None if got == want else f"it is {got}",
        )
    found = secret_with(cluster, master, "root")
    if found is None:
        return
    secret, root = found
    named = re.search(rb"^name = (.+)$", root, re.M)
    want_name = named.group(1).decode().strip() if named else None
    status, answer = call(master, "cluster/members")
    me = next((m for m in answer.get("Members") or [] if m.get("ThisNode")), {})
    problems = []
    if status != 200:
        problems.append(f"cluster/members answered {status}")
    if want_name is not None and answer.get("Cluster") != want_name:
        problems.append(f"its cluster is {answer.get('Cluster')!r}")
    if me.get("Role") != "master" or me.get("Peer") != got:
        problems.append(f"it is listed as {me or 'nothing'}")
    report.check(
        f"{master.name}: a master of cluster {want_name!r}, from the root in {secret}",
        "; ".join(problems) or None,
    )


def check_member(cluster: Cluster, master: Pod, pod: Pod, report: Report) -> None:
    """The pod is a member of the master's cluster with its role (the master's
    `cluster/members`; the pod sees the same cluster), connected to the master."""
    want = role(cluster, pod)
    me, boss = peer_id(pod), peer_id(master)

    def listed() -> tuple[dict, dict]:
        return call(master, "cluster/members")[1], call(pod, "cluster/members")[1]

    def member(answer: dict) -> dict:
        return next((m for m in answer.get("Members") or [] if m.get("Peer") == me), {})

    ours, theirs = poll(
        listed,
        lambda v: member(v[0]).get("Role") == want and v[1].get("Cluster") == v[0].get("Cluster"),
        MEMBER_TIMEOUT,
    )
    why = None
    if me is None:
        why = "its API does not answer /api/v0/id"
    elif member(ours).get("Role") != want:
        why = f"{master.name} lists it as {member(ours) or 'no member'} after {MEMBER_TIMEOUT} s"
    elif theirs.get("Cluster") != ours.get("Cluster"):
        why = f"it is in cluster {theirs.get('Cluster')!r}"
    cluster_name = ours.get("Cluster")
    report.check(f"{pod.name}: a {want} member of {master.name}'s cluster {cluster_name!r}", why)

    peers = poll(lambda: connections(pod), lambda c: boss in c, MEMBER_TIMEOUT)
    report.check(
        f"{pod.name}: connected to {master.name}"
        + (f" (through {peers[boss]})" if boss in peers and peers[boss] else ""),
        None if boss and boss in peers else f"not connected within {MEMBER_TIMEOUT} s",
    )


def check_knows_master(master: Pod, pod: Pod, report: Report) -> None:
    """The pod takes the master for a member with the master role (its `cluster/peers`), so
    that it applies the master's assignments and state changes."""
    boss = peer_id(master)
    started = time.monotonic()

    def seen() -> dict:
        peers = call(pod, "cluster/peers")[1].get("Peers") or []
        return next((p for p in peers if p.get("Peer") == boss), {})

    entry = poll(seen, lambda p: p.get("Member") == "master", MEMBER_TIMEOUT)
    name = f"{pod.name}: takes {master.name} for a master member of the cluster"
    if entry.get("Member") == "master":
        report.ok(f"{name} ({time.monotonic() - pod.started:.1f} s after it started)")
    else:
        report.fail(
            name,
            f"after {time.monotonic() - started:.0f} s its cluster/peers has {entry or 'nothing'}",
        )


def check_task(master: Pod, pod: Pod, report: Report) -> None:
    """A `noop` task submitted to the master for the pod runs on it and succeeds. How long
    it took and on which attempt are printed."""
    name = f"{pod.name}: receives a task (a noop targeted at it, submitted to {master.name})"
    me = peer_id(pod)
    started = time.monotonic()
    status, answer = poll(
        lambda: call(master, "task/submit", kind="noop", target=me or ""),
        lambda r: r[0] == 200,
        WORK_TIMEOUT,
        every=1,
    )
    task = answer.get("Id")
    if status != 200 or not task:
        report.fail(name, f"task/submit answered {status}: {answer}")
        return
    record = poll(
        lambda: call(master, "task/status", arg=task)[1],
        lambda r: r.get("State") in FINAL_STATES,
        WORK_TIMEOUT,
    )
    if record.get("State") == "succeeded" and record.get("Worker") == me:
        earlier = record.get("Failures") or 0
        report.ok(
            f"{name}: succeeded on it after {time.monotonic() - started:.1f} s, "
            f"attempt {record.get('Attempt')}"
            + (f" ({earlier} failed: {record.get('LastError')})" if earlier else "")
        )
    else:
        report.fail(
            name,
            f"task {task}: state {record.get('State')}, worker {record.get('Worker')}, "
            f"error {record.get('LastError')}",
        )


def check_pin(master: Pod, pod: Pod, report: Report) -> None:
    """Content added on the master and pinned with replication -1 (every eligible peer) is
    pinned on the pod: its status there as the master reports it, and the pod's own pins."""
    name = f"{pod.name}: receives a pin (replication -1, added on {master.name})"
    me = peer_id(pod)
    cid = add(master, secrets.token_bytes(300_000), "scale-up.bin")
    if cid is None:
        report.fail(name, f"{master.name}'s /api/v0/add gave no CID")
        return
    status, answer = call(
        master, "cluster/pins/add", arg=cid, replication_min=-1, replication_max=-1
    )
    if status != 200:
        report.fail(name, f"cluster/pins/add answered {status}: {answer}")
        return
    peer_map = poll(
        lambda: call(master, "cluster/pins/status", arg=cid)[1].get("PeerMap") or {},
        lambda m: (m.get(me) or {}).get("Status") == "pinned",
        WORK_TIMEOUT,
    )
    mine = peer_map.get(me) or {}
    local = call(pod, "pin/ls", arg=cid)[1].get("Keys") or {}
    why = None
    if mine.get("Status") != "pinned":
        why = (
            f"its status is {mine or 'missing'} after {WORK_TIMEOUT} s "
            f"(allocations {answer.get('Allocations')})"
        )
    elif cid not in local:
        why = f"{master.name} reports it pinned, but its pin/ls does not list {cid}"
    report.check(name + (f": {cid} pinned on it" if why is None else ""), why)
