"""Network bytes per pod, from ``/proc/<pid>/net/dev`` of a process inside the pod.

Why a process's view: cgroups do not count network traffic. A pod's containers share one
network namespace, and ``/proc/<pid>/net/dev`` shows the interfaces of the namespace of
``<pid>``, so any process of the pod (the pause container's will do) gives the pod's totals.
The loopback interface is left out: traffic between a pod's own containers is not network use.

``proc_root`` is ``/proc`` for an agent in the host's PID namespace, or where a DaemonSet
mounts the host's ``/proc`` (``PRESIZE_PROC_ROOT=/host/proc``); the PIDs in ``cgroup.procs``
are the host's, so they must be looked up in the host's ``/proc``.

What a pod's figure means: the namespace's totals, so every container of the pod is given the
same rates (a window's ``net_*_bytes`` is the pod's, not that container's share; sum per pod,
not per container).

Why one descriptor per pod: opening ``/proc/<pid>/net/dev`` walks procfs; ``pread`` on a kept
descriptor regenerates the text for a fraction of that. When the process exits, the read fails
or comes back empty: the meter then picks another process of the pod (``cgroup.procs``) and,
if the namespace is a new one (the pod's sandbox was recreated), starts its counters over.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

from agent.errors import ProcParseError


class NetCounters(NamedTuple):
    """Cumulative bytes received and sent over every interface but ``lo``."""

    rx_bytes: int
    tx_bytes: int


def parse_net_dev(text: str) -> NetCounters:
    """The totals in the text of ``/proc/<pid>/net/dev``. Pure.

    ::

        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets ...
            lo:     240       4    0    0    0     0          0         0      240 ...
          eth0: 1048576     900    0    0    0     0          0         0     2048 ...

    Raises :class:`~agent.errors.ProcParseError` for a text without the two header lines, a
    truncated last line, or an interface line without 16 numbers.
    """
    if not text.endswith("\n"):
        raise ProcParseError("net/dev: truncated (no final newline)")
    lines = text.split("\n")[:-1]
    if len(lines) < 2 or "|" not in lines[0] or "|" not in lines[1]:
        raise ProcParseError("net/dev: missing its two header lines")
    rx = tx = 0
    for line in lines[2:]:
        name, colon, rest = line.partition(":")
        fields = rest.split()
        if not colon or len(fields) < 16:
            raise ProcParseError(f"net/dev: malformed interface line {line!r}")
        if name.strip() == "lo":
            continue
        try:
            rx += int(fields[0])
            tx += int(fields[8])
        except ValueError as exc:
            raise ProcParseError(f"net/dev: non-numeric counter in {line!r}") from exc
    return NetCounters(rx, tx)


_GONE = (errno.ENOENT, errno.ESRCH, errno.EINVAL)

Pids = Callable[[str], Sequence[int]]


class _Pod:
    __slots__ = ("fd", "netns", "pid")

    def __init__(self) -> None:
        self.fd: int | None = None
        self.pid = 0
        self.netns = 0


class NetMeter:
    """Reads the network totals of pods; ``pids(cgroup_path)`` lists a cgroup's processes."""

    def __init__(self, pids: Pids, *, proc_root: str = "/proc") -> None:
        self._pids = pids
        self.proc_root = proc_root.rstrip("/")
        self._pods: dict[str, _Pod] = {}

    def read(self, pod: str, cgroups: Sequence[str]) -> tuple[NetCounters, int] | None:
        """``(totals, netns inode)`` of ``pod`` via a process in one of ``cgroups``; ``None``
        when no process is left to ask (all exited) — normal churn, not an error."""
        state = self._pods.get(pod)
        if state is None:
            state = self._pods[pod] = _Pod()
        for _ in range(2):  # the kept process, then one fresh one if it has gone
            if state.fd is None and not self._attach(state, cgroups):
                return None
            assert state.fd is not None
            try:
                data = os.pread(state.fd, 65536, 0)
            except OSError as exc:
                if exc.errno not in _GONE:
                    raise
                data = b""
            if data:
                return parse_net_dev(data.decode("ascii", errors="replace")), state.netns
            self._detach(state)
        return None

    def _attach(self, state: _Pod, cgroups: Sequence[str]) -> bool:
        for path in cgroups:
            for pid in self._pids(path):
                try:
                    netns = _netns_inode(f"{self.proc_root}/{pid}/ns/net")
                    fd = os.open(f"{self.proc_root}/{pid}/net/dev", os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    if exc.errno in _GONE:
                        continue  # exited between cgroup.procs and here
                    raise
                state.fd, state.pid, state.netns = fd, pid, netns
                return True
        return False

    def _detach(self, state: _Pod) -> None:
        if state.fd is not None:
            os.close(state.fd)
        state.fd = None

    def forget(self, pod: str) -> None:
        state = self._pods.pop(pod, None)
        if state is not None:
            self._detach(state)

    def pods(self) -> list[str]:
        return list(self._pods)

    def close(self) -> None:
        for pod in list(self._pods):
            self.forget(pod)


def _netns_inode(path: str) -> int:
    """The inode of a process's network namespace link, or 0 when it may not be read.

    Reading ``/proc/<pid>/ns/net`` of a process of another user needs ptrace-level access
    (CAP_SYS_PTRACE), which the chart does not grant the agent: its pods drop every capability,
    and most containers run as non-root users. ``net/dev`` stays readable, so the meter keeps
    counting; a recreated sandbox is then recognised by its counters going back instead.
    """
    try:
        return os.stat(path).st_ino
    except PermissionError:
        return 0

