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
  probe and Service ports, StatefulSets' headless Services, the Dockerfile's binary, user
  and ports; every container runs as non-root on a read-only root file system with
  resource requests and limits;
- every `/dns4/NAME/tcp/PORT` in the containers' arguments and in README.md (the invites'
  `--addr`) names a pod of these manifests or a Service, and a port of it;
- every path a command names under a mounted Secret or ConfigMap (the join token, the
  root, the API token, the identity, the config) is a file that the volume holds.

Run checks: one pod of every workload is run here as the kubelet would run it, from the
manifests' own command lines:
- volumes become directories of a temporary root: ConfigMaps and Secrets are written out as
  files, emptyDirs and volume claims are empty directories; mount paths in commands are
  rewritten to those directories, and IMAGE_BINARY to BINARY;
- `$(VAR)` in commands and arguments is expanded from the container's `env` as Kubernetes
  does (secretKeyRef and configMapKeyRef from the manifests, fieldRef from the pod);
- Secret values holding PLACEHOLDER are replaced by real ones made as the README makes
  them: a throwaway repo made by `BINARY init` gives the master's key and PeerId, `cluster
  init --name ipfsbench --private` and `cluster root export` on it the root, and a random
  API token; what was replaced is printed;
- ports are remapped to free ones on 127.0.0.1: `0.0.0.0:PORT` and `/ip4/0.0.0.0/tcp/PORT`
  of a declared container port become that port's local stand-in, and `/dns4/NAME/tcp/PORT`
  naming a pod run here (`<statefulset>-0.<service>`, or a Service) becomes
  `/dns4/localhost/tcp/<its stand-in>`, so addresses still go through DNS;
- the pods that join with `--join-file` start after the others, as the README deploys
  them: once the master is ready, its API's `cluster/invite` must give a token for each
  join Secret key holding a placeholder (the role of the pods that read it, 1000 uses,
  720h, `--addr` the master's DNS address as the pods see it here), which then fills it;
- init containers run first and must exit 0; then each pod's readiness probe must answer
  200 within READY_TIMEOUT s while the process keeps running, its startup and liveness
  probe paths must answer 200, and every declared TCP port must accept connections;
- the master must run as the PeerId of its identity Secret, and be a master of the cluster
  of the root it imported (its `cluster/members`);
- each joining pod must be listed by the master's `cluster/members` as a member with its
  role (and see the same cluster), be connected to the master, and take the master for a
  master member (its own `cluster/peers`), each within MEMBER_TIMEOUT s;
- scaling up: one more pod of the workers' StatefulSet (ordinal 1) is started from the same
  manifests and Secrets; it must pass the pod checks above and join as a worker member
  connected to the master; then at once, as an operator would, it must run a `noop` task
  submitted to the master for it (which must succeed there; how long it took and on which
  attempt are printed) and pin content added on the master with replication -1 (as the
  master's `cluster/pins/status` reports it and its own `pin/ls`), each within
  WORK_TIMEOUT s; and take the master for a master member;
- SIGTERM must stop each pod with exit status 0 within its termination grace period;
- when Secrets hold placeholders, each workload that uses one is run again with the
  Secrets as written, then with each such Secret as written and the others real (for each
  workload that uses it), and must refuse to start: an init container fails, or the node
  exits non-zero without ever being ready. The reason it gave is printed.

One line per check, then `k8s/check.py: N passed, N failed`; the exit status is 1 when a
check failed.

This file reads the command line and runs the checks in order; they live in `checks/`
beside it (`manifests.py` and `paths.py` the static ones, the others the pods).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from checks.manifests import (
    check_dockerfile,
    check_kustomization,
    check_references,
    check_schemas,
    load_manifests,
)
from checks.paths import check_dns_names, check_mounted_files
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
    check_dns_names(docs, args.manifests / "README.md", report)
    check_mounted_files(docs, report)
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
