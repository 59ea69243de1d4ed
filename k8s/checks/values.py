"""Secret and ConfigMap values as the manifests give them, and real values for the
placeholders."""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from pathlib import Path

from .manifests import Doc

# Secret values holding this are placeholders.
PLACEHOLDER = "REPLACE_ME"
# Seconds an init container, or a pod given placeholders, may run.
INIT_TIMEOUT = 60
# The name of the cluster whose root replaces a placeholder (as in the README).
CLUSTER_NAME = "ipfsbench"


def is_placeholder(value: bytes) -> bool:
    return PLACEHOLDER.encode() in value


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
    values: dict[str, dict[str, bytes]],
    binary: str,
    scratch: Path,
    later: set[tuple[str, str]] = frozenset(),
) -> list[str]:
    """Real values for the placeholders, by key, made as the README makes them: `identity.key`
    with `peer-id` (a throwaway repo made by `init`), `root` (`cluster init` on that repo,
    then `cluster root export`), `token`. The (Secret, key) pairs in `later` are left for
    the caller (join tokens, which only the running master can issue). Returns what was
    replaced; raises on a placeholder this does not know how to fill."""
    replaced = []
    repo = scratch / "master-id"
    made: dict[str, bytes] = {}

    def run(*args: str) -> None:
        subprocess.run(
            [binary, "--repo", str(repo), *args],
            check=True,
            capture_output=True,
            timeout=INIT_TIMEOUT,
        )

    def throwaway() -> None:
        if "identity.key" in made:
            return
        run("init")
        peer = re.search(r'^peer_id = "([^"]+)"', (repo / "config.toml").read_text(), re.M)
        if peer is None:
            raise RuntimeError("init wrote no peer_id")
        made["identity.key"] = (repo / "identity.key").read_bytes()
        made["peer-id"] = peer.group(1).encode()

    for secret, keys in values.items():
        for key, value in list(keys.items()):
            if not is_placeholder(value) or (secret, key) in later:
                continue
            if key in ("identity.key", "peer-id"):
                throwaway()
                keys[key] = made[key]
            elif key == "root":
                if "root" not in made:
                    throwaway()
                    run("cluster", "init", "--name", CLUSTER_NAME, "--private")
                    run("cluster", "root", "export", str(scratch / "cluster.root"))
                    made["root"] = (scratch / "cluster.root").read_bytes()
                keys[key] = made["root"]
            elif key == "token":
                keys[key] = f"{secrets.token_urlsafe(32)}\n".encode()
            else:
                raise RuntimeError(f"Secret {secret} key {key}: no way to make a real value")
            replaced.append(f"{secret}/{key}")
    return replaced
