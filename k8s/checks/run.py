"""Running the pods: readiness, probes, ports, bootstrap connections, SIGTERM, and the
refusal of placeholder Secrets."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .cluster import (
    INIT_TIMEOUT,
    PLACEHOLDER,
    Cluster,
    Pod,
    expand,
    replace_placeholders,
    secret_values,
)
from .manifests import DNS_ADDR, Doc
from .report import Report

# Seconds a pod may take to pass its readiness probe, counted from its start.
READY_TIMEOUT = 60
# Seconds a bootstrapping pod may take to be connected to its bootstrap peer once ready.
CONNECT_TIMEOUT = 30


def http(
    url: str, token: str | None = None, method: str = "GET", timeout: float = 3
) -> tuple[int, bytes]:
    """Status and body; 0 when nothing answered."""
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def probe(pod: Pod, name: str) -> int:
    """The status of the main container's `name` probe, as the kubelet asks it (GET)."""
    get = pod.main[name]["httpGet"]
    status, _ = http(pod.url(get["port"], get["path"]))
    return status


def wait_ready(pod: Pod) -> str | None:
    """None once the readiness probe answers 200 within READY_TIMEOUT of the start."""
    deadline = pod.started + READY_TIMEOUT
    last = 0
    while time.monotonic() < deadline:
        if pod.process.poll() is not None:
            return f"exited with status {pod.process.returncode} before it was ready"
        last = probe(pod, "readinessProbe")
        if last == 200:
            pod.ready = True
            return None
        time.sleep(0.25)
    return f"not ready within {READY_TIMEOUT} s (last answer {last or 'none'})"


def peer_id(pod: Pod) -> str | None:
    status, body = http(pod.url("api", "/api/v0/id"), pod.token, "POST")
    if status != 200:
        return None
    return json.loads(body).get("ID")


def connected_peers(pod: Pod) -> set[str]:
    status, body = http(pod.url("api", "/api/v0/swarm/peers"), pod.token, "POST")
    if status != 200:
        return set()
    return {p.get("Peer") for p in json.loads(body).get("Peers") or []}


def bootstrap_targets(cluster: Cluster, pod: Pod) -> list[tuple[Pod, str]]:
    """The pods `pod` bootstraps to, with the PeerId its address names."""
    out = []
    for arg in (pod.main.get("command") or []) + (pod.main.get("args") or []):
        if not arg.startswith("--bootstrap"):
            continue
        env = cluster.environment(pod, pod.main)
        addr = expand(arg.split("=", 1)[1], env)
        name = DNS_ADDR.search(addr)
        peer = re.search(r"/p2p/([^/]+)$", addr)
        if name and peer and name.group(1) in cluster.names:
            out.append((cluster.names[name.group(1)][0], peer.group(1)))
    return out


def run_pods(docs: list[Doc], binary: str, report: Report, keep: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="ipfsbench-k8s-check-"))
    try:
        values = secret_values(docs)
        placeholders = any(PLACEHOLDER.encode() in v for s in values.values() for v in s.values())
        try:
            replaced = replace_placeholders(values, binary, root)
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            report.fail("real values for the placeholder Secrets", str(e))
            return
        if replaced:
            print(f"     (placeholders replaced for the run: {', '.join(replaced)})")
        ready = run_cluster(Cluster(docs, binary, root / "run", values), report)
        if placeholders:
            # Only a pod that starts with real values shows anything by refusing placeholders.
            cluster = Cluster(docs, binary, root / "placeholders", secret_values(docs))
            refuse_placeholders(cluster, ready, report)
    finally:
        if keep:
            print(f"     (pod directories kept in {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run_cluster(cluster: Cluster, report: Report) -> set[str]:
    """Runs every pod; returns the names of those that became ready."""
    started = []
    try:
        for pod in cluster.pods:
            try:
                if cluster.start(pod, report):
                    started.append(pod)
                    print(f"     {pod.name}: {' '.join(pod.argv)}", flush=True)
            except (RuntimeError, KeyError, subprocess.SubprocessError, OSError) as e:
                report.fail(f"{pod.name}: runs", str(e))
        for pod in started:
            why = wait_ready(pod)
            if not report.check(
                f"{pod.name}: ready ({pod.main['readinessProbe']['httpGet']['path']})", why
            ):
                tail = pod.log_tail()
                if tail:
                    print(tail)
                continue
            for name in ("startupProbe", "livenessProbe"):
                if name in pod.main:
                    status = probe(pod, name)
                    report.check(
                        f"{pod.name}: {name} {pod.main[name]['httpGet']['path']} answers 200",
                        None if status == 200 else f"answered {status or 'nothing'}",
                    )
            closed = []
            for container_port, local in sorted(pod.ports.items()):
                try:
                    socket.create_connection(("127.0.0.1", local), timeout=3).close()
                except OSError:
                    closed.append(str(container_port))
            report.check(
                f"{pod.name}: every container port accepts connections",
                f"nothing listens for {', '.join(closed)}" if closed else None,
            )
        for pod in started:
            if not pod.ready:
                continue
            for target, want in bootstrap_targets(cluster, pod):
                name = f"{pod.name}: connected to {target.name} as {want[:16]}…"
                if not target.ready:
                    report.fail(name, f"{target.name} is not running")
                    continue
                got = peer_id(target)
                if got != want:
                    report.fail(name, f"{target.name} is {got}")
                    continue
                deadline = time.monotonic() + CONNECT_TIMEOUT
                while want not in connected_peers(pod) and time.monotonic() < deadline:
                    time.sleep(0.5)
                report.check(
                    name,
                    (
                        None
                        if want in connected_peers(pod)
                        else f"not connected within {CONNECT_TIMEOUT} s"
                    ),
                )
        for pod in started:
            if pod.process.poll() is not None and pod.ready:
                report.fail(
                    f"{pod.name}: keeps running", f"exited with status {pod.process.returncode}"
                )
    finally:
        for pod in started:
            running = pod.process.poll() is None
            status = cluster.stop(pod)
            if running:
                report.check(
                    f"{pod.name}: SIGTERM stops it with status 0",
                    (
                        None
                        if status == 0
                        else (
                            f"status {status}"
                            if status is not None
                            else "killed after the grace period"
                        )
                    ),
                )
    return {pod.name for pod in started if pod.ready}


def error_line(pod: Pod) -> str:
    """The line of the pod's log that says why it stopped."""
    lines = pod.log.read_text(errors="replace").splitlines() if pod.log else []
    found = next((line for line in lines if line.lower().startswith("error")), None)
    return (found or (lines[-1] if lines else "")).strip()


def refuse_placeholders(cluster: Cluster, ready: set[str], report: Report) -> None:
    """Each workload whose pod started with real values, given the Secrets as written, must
    not start."""
    for pod in cluster.pods:
        name = f"placeholders: {pod.name} refuses to start"
        if pod.name not in ready:
            print(f"     ({name}: not tried, it did not start with real values either)")
            continue
        try:
            quiet = Report(quiet=True)
            if not cluster.start(pod, quiet, "placeholders: "):
                report.ok(name + " (an init container failed)")
                continue
        except (RuntimeError, KeyError, subprocess.SubprocessError, OSError) as e:
            report.fail(name, str(e))
            continue
        deadline = pod.started + INIT_TIMEOUT
        served = False
        while pod.process.poll() is None and time.monotonic() < deadline:
            served = served or probe(pod, "readinessProbe") == 200
            time.sleep(0.25)
        status = pod.process.poll()
        cluster.stop(pod)
        if served or status is None or status == 0:
            report.fail(
                name,
                (
                    "it served"
                    if served
                    else f"still running after {INIT_TIMEOUT} s" if status is None else "exited 0"
                ),
            )
        else:
            report.ok(f"{name} (status {status}: {error_line(pod)[:100]})")
