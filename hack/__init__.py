"""Developer tooling (not shipped): local cluster, node shim, demo."""
