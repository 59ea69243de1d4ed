"""The pods of the manifests as run here: volumes as directories, `$(VAR)` expansion, paths
and ports remapped, each container's command line and what it says, starting and
stopping."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .manifests import (
    DNS_ADDR,
    IMAGE_BINARY,
    WORKLOAD_KINDS,
    Doc,
    dns_names,
    pod_spec,
    port_number,
)
from .report import Report
from .values import INIT_TIMEOUT, config_map_values

# The image's working directory and its user's home.
IMAGE_WORKDIR = "/data"
# What the downward API gives a pod run here.
NAMESPACE = "check"


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
        self.pods = [self.new_pod(doc) for doc in docs if doc.kind in WORKLOAD_KINDS]
        self.names = {
            name: (self.pod_of(doc), service) for name, (doc, service) in dns_names(docs).items()
        }

    def new_pod(self, doc: Doc, ordinal: int = 0) -> Pod:
        """A pod of the workload: a StatefulSet's by its ordinal, else the one run here. Not
        in `pods` (the pods of the first run) unless the constructor made it."""
        name = f"{doc.name}-{ordinal}" if doc.kind == "StatefulSet" else f"{doc.name}-check"
        pod = Pod(doc, name, self.root / name)
        for c in pod.spec.get("containers") or []:
            for p in c.get("ports") or []:
                pod.ports[p["containerPort"]] = free_port()
        return pod

    def pod_of(self, doc: Doc) -> Pod:
        return next(p for p in self.pods if p.doc is doc)

    # What the main container's arguments say

    def flag(self, pod: Pod, name: str) -> str | None:
        """The value of `--name=VALUE` (or `--name VALUE`) in the main container's command
        line, `$(VAR)` expanded, mount paths as in the manifest."""
        env = self.environment(pod, pod.main)
        args = (pod.main.get("command") or []) + (pod.main.get("args") or [])
        argv = [expand(a, env) for a in args]
        for i, arg in enumerate(argv):
            if arg.startswith(f"--{name}="):
                return arg.split("=", 1)[1]
            if arg == f"--{name}" and i + 1 < len(argv):
                return argv[i + 1]
        return None

    def join_secret(self, pod: Pod) -> tuple[str, str] | None:
        """The (Secret, key) of the file the pod's `--join-file` names."""
        path = self.flag(pod, "join-file")
        if path is None:
            return None
        volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
        for m in pod.main.get("volumeMounts") or []:
            mount = m["mountPath"].rstrip("/") + "/"
            secret = (volumes.get(m["name"]) or {}).get("secret")
            if secret is None or not path.startswith(mount):
                continue
            relative = path[len(mount) :]
            items = secret.get("items") or [{"key": relative, "path": relative}]
            key = next((i["key"] for i in items if i["path"] == relative), None)
            if key is None or key not in self.secrets.get(secret["secretName"], {}):
                raise RuntimeError(
                    f"--join-file={path}: Secret {secret['secretName']} gives no {relative}"
                )
            return secret["secretName"], key
        raise RuntimeError(f"--join-file={path}: no Secret is mounted there")

    def secrets_used(self, pod: Pod) -> set[str]:
        """The Secrets the pod's volumes and its containers' environments name."""
        used = {(v.get("secret") or {}).get("secretName") for v in pod.spec.get("volumes") or []}
        for c in (pod.spec.get("initContainers") or []) + (pod.spec.get("containers") or []):
            for e in c.get("env") or []:
                used.add(((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name"))
        return used - {None}

    def invite_address(self, master: Pod) -> str | None:
        """The address an invite of `master` gives, as the manifests name it: its DNS name
        (`<statefulset>-0.<service>`) and the TCP port it listens on."""
        listen = self.flag(master, "listen") or ""
        port = re.search(r"/tcp/(\d+)", listen)
        name = next((n for n, (p, s) in self.names.items() if p is master and s is None), None)
        if port is None or name is None:
            return None
        return f"/dns4/{name}/tcp/{port.group(1)}"

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

    def as_in_pod(self, pod: Pod, text: str) -> str:
        """`text` with the volumes' local directories written as the pod mounts them (the
        first mount of each), so that messages read as in the pod."""
        table = {}
        for c in (pod.spec.get("initContainers") or []) + (pod.spec.get("containers") or []):
            for m in c.get("volumeMounts") or []:
                local = str(pod.root / "volumes" / m["name"])
                table.setdefault(local, m["mountPath"].rstrip("/"))
        for local in sorted(table, key=len, reverse=True):
            text = text.replace(local, table[local])
        return text

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
                    else f"exit {done.returncode}: "
                    + self.as_in_pod(pod, (done.stderr or done.stdout).strip())[-400:]
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
