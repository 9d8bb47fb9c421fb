"""A real local Kubernetes control plane for tests (localcluster.py, docs/local-cluster.md)."""
