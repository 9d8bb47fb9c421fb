"""I/O bandwidth limits the controller asks for, written to the containers' cgroups.

cgroup v2 takes one line per device in ``io.max``::

    254:0 rbps=1048576 wbps=max riops=max wiops=200

cgroup v1 has one file per dimension (``blkio.throttle.read_bps_device``,
``write_bps_device``, ``read_iops_device``, ``write_iops_device``), each taking ``MAJ:MIN
value``, where ``0`` removes the rule. The text is built by pure functions (:func:`io_max_line`,
:func:`blkio_lines`), tested on every combination; :class:`IoThrottle` only decides what to
write where and writes it.

Which devices: a limit is per device, and the controller does not know the node's disks. The
agent applies it to every block device the container's cgroup has used so far (the device lines
of ``io.stat`` / ``blkio.throttle.io_service_bytes``), plus any it limited before. A container
that has done no I/O yet has nothing to limit; the controller repeats its instructions on every
ack, so the limit lands with the first ack after its first I/O.

Which containers — opt-in: the agent *trusts the controller*, which sends limits only for
containers of namespaces labelled ``presize.io/enabled=true`` (and in ``auto`` mode). Why not
check the label again here: the agent's RBAC stays "pods on this node" (no cluster-wide
namespace watch on every node), and the opt-in decision lives in one place, the controller,
which already owns every other actuation (resizes, evictions). The agent only authenticates
the controller (TLS, its CA) and only limits containers it can name through its pod directory.

Removal: the limits in an ack are the complete set. A container limited before and absent now
gets its limits removed (``max`` / ``0``); a container that is gone is simply forgotten. An ack
the agent could not decode changes nothing (no ack reaches :meth:`IoThrottle.apply`).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from presize.wire import IoLimit

log = logging.getLogger(__name__)

Device = tuple[int, int]
Values = tuple[int | None, int | None, int | None, int | None]  # rbps, wbps, riops, wiops
UNLIMITED: Values = (None, None, None, None)

V1_FILES = (
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
)
_V2_KEYS = ("rbps", "wbps", "riops", "wiops")


def values_of(limit: IoLimit) -> Values:
    """The limit as whole numbers per second (at least 1; ``None``: unlimited)."""

    def whole(v: float | None) -> int | None:
        return None if v is None else max(1, round(v))

    return (
        whole(limit.read_bps),
        whole(limit.write_bps),
        whole(limit.read_iops),
        whole(limit.write_iops),
    )


def io_max_line(device: Device, values: Values) -> str:
    """The cgroup v2 ``io.max`` line for ``device`` (all ``max`` removes the limit). Pure."""
    parts = (f"{k}={'max' if v is None else v}" for k, v in zip(_V2_KEYS, values, strict=True))
    return f"{device[0]}:{device[1]} {' '.join(parts)}"


def blkio_lines(device: Device, values: Values) -> dict[str, str]:
    """The cgroup v1 ``blkio.throttle.*`` lines for ``device`` (``0`` removes a rule). Pure."""
    dev = f"{device[0]}:{device[1]}"
    return {f: f"{dev} {0 if v is None else v}" for f, v in zip(V1_FILES, values, strict=True)}


def devices_used(text: str) -> list[Device]:
    """The devices named in ``io.stat`` (v2) or ``blkio.throttle.io_service_bytes`` (v1), in
    first-seen order; other lines (v1's ``Total``) are skipped. Pure."""
    out: list[Device] = []
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        major, colon, minor = head.partition(":")
        if colon and major.isdigit() and minor.isdigit():
            dev = (int(major), int(minor))
            if dev not in out:
                out.append(dev)
    return out


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text + "\n")


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


@dataclass(slots=True)
class ThrottleStats:
    writes: int = 0
    unresolved: int = 0
    errors: int = 0
    limited: int = 0


Resolve = Callable[[str, str], str | None]


class IoThrottle:
    """Applies the controller's complete set of I/O limits (see the module docstring).

    ``version``: the cgroup version; ``folder(path)``: the container's folder in the io/blkio
    hierarchy (``None``: no such controller, nothing can be limited).
    """

    def __init__(
        self,
        version: int,
        folder: Callable[[str], str | None],
        *,
        write: Callable[[str, str], None] = _write,
        read: Callable[[str], str] = _read,
    ) -> None:
        self.version = version
        self._folder = folder
        self._write = write
        self._read = read
        self._applied: dict[str, dict[Device, Values]] = {}
        self.stats = ThrottleStats()

    def applied(self) -> dict[str, dict[Device, Values]]:
        return {path: dict(devs) for path, devs in self._applied.items()}

    def apply(self, limits: Sequence[IoLimit], resolve: Resolve) -> None:
        """Make the cgroups match ``limits``: write new or changed ones, remove dropped ones.
        ``resolve(pod_uid, container_name)`` is the container's cgroup path, ``None`` if the
        agent does not know it (yet)."""
        wanted: dict[str, Values] = {}
        for limit in limits:
            path = resolve(limit.pod_uid, limit.container)
            if path is None:
                self.stats.unresolved += 1
                continue
            wanted[path] = values_of(limit)
        for path in list(self._applied.keys() - wanted.keys()):
            self._set(path, UNLIMITED)
            self._applied.pop(path, None)
        for path, values in wanted.items():
            self._set(path, values)
        self.stats.limited = len(self._applied)

    def _set(self, path: str, values: Values) -> None:
        folder = self._folder(path)
        if folder is None:
            return
        done = self._applied.setdefault(path, {})
        try:
            devices = devices_used(self._read(f"{folder}/{self._usage_file}"))
            for dev in dict.fromkeys([*done, *devices]):
                if done.get(dev, UNLIMITED) != values:  # new or changed (never-set = unlimited)
                    self._put(folder, dev, values)
                    done[dev] = values
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENODEV):
                self._applied.pop(path, None)  # the container has gone: nothing to undo
                return
            self.stats.errors += 1
            log.warning("cannot set I/O limits of %s: %s", path, exc)

    @property
    def _usage_file(self) -> str:
        return "io.stat" if self.version == 2 else "blkio.throttle.io_service_bytes"

    def _put(self, folder: str, dev: Device, values: Values) -> None:
        if self.version == 2:
            self._write(f"{folder}/io.max", io_max_line(dev, values))
            self.stats.writes += 1
            return
        for name, line in blkio_lines(dev, values).items():
            self._write(f"{folder}/{name}", line)
            self.stats.writes += 1
