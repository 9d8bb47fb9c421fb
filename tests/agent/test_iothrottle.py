"""I/O limits: the pure file texts (v2 ``io.max``, v1 ``blkio.throttle.*``), the devices a
cgroup used, and what :class:`IoThrottle` writes, changes and removes (on files in tmp_path;
the real v1 blkio controller is exercised in ``tests/cgroups/test_io_throttle.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.iothrottle import (
    UNLIMITED,
    V1_FILES,
    IoThrottle,
    Values,
    blkio_lines,
    devices_used,
    io_max_line,
    values_of,
)
from presize.wire import IoLimit

DEV = (254, 0)


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ((1048576, None, None, 200), "254:0 rbps=1048576 wbps=max riops=max wiops=200"),
        (UNLIMITED, "254:0 rbps=max wbps=max riops=max wiops=max"),
        ((1, 2, 3, 4), "254:0 rbps=1 wbps=2 riops=3 wiops=4"),
    ],
)
def test_io_max_line(values: Values, line: str) -> None:
    assert io_max_line(DEV, values) == line


def test_blkio_lines_use_zero_for_unlimited() -> None:
    assert blkio_lines((8, 16), (100, None, None, 7)) == {
        "blkio.throttle.read_bps_device": "8:16 100",
        "blkio.throttle.write_bps_device": "8:16 0",
        "blkio.throttle.read_iops_device": "8:16 0",
        "blkio.throttle.write_iops_device": "8:16 7",
    }


@pytest.mark.parametrize(
    ("limit", "values"),
    [
        (IoLimit("u", "c", 1e6, None, 0.2, 99.6), (1000000, None, 1, 100)),
        (IoLimit("u", "c", None, None, None, None), UNLIMITED),
    ],
)
def test_values_are_whole_and_at_least_one(limit: IoLimit, values: Values) -> None:
    assert values_of(limit) == values


@pytest.mark.parametrize(
    ("text", "devices"),
    [
        ("", []),
        ("Total 0\n", []),
        ("254:0 Read 10\n254:0 Write 0\n8:0 Read 5\nTotal 15\n", [(254, 0), (8, 0)]),
        ("259:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n", [(259, 0)]),
        ("garbage\n:\nx:y Read 1\n", []),
    ],
)
def test_devices_used(text: str, devices: list[tuple[int, int]]) -> None:
    assert devices_used(text) == devices


def v1_folder(tmp_path: Path, name: str, used: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "blkio.throttle.io_service_bytes").write_text(used)
    return d


def test_v1_apply_change_and_remove_when_no_longer_asked(tmp_path: Path) -> None:
    web = v1_folder(tmp_path, "web", "254:0 Read 4096\nTotal 4096\n")
    writes: list[tuple[str, str]] = []

    def write(path: str, text: str) -> None:
        writes.append((Path(path).name, text))

    throttle = IoThrottle(1, lambda p: str(tmp_path / p), write=write)
    paths = {("u1", "app"): "web"}

    def resolve(uid: str, name: str) -> str | None:
        return paths.get((uid, name))

    limit = IoLimit("u1", "app", 1e6, None, None, None)
    throttle.apply([limit, IoLimit("unknown", "x", 1.0, None, None, None)], resolve)
    assert ("blkio.throttle.read_bps_device", "254:0 1000000") in writes
    assert len(writes) == 4
    assert throttle.stats.unresolved == 1

    writes.clear()
    throttle.apply([limit], resolve)  # the same again: nothing to write
    assert writes == []

    (web / "blkio.throttle.io_service_bytes").write_text("254:0 Read 1\n8:0 Read 1\nTotal 2\n")
    throttle.apply([limit], resolve)  # a second disk used since: limited too
    assert {t.split()[0] for _, t in writes} == {"8:0"}

    writes.clear()
    throttle.apply([], resolve)  # the controller stopped asking: removed on both disks
    assert sorted(t for _, t in writes) == sorted(["254:0 0"] * 4 + ["8:0 0"] * 4)
    assert throttle.applied() == {}
    assert throttle.stats.limited == 0


def test_v2_writes_io_max(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "io.stat").write_text("259:0 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
    throttle = IoThrottle(2, lambda p: str(tmp_path / p))
    throttle.apply([IoLimit("u", "c", None, 5e6, None, None)], lambda u, c: "c")
    assert (d / "io.max").read_text() == "259:0 rbps=max wbps=5000000 riops=max wiops=max\n"


def test_a_vanished_container_is_forgotten_not_an_error(tmp_path: Path) -> None:
    throttle = IoThrottle(1, lambda p: str(tmp_path / p))
    throttle.apply([IoLimit("u", "c", 1.0, None, None, None)], lambda u, c: "gone")
    assert throttle.applied() == {}
    assert throttle.stats.errors == 0


def test_v1_files_are_the_four_throttle_files() -> None:
    assert all(f.startswith("blkio.throttle.") for f in V1_FILES)
    assert len(V1_FILES) == 4
