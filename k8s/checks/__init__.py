"""The checks `k8s/check.py` runs, by concern:

- `report`: counting the checks and printing one line for each;
- `manifests`: loading the manifests and the checks that need no binary;
- `paths`: the DNS addresses and mounted files that commands and the README name;
- `values`: Secret and ConfigMap values, and real values for the placeholders;
- `cluster`: the pods as run here, from the manifests' own command lines;
- `api`: a pod's HTTP API, its probes and readiness;
- `membership`: the invites, the members, and what a scaled-up pod receives;
- `run`: running them in order and checking what they do.
"""
