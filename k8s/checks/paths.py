"""What the containers' commands and the README name, checked without a binary: DNS
addresses name a pod or Service of the manifests and one of its ports, and paths under a
mounted Secret or ConfigMap name a file that the volume holds."""

from __future__ import annotations

import re
from pathlib import Path

from .manifests import DNS_ADDR, Doc, all_containers, find, object_keys, pod_spec
from .report import Report


def dns_targets(docs: list[Doc]) -> dict[str, set[int]]:
    """Every name pods resolve, with the ports it answers on: `<statefulset>-N.<service>`
    (N within the replicas) with the pod's container ports, and each Service with its
    ports."""
    targets: dict[str, set[int]] = {}
    for d in docs:
        if d.kind == "StatefulSet":
            ports = {
                p.get("containerPort")
                for c in (pod_spec(d) or {}).get("containers") or []
                for p in c.get("ports") or []
            }
            for i in range(d.obj["spec"].get("replicas", 1)):
                targets[f"{d.name}-{i}.{d.obj['spec'].get('serviceName')}"] = ports
        elif d.kind == "Service":
            targets[d.name] = {p.get("port") for p in d.obj["spec"].get("ports") or []}
    return targets


def unknown_addresses(text: str, targets: dict[str, set[int]]) -> list[str]:
    out = []
    for name, port in DNS_ADDR.findall(text):
        if name not in targets:
            out.append(f"no pod or Service is named {name}")
        elif int(port) not in targets[name]:
            out.append(f"{name} has no port {port}")
    return out


def check_dns_names(docs: list[Doc], readme: Path, report: Report) -> None:
    """Every `/dns4/NAME/tcp/PORT` in a container's arguments, and in the README's commands
    (the invites' `--addr`), names a pod of these manifests (with an ordinal within the
    StatefulSet's replicas) or a Service, and a port it has."""
    targets = dns_targets(docs)
    for doc in docs:
        if pod_spec(doc) is None:
            continue
        problems = []
        for c in all_containers(doc):
            for arg in (c.get("command") or []) + (c.get("args") or []):
                problems += unknown_addresses(arg, targets)
        report.check(f"dns names {doc.ref}", "; ".join(sorted(set(problems))) or None)
    if readme.is_file():
        problems = unknown_addresses(readme.read_text(), targets)
        report.check(f"dns names {readme.name}", "; ".join(sorted(set(problems))) or None)


def check_mounted_files(docs: list[Doc], report: Report) -> None:
    """A path in a container's command under one of its Secret or ConfigMap mounts (the
    join token, the root, the API token, the identity, the config) names a file that the
    volume holds: an item's path, or a key when the volume lists no items."""
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        problems = []
        for c in all_containers(doc):
            mounts = {}
            for m in c.get("volumeMounts") or []:
                v = volumes.get(m.get("name")) or {}
                source = v.get("secret") or v.get("configMap")
                if source is None or m.get("subPath"):
                    continue
                items = source.get("items")
                if items:
                    files = {i.get("path") for i in items}
                else:
                    kind = "Secret" if "secret" in v else "ConfigMap"
                    target = find(docs, kind, source.get("secretName") or source.get("name"))
                    files = object_keys(target) if target else set()
                mounts[m["mountPath"].rstrip("/")] = files
            for arg in (c.get("command") or []) + (c.get("args") or []):
                for mount, files in mounts.items():
                    for name in re.findall(rf"{re.escape(mount)}/([^\s'\"]+)", arg):
                        if name not in files:
                            problems.append(f"container {c.get('name')}: {mount}/{name}")
        report.check(
            f"mounted files {doc.ref}",
            f"not in the mounted volume: {'; '.join(problems)}" if problems else None,
        )
