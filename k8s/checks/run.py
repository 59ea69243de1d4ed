"""Running the pods: readiness, probes, ports, the cluster they form (membership.py),
scaling up, SIGTERM, and the refusal of placeholder Secrets."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .api import probe, wait_ready
from .cluster import Cluster, Pod
from .manifests import Doc
from .membership import (
    check_knows_master,
    check_master,
    check_member,
    check_pin,
    check_task,
    issue_invites,
    role,
)
from .report import Report
from .values import INIT_TIMEOUT, is_placeholder, replace_placeholders, secret_values


def run_pods(docs: list[Doc], binary: str, report: Report, keep: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="ipfsbench-k8s-check-"))
    try:
        values = secret_values(docs)
        held = [s for s, keys in values.items() if any(map(is_placeholder, keys.values()))]
        cluster = Cluster(docs, binary, root / "run", values)
        try:
            later = {cluster.join_secret(p) for p in cluster.pods} - {None}
            replaced = replace_placeholders(values, binary, root, later)
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            report.fail("real values for the placeholder Secrets", str(e))
            return
        if replaced:
            print(f"     (placeholders replaced for the run: {', '.join(replaced)})")
        ready = run_cluster(cluster, report)
        if not held:
            return
        # Only a pod that starts with real values shows anything by refusing placeholders:
        # the pods that use a Secret holding placeholders, given the Secrets as written...
        cluster = Cluster(docs, binary, root / "placeholders", secret_values(docs))
        users = [p for p in cluster.pods if set(held) & cluster.secrets_used(p)]
        refuse_placeholders(cluster, users, ready, report, "to start")
        # ...then each such Secret as written with the others real, so that each refusal
        # shows.
        for secret in held:
            as_written = {**values, secret: secret_values(docs)[secret]}
            cluster = Cluster(docs, binary, root / f"placeholder-{secret}", as_written)
            users = [p for p in cluster.pods if secret in cluster.secrets_used(p)]
            refuse_placeholders(cluster, users, ready, report, f"{secret} as written")
    finally:
        if keep:
            print(f"     (pod directories kept in {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def bring_up(cluster: Cluster, pods: list[Pod], report: Report, started: list[Pod]) -> None:
    """Starts the pods (init containers first), then checks each one's readiness, probes
    and ports."""
    for pod in pods:
        try:
            if cluster.start(pod, report):
                started.append(pod)
                print(f"     {pod.name}: {' '.join(pod.argv)}", flush=True)
        except (RuntimeError, KeyError, subprocess.SubprocessError, OSError) as e:
            report.fail(f"{pod.name}: runs", str(e))
    for pod in pods:
        if pod not in started:
            continue
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


def run_cluster(cluster: Cluster, report: Report) -> set[str]:
    """Runs the pods in the README's order: those that join with an invite after the
    others (the master), with the tokens the master issued; then one more pod of the
    workers' StatefulSet. Returns the names of the first pods that became ready."""
    started: list[Pod] = []
    try:
        joiners = [p for p in cluster.pods if cluster.join_secret(p)]
        bring_up(cluster, [p for p in cluster.pods if p not in joiners], report, started)
        master = next(
            (p for p in cluster.pods if p not in joiners and role(cluster, p) == "master"), None
        )
        issue_invites(cluster, master, joiners, report)
        # A pod whose token could not be issued is not started (its failure is reported).
        bring_up(cluster, [p for p in joiners if has_token(cluster, p)], report, started)
        if master is not None and master.ready:
            check_master(cluster, master, report)
            for pod in joiners:
                if pod.ready:
                    check_member(cluster, master, pod, report)
                    check_knows_master(master, pod, report)
            scale_up(cluster, master, joiners, report, started)
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
    return {pod.name for pod in started if pod.ready and pod in cluster.pods}


def has_token(cluster: Cluster, pod: Pod) -> bool:
    secret, key = cluster.join_secret(pod)
    return not is_placeholder(cluster.secrets[secret][key])


def scale_up(
    cluster: Cluster, master: Pod, joiners: list[Pod], report: Report, started: list[Pod]
) -> None:
    """The next pod of the workers' StatefulSet, from the same manifests and Secrets, joins
    the cluster with the same token, and gets a task and a pin."""
    first = next(
        (p for p in joiners if p.doc.kind == "StatefulSet" and role(cluster, p) == "worker"),
        None,
    )
    if first is None or not first.ready:
        return
    pod = cluster.new_pod(first.doc, ordinal=1)
    print(f"     (scaling {first.doc.name} up: {pod.name}, from the same manifests and Secrets)")
    bring_up(cluster, [pod], report, started)
    if not pod.ready:
        return
    # As an operator would after scaling up: the task and the pin as soon as the master
    # lists the new pod as a member.
    check_member(cluster, master, pod, report)
    check_task(master, pod, report)
    check_pin(master, pod, report)
    check_knows_master(master, pod, report)


def error_line(pod: Pod) -> str:
    """The line of the pod's log that says why it stopped."""
    lines = pod.log.read_text(errors="replace").splitlines() if pod.log else []
    found = next((line for line in lines if line.lower().startswith("error")), None)
    return (found or (lines[-1] if lines else "")).strip()


def refuse_placeholders(
    cluster: Cluster, pods: list[Pod], ready: set[str], report: Report, what: str
) -> None:
    """Each of the pods (of workloads whose pod started with real values), given the
    cluster's Secrets, must not start: an init container fails, or the node exits non-zero
    without ever being ready."""
    for pod in pods:
        name = f"placeholders: {pod.name} refuses {what}"
        if pod.name not in ready:
            print(f"     ({name}: not tried, it did not start with real values either)")
            continue
        try:
            quiet = Report(quiet=True)
            if not cluster.start(pod, quiet, "placeholders: "):
                failed, why = quiet.failures[-1]
                container = re.search(r"init container \S+", failed)
                why = cluster.as_in_pod(pod, why)
                report.ok(f"{name} ({container.group(0) if container else failed}: {why[:160]})")
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
            report.ok(f"{name} (status {status}: {cluster.as_in_pod(pod, error_line(pod))[:160]})")
