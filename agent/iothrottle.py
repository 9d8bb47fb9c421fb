"""I/O bandwidth limits the controller asks for, written to the containers' cgroups.

cgroup v2 takes one line per device in ``io.max``::

    254:0 rbps=1048576 wbps=max riops=max wiops=200

cgroup v1 has one file per dimension (``blkio.throttle.read_bps_device``,
``write_bps_device``, ``read_iops_device``, ``write_iops_device``), each taking ``MAJ:MIN
value``, where ``0`` removes the rule. The text is built by pure functions (:func:`io_max_line`,
:func:`blkio_lines`), tested on every combination; :class:`IoThrottle` only decides what to
write where and writes it.

Which devices: a limit is per device, and the controller does not know the node's disks. The
agent applies it to the union of the block devices the container's cgroup has been charged for
(the device lines of ``io.stat`` / ``blkio.throttle.io_service_bytes``), the node's disks
(:func:`node_disks`, from ``/sys/block``) and any device it limited before. The usage file
alone is not enough: recent kernels (seen on 6.18, cgroup v1) set blk-throttle up on a disk only
when a ``blkio.throttle.*`` rule is first written for that disk (in any cgroup), and until then
charge no cgroup for it: ``blkio.throttle.io_service_bytes`` stays ``Total 0`` however much a
container reads and writes, and it would never be limited. Writing the rule for every disk up
front breaks that circle (a dimension without a limit is written as ``0``, which sets
blk-throttle up and limits nothing).

The node's disks are the entries of ``/sys/block`` with a ``device`` link (a disk on a bus:
``sd*``, ``vd*``, ``xvd*``, ``nvme*n*``, ``mmcblk*``, ``rbd*``) and a non-zero size (an empty
drive has no I/O to limit). Virtual block devices (``loop*``, ``dm-*``, ``md*``, ``nbd*``,
``ram*``, ``zram*``: those under ``/sys/devices/virtual/block``) have no ``device`` link and are
left out: ``loop``, ``dm`` and ``md`` pass their I/O on to disks that are limited anyway (the
I/O stays charged to the container's cgroup), and a rule on both levels would throttle the
same I/O twice; ``ram`` and ``zram`` are memory, not a disk the limit is meant to protect. A
virtual device the container was charged for still comes in through the usage file. Partitions
are not in ``/sys/block`` (the kernel takes rules for whole disks only). The sysfs root is a
parameter (``sys_root``) so the discovery runs on a directory tree in tests.

A device the kernel refuses a rule for (``ENODEV``: not a block device it knows, e.g. a disk
removed since it was listed) costs that device only: the others are still written, the refusal
is logged once per device, and the device is skipped until the node's list of disks changes
(a disk plugged back in is tried again).

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
import os
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


def node_disks(sys_root: str = "/sys") -> list[Device]:
    """The node's disks: the entries of ``{sys_root}/block`` with a ``device`` link and a
    non-zero ``size``, by name (see the module docstring for why virtual devices are left out).
    An entry whose ``dev`` cannot be read or parsed is skipped; no ``block`` folder: none.
    Reads only the tree under ``sys_root``."""
    block = os.path.join(sys_root, "block")
    try:
        names = sorted(os.listdir(block))
    except OSError:
        return []
    out: list[Device] = []
    for name in names:
        entry = os.path.join(block, name)
        if not os.path.lexists(os.path.join(entry, "device")):
            continue  # virtual: loop, dm, md, nbd, ram, zram, ...
        try:
            if _read(os.path.join(entry, "size")).strip() == "0":
                continue  # no medium (an empty card reader, an optical drive)
        except (OSError, ValueError):
            pass  # no size to go by: kept
        try:
            head = _read(os.path.join(entry, "dev")).strip()
        except (OSError, ValueError):
            continue
        for dev in devices_used(head):
            if dev not in out:
                out.append(dev)
    return out


# What a rule write fails with when the kernel does not take a rule for that device (not a
# block device it knows, a partition, a disk going away), the cgroup itself being fine.
_DEVICE_REFUSED = frozenset({errno.ENODEV, errno.ENXIO, errno.EINVAL, errno.EOPNOTSUPP})


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
    refused: int = 0  # devices the kernel refuses rules for, skipped for now


Resolve = Callable[[str, str], str | None]


class IoThrottle:
    """Applies the controller's complete set of I/O limits (see the module docstring).

    ``version``: the cgroup version; ``folder(path)``: the container's folder in the io/blkio
    hierarchy (``None``: no such controller, nothing can be limited); ``sys_root``: where sysfs
    is, for the node's disks (:func:`node_disks`, read again on every :meth:`apply`).
    """

    def __init__(
        self,
        version: int,
        folder: Callable[[str], str | None],
        *,
        sys_root: str = "/sys",
        write: Callable[[str, str], None] = _write,
        read: Callable[[str], str] = _read,
    ) -> None:
        self.version = version
        self._folder = folder
        self._sys_root = sys_root
        self._write = write
        self._read = read
        self._applied: dict[str, dict[Device, Values]] = {}
        self._disks: list[Device] | None = None  # as last read
        self._refused: set[Device] = set()  # skipped until the node's disks change
        self._logged: set[Device] = set()  # refusals already logged (once per device)
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
        disks = self._discover() if wanted or self._applied else []
        for path in list(self._applied.keys() - wanted.keys()):
            self._set(path, UNLIMITED, disks)
            self._applied.pop(path, None)
        for path, values in wanted.items():
            self._set(path, values, disks)
        self.stats.limited = len(self._applied)
        self.stats.refused = len(self._refused)

    def _discover(self) -> list[Device]:
        disks = node_disks(self._sys_root)
        if disks != self._disks:
            if disks:
                log.info("I/O limits go to the node's disks %s", ", ".join(_names(disks)))
            else:
                log.warning(
                    "no disks under %s/block: I/O limits only go to the devices a container "
                    "has been charged for",
                    self._sys_root,
                )
            self._disks = disks
            self._refused.clear()  # a disk plugged (back) in is tried again
        return disks

    def _set(self, path: str, values: Values, disks: Sequence[Device]) -> None:
        folder = self._folder(path)
        if folder is None:
            return
        done = self._applied.setdefault(path, {})
        try:
            used = devices_used(self._read(f"{folder}/{self._usage_file}"))
        except OSError as exc:
            self._failed(path, folder, exc)
            return
        for dev in dict.fromkeys([*done, *used, *disks]):
            if dev in self._refused or done.get(dev, UNLIMITED) == values:
                continue  # refused, or already so (never-set = unlimited)
            try:
                self._put(folder, dev, values)
            except OSError as exc:
                if exc.errno not in _DEVICE_REFUSED or not os.path.isdir(folder):
                    self._failed(path, folder, exc)
                    return
                self._refuse(dev, path, exc)
                done.pop(dev, None)  # no rule the kernel keeps for it: nothing to undo
                continue
            done[dev] = values

    def _failed(self, path: str, folder: str, exc: OSError) -> None:
        """The container's cgroup cannot be written: gone (forgotten), or an error."""
        if exc.errno in (errno.ENOENT, errno.ENODEV) or not os.path.isdir(folder):
            self._applied.pop(path, None)  # the container has gone: nothing to undo
            return
        self.stats.errors += 1
        log.warning("cannot set I/O limits of %s: %s", path, exc)

    def _refuse(self, dev: Device, path: str, exc: OSError) -> None:
        self._refused.add(dev)
        if dev in self._logged:
            log.debug("device %d:%d still refuses I/O limits: %s", dev[0], dev[1], exc)
            return
        self._logged.add(dev)
        log.warning(
            "device %d:%d takes no I/O limits (%s, writing for %s); skipped, the other devices "
            "are limited",
            dev[0],
            dev[1],
            exc.strerror or exc,
            path,
        )

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


def _names(devices: Sequence[Device]) -> list[str]:
    return [f"{d[0]}:{d[1]}" for d in devices]
