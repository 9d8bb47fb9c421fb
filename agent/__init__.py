"""The presize node agent (DaemonSet): cgroup readers, discovery, windows, local forecasts,
spool and publisher. Composition root in ``agent.__main__``."""
