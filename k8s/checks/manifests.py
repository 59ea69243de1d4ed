"""The manifests: loading them, and the checks that need no binary (schemas, the
kustomization, cross-references, the Dockerfile; `paths.py` has the names and files the
commands give)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .report import Report

# The oldest Kubernetes release the manifests target, and the newest kubernetes-validate
# 1.37.0 knows.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
# Where the Dockerfile puts the binary; the manifests run it by this path.
IMAGE_BINARY = "/opt/ipfsbench/ipfsbench-node"
WORKLOAD_KINDS = ("StatefulSet", "Deployment")


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
