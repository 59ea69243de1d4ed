"""Talking to a pod run here: its HTTP API (with the bearer token from its Secret), its
probes, and waiting for it to be ready."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, TypeVar

from .cluster import Pod

# Seconds a pod may take to pass its readiness probe, counted from its start.
READY_TIMEOUT = 60

T = TypeVar("T")


def http(
    url: str,
    token: str | None = None,
    method: str = "GET",
    timeout: float = 3,
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, bytes]:
    """Status and body; 0 when nothing answered."""
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def call(pod: Pod, path: str, **query: str | int) -> tuple[int, dict]:
    """`POST /api/v0/<path>?<query>` on the pod's API: the status and the JSON answer ({}
    when it is not JSON)."""
    url = pod.url("api", f"/api/v0/{path}")
    if query:
        url += "?" + urllib.parse.urlencode({k.replace("_", "-"): v for k, v in query.items()})
    status, body = http(url, pod.token, "POST", timeout=10)
    try:
        answer = json.loads(body) if body else {}
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}


def add(pod: Pod, data: bytes, name: str) -> str | None:
    """Adds `data` as one file through `/api/v0/add` (multipart); its CID."""
    boundary = secrets.token_hex(16)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, answer = http(
        pod.url("api", "/api/v0/add"),
        pod.token,
        "POST",
        timeout=30,
        body=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    if status != 200:
        return None
    lines = [json.loads(line) for line in answer.splitlines() if line.strip()]
    return lines[-1].get("Hash") if lines else None


def peer_id(pod: Pod) -> str | None:
    status, answer = call(pod, "id")
    return answer.get("ID") if status == 200 else None


def connections(pod: Pod) -> dict[str, str]:
    """The peers the pod is connected to, with the address of each connection."""
    status, answer = call(pod, "swarm/peers")
    if status != 200:
        return {}
    return {p.get("Peer"): p.get("Addr", "") for p in answer.get("Peers") or []}


def poll(get: Callable[[], T], done: Callable[[T], bool], timeout: float, every=0.5) -> T:
    """`get()` until `done` holds of it or `timeout` s have passed; its last value."""
    deadline = time.monotonic() + timeout
    value = get()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(every)
        value = get()
    return value


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
