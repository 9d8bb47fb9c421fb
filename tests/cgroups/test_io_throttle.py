"""I/O limits on the real cgroup v1 blkio controller of this machine: a reader doing direct
I/O in a scratch cgroup is slowed to the limit the controller asked for, and runs free again
once the controller stops asking; a device the kernel refuses a rule for costs only itself.

The limit must land on a device the cgroup has never been charged for: recent kernels (lazy
blk-throttle setup, seen on 6.18) charge no cgroup for a disk in ``blkio.throttle.io_service_bytes``
until a ``blkio.throttle.*`` rule has been written for that disk, so an agent that limited only
the devices listed there would never limit anything on a freshly booted node. The test writes no
rule of its own: the agent finds the node's disks itself (:func:`agent.iothrottle.node_disks`, on
the real ``/sys``), and the scratch cgroup lists no device before the agent acts.

The reads are direct reads (``dd iflag=direct``) of a file the test writes on a mount whose
filesystem sits on one of those disks (or a partition of one): the test's tmp folder if it is
such a mount, else another writable one; the test is skipped if the node has none (``/tmp`` on
tmpfs or overlayfs alone, or disks only behind device-mapper). The raw disk is not read: a
sandbox may refuse to open it even to root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cgroup_scratch import ROOT, Scratch

from agent.iothrottle import Device, IoThrottle, devices_used, node_disks
from presize.wire import IoLimit

pytestmark = pytest.mark.cgroups

MIB = 1 << 20
SIZE = 4 * MIB


@dataclass(frozen=True)
class Target:
    """A file to read (``source``) on a disk of this node (``device``, as the agent finds it)."""

    source: Path
    device: Device

    @property
    def dev(self) -> str:
        return f"{self.device[0]}:{self.device[1]}"


def whole_disk(st_dev: int) -> Device | None:
    """The device blkio charges I/O on the filesystem ``st_dev`` to: a partition's whole disk,
    else the device itself (``None``: not a block device, e.g. tmpfs or overlayfs)."""
    block = Path(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}")
    if not block.exists():
        return None
    if (block / "partition").exists():
        block = block.resolve().parent
    major, minor = (block / "dev").read_text().split(":")
    return int(major), int(minor)


def writable_mounts(first: Path) -> Iterator[Path]:
    """``first``, then the usual scratch folders, then every read-write mount point."""
    yield from (first, Path("/var/tmp"), Path("/tmp"), Path("/root"))
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and "rw" in fields[5].split(","):
                mount = Path(fields[4].replace("\\040", " "))
                if mount.parts[1:2] not in (("proc",), ("sys",), ("dev",), ("run",)):
                    yield mount


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """A file on one of the node's disks, as the agent finds them; removed afterwards."""
    disks = node_disks("/sys")
    if not disks:
        pytest.skip("no disk under /sys/block (with a device link and a size)")
    for folder in dict.fromkeys(writable_mounts(tmp_path)):
        try:
            disk = whole_disk(folder.stat().st_dev)
        except OSError:
            continue
        if disk not in disks or not os.access(folder, os.W_OK):
            continue
        path = folder / f"presize-io-{os.getpid()}-{time.monotonic_ns()}.bin"
        try:
            with path.open("wb") as f:
                f.write(b"\0" * SIZE)
                os.fsync(f.fileno())  # on the disk now: the limited reads owe no writeback
        except OSError:
            path.unlink(missing_ok=True)
            continue
        try:
            yield Target(path, disk)
        finally:
            path.unlink(missing_ok=True)
        return
    pytest.skip(f"no writable mount on the node's disks {disks}")


def blkio_of(cg: Scratch) -> Path:
    return ROOT / "blkio" / cg.path.lstrip("/")


def rules(cg: Scratch, name: str = "blkio.throttle.read_bps_device") -> dict[str, str]:
    return dict(line.split() for line in (blkio_of(cg) / name).read_text().splitlines())


def timed_read(cg: Scratch, source: Path, mib: int) -> float:
    """Seconds a direct (uncached) read of ``mib`` MiB inside the cgroup takes."""
    t0 = time.monotonic()
    dd = f"dd if={source} of=/dev/null bs=64k count={mib * 16} iflag=direct 2>/dev/null"
    proc = cg.start(["sh", "-c", dd])
    assert proc.wait(30) == 0, f"direct read of {source} failed"
    return time.monotonic() - t0


def test_a_read_limit_slows_real_io_and_is_removed(target: Target, scratch: type[Scratch]) -> None:
    cg = scratch("io")
    usage = blkio_of(cg) / "blkio.throttle.io_service_bytes"
    assert target.device not in devices_used(usage.read_text()), "a new cgroup, charged already"
    assert rules(cg) == {}
    throttle = IoThrottle(1, lambda p: str(ROOT / "blkio" / p.lstrip("/")))
    resolve = {("u1", "app"): cg.path}.get

    throttle.apply(
        [IoLimit("u1", "app", float(MIB), None, None, None)], lambda u, c: resolve((u, c))
    )
    assert rules(cg).get(target.dev) == str(MIB), (
        f"the agent wrote no read limit for the disk {target.dev} (its disks: "
        f"{node_disks('/sys')}, applied: {throttle.applied()})"
    )
    assert throttle.stats.errors == throttle.stats.refused == 0
    took = timed_read(cg, target.source, 2)
    assert took >= 1.5, f"2 MiB at 1 MiB/s took only {took:.2f}s: not throttled"
    assert target.device in devices_used(usage.read_text())  # charged, now that it has a rule

    throttle.apply([], lambda u, c: resolve((u, c)))  # no longer asked
    assert rules(cg) == {}
    assert throttle.applied() == {}
    took = timed_read(cg, target.source, 2)
    assert took < 1.0, f"2 MiB took {took:.2f}s after the limit was removed"


def unknown_device() -> Device:
    """A block device number the kernel does not know."""
    for minor in range(1 << 19, 1 << 20):
        if not Path(f"/sys/dev/block/8:{minor}").exists():
            return 8, minor
    raise AssertionError("every minor of major 8 is a block device")


def test_the_kernel_refusing_one_device_costs_only_that_device(
    target: Target, scratch: type[Scratch], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cg = scratch("io-refused")
    bogus = unknown_device()
    sys_root = tmp_path / "sys"
    for name, dev in (("sda", bogus), ("vdz", target.device)):  # the bogus one first
        entry = sys_root / "block" / name
        (entry / "device").mkdir(parents=True)
        (entry / "dev").write_text(f"{dev[0]}:{dev[1]}\n")
    throttle = IoThrottle(1, lambda p: str(ROOT / "blkio" / p.lstrip("/")), sys_root=str(sys_root))
    limit = IoLimit("u1", "app", None, float(MIB), None, None)

    with caplog.at_level(logging.WARNING, logger="agent.iothrottle"):
        for _ in range(2):
            throttle.apply([limit], lambda u, c: cg.path)
    assert rules(cg, "blkio.throttle.write_bps_device") == {target.dev: str(MIB)}
    assert throttle.applied() == {cg.path: {target.device: (None, MIB, None, None)}}
    assert (throttle.stats.refused, throttle.stats.errors) == (1, 0)
    refusals = [r for r in caplog.records if f"{bogus[0]}:{bogus[1]}" in r.getMessage()]
    assert len(refusals) == 1, caplog.text

    throttle.apply([], lambda u, c: cg.path)
    assert rules(cg, "blkio.throttle.write_bps_device") == {}
