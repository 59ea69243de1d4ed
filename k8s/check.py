#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in this directory, with no cluster.

    python3 k8s/check.py [--manifests DIR] [--static-only] [BINARY]

BINARY is the ipfsbench-node to run (default: $IPFSBENCH_NODE_BIN). Needs Python 3.11,
PyYAML and `kubernetes-validate` (which carries the Kubernetes JSON schemas).

Static checks:
- every object validates against the Kubernetes schemas of KUBERNETES_VERSIONS in strict
  mode (unknown fields, wrong types and missing required fields fail);
- kustomization.yaml lists every manifest here and only files that exist;
- what the objects name exists: volumes of mounts, ConfigMaps and Secrets and their keys,
  probe and Service ports, StatefulSets' headless Services, the pods bootstrap addresses
  name, the Dockerfile's binary, user and ports; every container runs as non-root on a
  read-only root file system with resource requests and limits.

Run checks: one pod of every workload is run here as the kubelet would run it, from the
manifests' own command lines:
- volumes become directories of a temporary root: ConfigMaps and Secrets are written out as
  files, emptyDirs and volume claims are empty directories; mount paths in commands are
  rewritten to those directories, and IMAGE_BINARY to BINARY;
- `$(VAR)` in commands and arguments is expanded from the container's `env` as Kubernetes
  does (secretKeyRef and configMapKeyRef from the manifests, fieldRef from the pod);
- Secret values holding PLACEHOLDER are replaced by fresh real ones (a key made by
  `BINARY init`, a random swarm key and token); what was replaced is printed;
- ports are remapped to free ones on 127.0.0.1: `0.0.0.0:PORT` and `/ip4/0.0.0.0/tcp/PORT`
  of a declared container port become that port's local stand-in, and `/dns4/NAME/tcp/PORT`
  naming a pod run here (`<statefulset>-0.<service>`, or a Service) becomes
  `/dns4/localhost/tcp/<its stand-in>`, so bootstrap addresses still go through DNS;
- init containers run first and must exit 0; then each pod's readiness probe must answer
  200 within READY_TIMEOUT s while the process keeps running, its startup and liveness
  probe paths must answer 200, and every declared TCP port must accept connections;
- a pod that bootstraps to another must be connected to it within CONNECT_TIMEOUT s, and
  the peer it reaches must have the PeerId the address names (the master's key from the
  Secret was taken);
- SIGTERM must stop each pod with exit status 0 within its termination grace period;
- when the Secrets hold placeholders, each workload is run again with them as they are and
  must refuse to start (exit non-zero, never ready).

One line per check, then `k8s/check.py: N passed, N failed`; the exit status is 1 when a
check failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# The oldest Kubernetes release the manifests target, and the newest kubernetes-validate
# 1.37.0 knows.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
# Where the Dockerfile puts the binary; the manifests run it by this path.
IMAGE_BINARY = "/opt/ipfsbench/ipfsbench-node"
# The image's working directory and its user's home.
IMAGE_WORKDIR = "/data"
# Secret values holding this are placeholders.
PLACEHOLDER = "REPLACE_ME"
# Seconds a pod may take to pass its readiness probe, counted from its start.
READY_TIMEOUT = 60
# Seconds a bootstrapping pod may take to be connected to its bootstrap peer once ready.
CONNECT_TIMEOUT = 30
# Seconds an init container, or a pod given placeholders, may run.
INIT_TIMEOUT = 60
# What the downward API gives a pod run here.
NAMESPACE = "check"
WORKLOAD_KINDS = ("StatefulSet", "Deployment")


class Report:
    """Counts checks and prints one line per check."""

    def __init__(self, quiet: bool = False) -> None:
        self.passed = 0
        self.failed = 0
        self.quiet = quiet

    def ok(self, name: str) -> None:
        self.passed += 1
        if not self.quiet:
            print(f"ok   {name}", flush=True)

    def fail(self, name: str, why: str) -> None:
        self.failed += 1
        if not self.quiet:
            print(f"FAIL {name}: {why}", flush=True)

    def check(self, name: str, why: str | None) -> bool:
        """`why` is None when the check passed."""
        if why is None:
            self.ok(name)
            return True
        self.fail(name, why)
        return False


@dataclass
class Doc:
    """One object from a manifest file."""

    file: str
    obj: dict

    @property
    def kind(self) -> str:
        return self.obj.get("kind", "?")

    @property
    def name(self) -> str:
        return (self.obj.get("metadata") or {}).get("name", "?")

    @property
    def ref(self) -> str:
        return f"{self.file} {self.kind}/{self.name}"


# ---------------------------------------------------------------------------------------
# Loading


def load_manifests(directory: Path, report: Report) -> tuple[dict | None, list[Doc]]:
    """The kustomization and every object of the other YAML files, in the kustomization's
    order (so pods start in it), then the files it does not list."""
    kustomization = None
    path = directory / "kustomization.yaml"
    try:
        loaded = list(yaml.safe_load_all(path.read_text())) if path.is_file() else []
        kustomization = loaded[0] if len(loaded) == 1 and isinstance(loaded[0], dict) else None
        report.check(f"parse {path.name}", None if kustomization else "expected one mapping")
    except yaml.YAMLError as e:
        report.fail(f"parse {path.name}", str(e).replace("\n", " "))
    files = sorted(p.name for p in directory.glob("*.y*ml") if p.name != path.name)
    listed = [r for r in (kustomization or {}).get("resources") or [] if r in files]
    docs: list[Doc] = []
    for name in dict.fromkeys(listed + files):
        try:
            loaded = [d for d in yaml.safe_load_all((directory / name).read_text()) if d]
        except yaml.YAMLError as e:
            report.fail(f"parse {name}", str(e).replace("\n", " "))
            continue
        bad = [d for d in loaded if not isinstance(d, dict)]
        if report.check(
            f"parse {name}", f"{len(bad)} document(s) are not mappings" if bad else None
        ):
            docs.extend(Doc(name, d) for d in loaded)
    return kustomization, docs


# ---------------------------------------------------------------------------------------
# Static checks


def check_schemas(docs: list[Doc], report: Report) -> None:
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import SchemaNotFoundError
    except ImportError as e:
        report.fail("kubernetes-validate is installed", str(e))
        return
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            name = f"schema {doc.ref} (Kubernetes {version}, strict)"
            try:
                kubernetes_validate.validate(doc.obj, version, strict=True)
            except SchemaNotFoundError as e:
                report.fail(name, e.message)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                report.fail(name, f"{where}: {e.message}")
            except Exception as e:  # a malformed object, e.g. without apiVersion
                report.fail(name, f"{type(e).__name__}: {e}")
            else:
                report.ok(name)


KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "images"}


def check_kustomization(
    directory: Path, kustomization: dict | None, docs: list[Doc], report: Report
) -> None:
    if kustomization is None:
        report.fail("kustomization.yaml", "missing or not one document")
        return
    problems = []
    if kustomization.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
        problems.append(f"apiVersion {kustomization.get('apiVersion')!r}")
    if kustomization.get("kind") != "Kustomization":
        problems.append(f"kind {kustomization.get('kind')!r}")
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        problems.append(f"keys this check does not know: {sorted(unknown)}")
    report.check("kustomization.yaml: a Kustomization", "; ".join(problems) or None)

    resources = kustomization.get("resources") or []
    missing = [r for r in resources if not (directory / r).is_file()]
    report.check(
        "kustomization.yaml: every resource exists",
        f"missing {missing}" if missing else None,
    )
    dupes = sorted({r for r in resources if resources.count(r) > 1})
    files = {p.name for p in directory.glob("*.y*ml") if p.name != "kustomization.yaml"}
    unlisted = sorted(files - set(resources))
    report.check(
        "kustomization.yaml: lists every manifest once",
        "; ".join(
            x
            for x in (
                f"not listed: {unlisted}" if unlisted else "",
                f"listed twice: {dupes}" if dupes else "",
            )
            if x
        )
        or None,
    )
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for doc in docs:
        key = (doc.kind, doc.name)
        if key in seen:
            clashes.append(f"{doc.kind}/{doc.name} in {seen[key]} and {doc.file}")
        seen[key] = doc.file
    report.check("objects: one of each kind and name", "; ".join(clashes) or None)

    used = {image_name(c.get("image", "")) for doc in docs for c in all_containers(doc)}
    images = kustomization.get("images") or []
    unused = [i.get("name") for i in images if i.get("name") not in used]
    report.check(
        "kustomization.yaml: images name the containers' image",
        f"no container uses {unused}" if unused else None,
    )


def image_name(image: str) -> str:
    """`name` of `name[:tag][@digest]` (a registry port stays in the name)."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image = image[: len(image) - len(last) + last.index(":")]
    return image


def pod_spec(doc: Doc) -> dict | None:
    if doc.kind in WORKLOAD_KINDS:
        return ((doc.obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def pod_labels(doc: Doc) -> dict:
    template = (doc.obj.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def all_containers(doc: Doc) -> list[dict]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def find(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in docs if d.kind == kind and d.name == name), None)


def object_keys(doc: Doc) -> set[str]:
    keys = set()
    for section in ("data", "stringData", "binaryData"):
        keys.update((doc.obj.get(section) or {}).keys())
    return keys


def port_number(container: dict, port) -> int | None:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    for p in container.get("ports") or []:
        if port == p.get("name") or port == p.get("containerPort"):
            return p.get("containerPort")
    return None


def check_references(docs: list[Doc], report: Report) -> None:
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        problems = []
        labels = pod_labels(doc)
        match = ((doc.obj["spec"].get("selector") or {}).get("matchLabels")) or {}
        if not match or any(labels.get(k) != v for k, v in match.items()):
            problems.append("selector.matchLabels do not match the pod labels")
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for claim in doc.obj["spec"].get("volumeClaimTemplates") or []:
            volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": {}}
        for v in volumes.values():
            source = v.get("configMap") or v.get("secret")
            if source is None:
                continue
            kind = "ConfigMap" if "configMap" in v else "Secret"
            name = source.get("name") or source.get("secretName")
            target = find(docs, kind, name)
            if target is None:
                problems.append(f"volume {v['name']}: no {kind} {name}")
                continue
            for item in source.get("items") or []:
                if item.get("key") not in object_keys(target):
                    problems.append(
                        f"volume {v['name']}: {kind} {name} has no key {item.get('key')}"
                    )
        for c in all_containers(doc):
            where = f"container {c.get('name')}"
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in volumes:
                    problems.append(f"{where}: mount of unknown volume {m.get('name')}")
            for e in c.get("env") or []:
                ref = e.get("valueFrom") or {}
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if key in ref:
                        target = find(docs, kind, ref[key].get("name"))
                        if target is None or ref[key].get("key") not in object_keys(target):
                            problems.append(
                                f"{where}: env {e.get('name')}: no {kind} key "
                                f"{ref[key].get('name')}/{ref[key].get('key')}"
                            )
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = ((c.get(probe) or {}).get("httpGet")) or {}
                if get and port_number(c, get.get("port")) is None:
                    problems.append(
                        f"{where}: {probe} port {get.get('port')} is not a container port"
                    )
            security = c.get("securityContext") or {}
            if not security.get("readOnlyRootFilesystem"):
                problems.append(f"{where}: root file system not read-only")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation not false")
            resources = c.get("resources") or {}
            for section in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in (resources.get(section) or {}):
                        problems.append(f"{where}: no {section}.{res}")
        pod_security = spec.get("securityContext") or {}
        if not pod_security.get("runAsNonRoot") or not pod_security.get("runAsUser"):
            problems.append("pod does not run as a non-root user")
        annotations = (
            (doc.obj["spec"]["template"].get("metadata") or {}).get("annotations")
        ) or {}
        if annotations.get("prometheus.io/scrape") == "true":
            port = annotations.get("prometheus.io/port", "")
            declared = {
                str(p.get("containerPort"))
                for c in spec.get("containers") or []
                for p in c.get("ports") or []
            }
            if port not in declared:
                problems.append(f"prometheus.io/port {port!r} is not a container port")
        if doc.kind == "StatefulSet":
            service = find(docs, "Service", doc.obj["spec"].get("serviceName", ""))
            if service is None:
                problems.append(f"no Service {doc.obj['spec'].get('serviceName')}")
            elif service.obj["spec"].get("clusterIP") != "None":
                problems.append(f"Service {service.name} is not headless")
        report.check(f"references {doc.ref}", "; ".join(problems) or None)

    for doc in docs:
        if doc.kind != "Service":
            continue
        selector = doc.obj["spec"].get("selector") or {}
        selected = [
            w
            for w in docs
            if w.kind in WORKLOAD_KINDS
            and selector
            and all(pod_labels(w).get(k) == v for k, v in selector.items())
        ]
        problems = []
        if not selected:
            problems.append("selects no workload")
        for port in doc.obj["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for w in selected:
                if not any(port_number(c, target) for c in pod_spec(w).get("containers") or []):
                    problems.append(f"{w.kind}/{w.name} has no port {target}")
        report.check(f"references {doc.ref}", "; ".join(problems) or None)


def dns_names(docs: list[Doc]) -> dict[str, tuple[Doc, dict | None]]:
    """Names pods resolve to one pod run here: `<statefulset>-0.<service>` (the pod run
    here; other ordinals are not), and ClusterIP Services (with the Service, to map its
    ports)."""
    names: dict[str, tuple[Doc, dict | None]] = {}
    for doc in docs:
        if doc.kind == "StatefulSet":
            names[f"{doc.name}-0.{doc.obj['spec'].get('serviceName')}"] = (doc, None)
    for doc in docs:
        if doc.kind == "Service" and doc.obj["spec"].get("clusterIP") != "None":
            selector = doc.obj["spec"].get("selector") or {}
            for w in docs:
                if (
                    w.kind in WORKLOAD_KINDS
                    and selector
                    and all(pod_labels(w).get(k) == v for k, v in selector.items())
                ):
                    names[doc.name] = (w, doc.obj)
                    break
    return names


DNS_ADDR = re.compile(r"/dns4?/([^/]+)/tcp/(\d+)")


def check_bootstrap_names(docs: list[Doc], report: Report) -> None:
    """Every `/dns4/NAME` in an argument names a pod of these manifests (with ordinal
    within the StatefulSet's replicas) or a Service."""
    replicas = {
        f"{d.name}-{i}.{d.obj['spec'].get('serviceName')}"
        for d in docs
        if d.kind == "StatefulSet"
        for i in range(d.obj["spec"].get("replicas", 1))
    }
    services = {d.name for d in docs if d.kind == "Service"}
    for doc in docs:
        unknown = []
        for c in all_containers(doc):
            for arg in (c.get("command") or []) + (c.get("args") or []):
                for name, _port in DNS_ADDR.findall(arg):
                    if name not in replicas and name not in services:
                        unknown.append(name)
        if pod_spec(doc) is not None:
            report.check(
                f"dns names {doc.ref}",
                f"no pod or Service is named {sorted(set(unknown))}" if unknown else None,
            )


def check_dockerfile(dockerfile: Path, docs: list[Doc], report: Report) -> None:
    if not dockerfile.is_file():
        report.fail("Dockerfile", f"{dockerfile} is missing")
        return
    text = dockerfile.read_text()
    problems = []
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)
    if not entry or json.loads(entry.group(1))[:1] != [IMAGE_BINARY]:
        problems.append(f"ENTRYPOINT is not [{IMAGE_BINARY!r}]")
    user = re.search(r"^USER\s+(\d+)", text, re.M)
    exposed = {
        int(token.split("/")[0])
        for line in re.findall(r"^EXPOSE\s+(.*)$", text, re.M)
        for token in line.split()
        if not token.endswith("/udp")
    }
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        uid = (spec.get("securityContext") or {}).get("runAsUser")
        if not user or int(user.group(1)) != uid:
            problems.append(
                f"{doc.kind}/{doc.name} runs as {uid}, the image as {user and user.group(1)}"
            )
        for c in all_containers(doc):
            command = c.get("command") or []
            if command[:1] not in ([IMAGE_BINARY], ["/bin/sh"]):
                problems.append(f"{doc.kind}/{doc.name} {c.get('name')} runs {command[:1]}")
            for p in c.get("ports") or []:
                if p.get("protocol", "TCP") == "TCP" and p.get("containerPort") not in exposed:
                    problems.append(f"port {p.get('containerPort')} is not in EXPOSE")
    report.check("Dockerfile matches the manifests", "; ".join(sorted(set(problems))) or None)


# ---------------------------------------------------------------------------------------
# Running the pods


def secret_values(docs: list[Doc]) -> dict[str, dict[str, bytes]]:
    out = {}
    for doc in docs:
        if doc.kind != "Secret":
            continue
        values = {k: base64.b64decode(v) for k, v in (doc.obj.get("data") or {}).items()}
        values.update({k: v.encode() for k, v in (doc.obj.get("stringData") or {}).items()})
        out[doc.name] = values
    return out


def config_map_values(docs: list[Doc]) -> dict[str, dict[str, bytes]]:
    out = {}
    for doc in docs:
        if doc.kind != "ConfigMap":
            continue
        values = {k: v.encode() for k, v in (doc.obj.get("data") or {}).items()}
        values.update(
            {k: base64.b64decode(v) for k, v in (doc.obj.get("binaryData") or {}).items()}
        )
        out[doc.name] = values
    return out


def replace_placeholders(
    values: dict[str, dict[str, bytes]], binary: str, scratch: Path
) -> list[str]:
    """Real values for the placeholders, by key: `identity.key` with `peer-id` (one key made
    by `init`), `swarm.key`, `token`. Returns what was replaced; raises on a placeholder
    this does not know how to fill."""
    replaced = []
    identity: tuple[bytes, bytes] | None = None
    for secret, keys in values.items():
        for key, value in list(keys.items()):
            if PLACEHOLDER.encode() not in value:
                continue
            if key in ("identity.key", "peer-id"):
                if identity is None:
                    repo = scratch / "identity"
                    subprocess.run(
                        [binary, "--repo", str(repo), "init"],
                        check=True,
                        capture_output=True,
                        timeout=INIT_TIMEOUT,
                    )
                    peer = re.search(
                        r'^peer_id = "([^"]+)"', (repo / "config.toml").read_text(), re.M
                    )
                    if peer is None:
                        raise RuntimeError("init wrote no peer_id")
                    identity = ((repo / "identity.key").read_bytes(), peer.group(1).encode())
                keys[key] = identity[0] if key == "identity.key" else identity[1]
            elif key == "swarm.key":
                keys[key] = f"/key/swarm/psk/1.0.0/\n/base16/\n{secrets.token_hex(32)}\n".encode()
            elif key == "token":
                keys[key] = f"{secrets.token_urlsafe(32)}\n".encode()
            else:
                raise RuntimeError(f"Secret {secret} key {key}: no way to make a real value")
            replaced.append(f"{secret}/{key}")
    return replaced


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of `$(VAR)` in command, args and env values: defined
    variables are replaced, `$$` is a literal `$`, anything else stays as written."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1 and text[i + 2 : end] in env:
                out.append(env[text[i + 2 : end]])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


@dataclass
class Pod:
    """One pod of a workload, run here."""

    doc: Doc
    name: str
    root: Path
    ports: dict[int, int] = field(default_factory=dict)  # container port -> local port
    process: subprocess.Popen | None = None
    log: Path | None = None
    started: float = 0.0
    ready: bool = False
    token: str | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict:
        return pod_spec(self.doc) or {}

    @property
    def main(self) -> dict:
        return (self.spec.get("containers") or [{}])[0]

    def local(self, port) -> int | None:
        number = port_number(self.main, port)
        return self.ports.get(number) if number is not None else None

    def url(self, port, path: str) -> str:
        return f"http://127.0.0.1:{self.local(port)}{path}"

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    | {line}" for line in tail)


class Cluster:
    """The pods of the manifests, their volumes in a temporary root."""

    def __init__(
        self, docs: list[Doc], binary: str, root: Path, secrets_: dict[str, dict[str, bytes]]
    ):
        self.docs = docs
        self.binary = binary
        self.root = root
        self.secrets = secrets_
        self.config_maps = config_map_values(docs)
        self.pods: list[Pod] = []
        for doc in docs:
            if doc.kind not in WORKLOAD_KINDS:
                continue
            name = f"{doc.name}-0" if doc.kind == "StatefulSet" else f"{doc.name}-check"
            pod = Pod(doc, name, root / name)
            for c in pod.spec.get("containers") or []:
                for p in c.get("ports") or []:
                    pod.ports[p["containerPort"]] = free_port()
            self.pods.append(pod)
        self.names = {
            name: (self.pod_of(doc), service) for name, (doc, service) in dns_names(docs).items()
        }

    def pod_of(self, doc: Doc) -> Pod:
        return next(p for p in self.pods if p.doc is doc)

    # Volumes and paths

    def materialise(self, pod: Pod) -> dict[str, Path]:
        """Writes the pod's volumes out; returns the directory of each."""
        dirs = {}
        volumes = list(pod.spec.get("volumes") or [])
        volumes += [
            {"name": c["metadata"]["name"], "persistentVolumeClaim": {}}
            for c in pod.doc.obj["spec"].get("volumeClaimTemplates") or []
        ]
        for v in volumes:
            d = pod.root / "volumes" / v["name"]
            d.mkdir(parents=True, exist_ok=True)
            dirs[v["name"]] = d
            if "secret" in v or "configMap" in v:
                source = v.get("secret") or v.get("configMap")
                values = (
                    self.secrets[source["secretName"]]
                    if "secret" in v
                    else self.config_maps[source["name"]]
                )
                mode = source.get("defaultMode", 0o644)
                items = source.get("items") or [{"key": k, "path": k} for k in values]
                for item in items:
                    f = d / item["path"]
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(values[item["key"]])
                    os.chmod(f, item.get("mode", mode))
            elif not ({"emptyDir", "persistentVolumeClaim"} & set(v)):
                raise RuntimeError(f"volume {v['name']}: a kind this check cannot make")
        return dirs

    def mounts(self, container: dict, dirs: dict[str, Path]) -> list[tuple[str, str]]:
        """(mount path, local path), longest mount path first."""
        out = []
        for m in container.get("volumeMounts") or []:
            local = dirs[m["name"]] / m.get("subPath", "")
            out.append((m["mountPath"].rstrip("/") or "/", str(local)))
        out.append((IMAGE_BINARY, self.binary))
        return sorted(out, key=lambda x: -len(x[0]))

    @staticmethod
    def remap_paths(text: str, mounts: list[tuple[str, str]]) -> str:
        """Mount paths (whole path components) to their local directories, in one pass so
        that a local directory is not rewritten again."""
        table = dict(mounts)
        pattern = "|".join(re.escape(path) for path, _ in mounts)
        return re.sub(rf"(?<![\w./-])(?:{pattern})(?![\w.-])", lambda m: table[m.group(0)], text)

    def remap_ports(self, text: str, pod: Pod) -> str:
        text = re.sub(
            r"(/ip4/)0\.0\.0\.0(/tcp/)(\d+)",
            lambda m: f"/ip4/127.0.0.1/tcp/{self._local(pod, int(m.group(3)), m.group(0))}",
            text,
        )
        text = re.sub(
            r"(?<![\w.])(0\.0\.0\.0:)(\d+)",
            lambda m: f"127.0.0.1:{self._local(pod, int(m.group(2)), m.group(0))}",
            text,
        )

        def dns(match: re.Match) -> str:
            name, port = match.group(1), int(match.group(2))
            if name not in self.names:
                raise RuntimeError(f"{match.group(0)}: {name} is not a pod run here")
            target, service = self.names[name]
            if service is not None:
                sp = next((p for p in service["spec"]["ports"] if p["port"] == port), None)
                if sp is None:
                    raise RuntimeError(f"{match.group(0)}: Service {name} has no port {port}")
                port = port_number(target.main, sp.get("targetPort", port)) or port
            return f"/dns4/localhost/tcp/{self._local(target, port, match.group(0))}"

        return DNS_ADDR.sub(dns, text)

    @staticmethod
    def _local(pod: Pod, port: int, where: str) -> int:
        if port not in pod.ports:
            raise RuntimeError(f"{where}: port {port} is not a container port of {pod.name}")
        return pod.ports[port]

    def environment(self, pod: Pod, container: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        fields = {
            "metadata.name": pod.name,
            "metadata.namespace": NAMESPACE,
            "status.podIP": "127.0.0.1",
            "spec.nodeName": "check-node",
        }
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
                continue
            ref = e.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                env[e["name"]] = self.secrets[r["name"]][r["key"]].decode()
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                env[e["name"]] = self.config_maps[r["name"]][r["key"]].decode()
            elif "fieldRef" in ref and ref["fieldRef"].get("fieldPath") in fields:
                env[e["name"]] = fields[ref["fieldRef"]["fieldPath"]]
            else:
                raise RuntimeError(f"env {e['name']}: a source this check cannot give")
        return env

    def command_line(
        self, pod: Pod, container: dict, dirs: dict[str, Path]
    ) -> tuple[list[str], dict, Path]:
        """The container's command as run here, its environment and working directory."""
        env = self.environment(pod, container)
        mounts = self.mounts(container, dirs)
        argv = []
        for arg in (container.get("command") or []) + (container.get("args") or []):
            arg = expand(arg, env)
            unresolved = re.findall(r"\$\(([^)]*)\)", arg)
            if unresolved:
                raise RuntimeError(f"{arg!r}: $({unresolved[0]}) is not in the container's env")
            argv.append(self.remap_ports(self.remap_paths(arg, mounts), pod))
        if not argv:
            raise RuntimeError("no command: the image's entrypoint is not run by this check")
        # The image's working directory and home, and /tmp, where the container mounts them;
        # elsewhere a directory of the pod's own.
        workdir = self.remap_paths(IMAGE_WORKDIR, mounts)
        cwd = Path(workdir) if workdir != IMAGE_WORKDIR else pod.root / "home"
        cwd.mkdir(parents=True, exist_ok=True)
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
        tmp = self.remap_paths("/tmp", mounts)
        if tmp != "/tmp":
            process_env["TMPDIR"] = tmp
        process_env.update(env)
        return argv, process_env, cwd

    # Running

    def start(self, pod: Pod, report: Report, label: str = "") -> bool:
        """Runs the init containers, then starts the main container."""
        shutil.rmtree(pod.root, ignore_errors=True)
        pod.root.mkdir(parents=True)
        dirs = self.materialise(pod)
        for init in pod.spec.get("initContainers") or []:
            argv, env, cwd = self.command_line(pod, init, dirs)
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=INIT_TIMEOUT, cwd=cwd
            )
            name = f"{label}{pod.name}: init container {init['name']} exits 0"
            if not report.check(
                name,
                (
                    None
                    if done.returncode == 0
                    else f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}"
                ),
            ):
                return False
        argv, env, cwd = self.command_line(pod, pod.main, dirs)
        pod.argv = argv
        token_file = next(
            (a.split("=", 1)[1] for a in argv if a.startswith("--api-token-file=")), None
        )
        if token_file and Path(token_file).is_file():
            pod.token = Path(token_file).read_text().strip()
        pod.log = pod.root / "node.log"
        with open(pod.log, "wb") as log:
            pod.process = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
            )
        pod.started = time.monotonic()
        return True

    def stop(self, pod: Pod) -> int | None:
        """SIGTERM, then the exit status within the grace period (None: it had to be
        killed)."""
        if pod.process is None:
            return None
        if pod.process.poll() is None:
            pod.process.send_signal(signal.SIGTERM)
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        try:
            return pod.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait()
            return None


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


# ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "binary",
        nargs="?",
        default=os.environ.get("IPFSBENCH_NODE_BIN"),
        help="the ipfsbench-node to run [default: $IPFSBENCH_NODE_BIN]",
    )
    parser.add_argument(
        "--manifests",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="the manifests' directory [default: this script's]",
    )
    parser.add_argument(
        "--dockerfile",
        type=Path,
        default=None,
        help="[default: the Dockerfile beside the manifests' directory]",
    )
    parser.add_argument("--static-only", action="store_true", help="do not run the pods")
    parser.add_argument("--keep", action="store_true", help="keep the pods' directories")
    args = parser.parse_args()

    report = Report()
    kustomization, docs = load_manifests(args.manifests, report)
    check_schemas(docs, report)
    check_kustomization(args.manifests, kustomization, docs, report)
    check_references(docs, report)
    check_bootstrap_names(docs, report)
    check_dockerfile(args.dockerfile or args.manifests.parent / "Dockerfile", docs, report)
    if not args.static_only:
        if not args.binary:
            report.fail(
                "run the pods", "no binary: give one, set IPFSBENCH_NODE_BIN, or --static-only"
            )
        elif not os.access(args.binary, os.X_OK):
            report.fail("run the pods", f"{args.binary} is not an executable")
        else:
            run_pods(docs, os.path.abspath(args.binary), report, args.keep)
    print(f"k8s/check.py: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
