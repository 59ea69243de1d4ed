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

This file reads the command line and runs the checks in order; they live in `checks/`
beside it (`manifests.py` the static ones, `cluster.py` and `run.py` the pods).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from checks.manifests import (
    check_bootstrap_names,
    check_dockerfile,
    check_kustomization,
    check_references,
    check_schemas,
    load_manifests,
)
from checks.report import Report
from checks.run import run_pods


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
