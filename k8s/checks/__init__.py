"""The checks `k8s/check.py` runs, by concern:

- `report`: counting the checks and printing one line for each;
- `manifests`: loading the manifests and the checks that need no binary;
- `cluster`: the pods as run here, from the manifests' own command lines;
- `run`: running them and checking what they do.
"""
