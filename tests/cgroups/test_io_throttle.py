"""I/O limits on the real cgroup v1 blkio controller of this machine: a reader doing direct
I/O in a scratch cgroup is slowed to the limit the controller asked for, and runs free again
once the controller stops asking."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cgroup_scratch import ROOT, Scratch

from agent.iothrottle import IoThrottle
from presize.wire import IoLimit

pytestmark = pytest.mark.cgroups

MIB = 1 << 20


@pytest.fixture
def data_file() -> Iterator[Path]:
    path = Path("/var/tmp") / f"presize-io-{time.monotonic_ns()}.bin"
    with path.open("wb") as f:
        f.write(b"\0" * (4 * MIB))
    yield path
    path.unlink(missing_ok=True)


def timed_read(cg: Scratch, path: Path, mib: int) -> float:
    """Seconds a direct (uncached) read of ``mib`` MiB inside the cgroup takes."""
    t0 = time.monotonic()
    proc = cg.start(
        ["sh", "-c", f"dd if={path} of=/dev/null bs=64k count={mib * 16} iflag=direct 2>/dev/null"]
    )
    assert proc.wait(30) == 0
    return time.monotonic() - t0


def test_a_read_limit_slows_real_io_and_is_removed(scratch: type[Scratch], data_file: Path) -> None:
    cg = scratch("io")
    timed_read(cg, data_file, 1)  # the cgroup uses the disk: now it has a device to limit
    blkio = ROOT / "blkio" / cg.path.lstrip("/")
    throttle = IoThrottle(1, lambda p: str(ROOT / "blkio" / p.lstrip("/")))
    resolve = {("u1", "app"): cg.path}.get

    throttle.apply(
        [IoLimit("u1", "app", float(MIB), None, None, None)], lambda u, c: resolve((u, c))
    )
    rule = (blkio / "blkio.throttle.read_bps_device").read_text().split()
    assert rule[1] == str(MIB), rule
    took = timed_read(cg, data_file, 2)
    assert took >= 1.5, f"2 MiB at 1 MiB/s took only {took:.2f}s: not throttled"

    throttle.apply([], lambda u, c: resolve((u, c)))  # no longer asked
    assert (blkio / "blkio.throttle.read_bps_device").read_text().strip() == ""
    took = timed_read(cg, data_file, 2)
    assert took < 1.0, f"2 MiB took {took:.2f}s after the limit was removed"
