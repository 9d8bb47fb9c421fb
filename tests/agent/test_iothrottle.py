"""I/O limits: the pure file texts (v2 ``io.max``, v1 ``blkio.throttle.*``), the devices a
cgroup used, the node's disks (:func:`node_disks` over sysfs trees built in tmp_path), and what
:class:`IoThrottle` writes, changes and removes (on files in tmp_path; the real v1 blkio
controller is exercised in ``tests/cgroups/test_io_throttle.py``)."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.iothrottle import (
    UNLIMITED,
    V1_FILES,
    Device,
    IoThrottle,
    Values,
    blkio_lines,
    devices_used,
    io_max_line,
    node_disks,
    values_of,
)
from presize.wire import IoLimit

DEV = (254, 0)
NO_SYS = "/nonexistent/sys"  # no disks: only the usage file names devices


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

    throttle = IoThrottle(1, lambda p: str(tmp_path / p), write=write, sys_root=NO_SYS)
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
    throttle = IoThrottle(2, lambda p: str(tmp_path / p), sys_root=NO_SYS)
    throttle.apply([IoLimit("u", "c", None, 5e6, None, None)], lambda u, c: "c")
    assert (d / "io.max").read_text() == "259:0 rbps=max wbps=5000000 riops=max wiops=max\n"


def test_a_vanished_container_is_forgotten_not_an_error(tmp_path: Path) -> None:
    throttle = IoThrottle(1, lambda p: str(tmp_path / p), sys_root=NO_SYS)
    throttle.apply([IoLimit("u", "c", 1.0, None, None, None)], lambda u, c: "gone")
    assert throttle.applied() == {}
    assert throttle.stats.errors == 0


def test_v1_files_are_the_four_throttle_files() -> None:
    assert all(f.startswith("blkio.throttle.") for f in V1_FILES)
    assert len(V1_FILES) == 4


# --- the node's disks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One ``/sys/block/<name>`` entry: its ``dev`` text, whether it has a ``device`` link
    (a disk on a bus) and its ``size`` text (``None``: no such file)."""

    dev: str | None
    device: bool = True
    size: str | None = "2097152"


def sys_tree(root: Path, entries: dict[str, Entry]) -> str:
    """A sysfs tree with ``block/<name>`` as sysfs lays it out (``device`` a symlink)."""
    block = root / "block"
    block.mkdir(parents=True, exist_ok=True)
    (root / "devices" / "bus0").mkdir(parents=True, exist_ok=True)
    for name, e in entries.items():
        d = block / name
        d.mkdir()
        if e.dev is not None:
            (d / "dev").write_text(e.dev + "\n")
        if e.size is not None:
            (d / "size").write_text(e.size + "\n")
        if e.device:
            (d / "device").symlink_to(root / "devices" / "bus0")
    return str(root)


VIRTUAL = Entry("7:0", device=False, size="0")


@pytest.mark.parametrize(
    ("entries", "disks"),
    [
        pytest.param(
            {f"loop{i}": Entry(f"7:{i}", device=False, size="0") for i in range(8)}
            | {"vda": Entry("254:0"), "zram0": Entry("253:0", device=False)},
            [(254, 0)],
            id="vm-virtio-with-loop-and-zram",
        ),
        pytest.param(
            {
                "nvme1n1": Entry("259:2"),
                "nvme0n1": Entry("259:0"),
                "dm-0": Entry("253:0", device=False),
                "md0": Entry("9:0", device=False),
                "nbd0": Entry("43:0", device=False, size="0"),
                "ram0": Entry("1:0", device=False),
            },
            [(259, 0), (259, 2)],  # by name; stacked and memory devices left out
            id="cloud-nvme-with-lvm-raid-nbd-ram",
        ),
        pytest.param(
            {"sda": Entry("8:0"), "sdb": Entry("8:16"), "sr0": Entry("11:0", size="0")},
            [(8, 0), (8, 16)],
            id="empty-optical-drive-left-out",
        ),
        pytest.param({"xvda": Entry("202:0", size=None)}, [(202, 0)], id="no-size-kept"),
        pytest.param(
            {"sda": Entry(None), "sdb": Entry("garbage"), "sdc": Entry("8:32")},
            [(8, 32)],
            id="unreadable-dev-skipped",
        ),
        pytest.param({}, [], id="no-entries"),
    ],
)
def test_node_disks(tmp_path: Path, entries: dict[str, Entry], disks: list[Device]) -> None:
    assert node_disks(sys_tree(tmp_path / "sys", entries)) == disks


def test_node_disks_without_a_block_folder(tmp_path: Path) -> None:
    assert node_disks(str(tmp_path)) == []


# --- IoThrottle with the node's disks ----------------------------------------------------------


class Recorder:
    """A fake cgroupfs writer: records writes, refuses rules for some devices like the kernel."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.writes: list[tuple[str, str]] = []
        self.refuse = refuse or {}

    def __call__(self, path: str, text: str) -> None:
        code = self.refuse.get(text.split(maxsplit=1)[0])
        if code is not None:
            raise OSError(code, errno.errorcode.get(code, "refused"))
        self.writes.append((Path(path).name, text))

    def devices(self) -> list[str]:
        return list(dict.fromkeys(t.split()[0] for _, t in self.writes))


LIMIT = IoLimit("u1", "app", 1e6, None, None, None)


def resolve_web(uid: str, name: str) -> str | None:
    return "web" if (uid, name) == ("u1", "app") else None


@pytest.mark.parametrize(
    ("version", "usage", "disks", "written"),
    [
        # the bug: the kernel has not accounted anything to the cgroup yet, the disk is limited
        (1, "Total 0\n", {"vda": Entry("254:0")}, ["254:0"]),
        (2, "", {"nvme0n1": Entry("259:0")}, ["259:0"]),
        # the union, in order: devices charged for (also virtual ones), then the other disks
        (1, "253:0 Read 1\n8:0 Read 1\nTotal 2\n", {"sda": Entry("8:0"), "sdb": Entry("8:16")},
         ["253:0", "8:0", "8:16"]),
        (2, "259:0 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
         {"nvme0n1": Entry("259:0"), "loop0": VIRTUAL}, ["259:0"]),
        (1, "Total 0\n", {"loop0": VIRTUAL}, []),  # no disk, nothing charged: nothing yet
    ],
)  # fmt: skip
def test_limits_go_to_the_devices_used_and_the_node_disks(
    tmp_path: Path, version: int, usage: str, disks: dict[str, Entry], written: list[str]
) -> None:
    web = tmp_path / "cg" / "web"
    web.mkdir(parents=True)
    (web / ("io.stat" if version == 2 else "blkio.throttle.io_service_bytes")).write_text(usage)
    rec = Recorder()
    sys_root = sys_tree(tmp_path / "sys", disks)
    throttle = IoThrottle(version, lambda p: str(tmp_path / "cg" / p), write=rec, sys_root=sys_root)
    throttle.apply([LIMIT], resolve_web)
    assert rec.devices() == written
    assert len(rec.writes) == len(written) * (1 if version == 2 else 4)
    assert sorted(throttle.applied().get("web", {})) == sorted(devices_used("\n".join(written)))


def v1_web(tmp_path: Path, usage: str = "Total 0\n") -> Path:
    web = tmp_path / "cg" / "web"
    web.mkdir(parents=True)
    (web / "blkio.throttle.io_service_bytes").write_text(usage)
    return web


def test_a_refused_device_costs_only_itself_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v1_web(tmp_path, "8:0 Read 1\nTotal 1\n")
    disks = {"sda": Entry("8:0"), "sdb": Entry("8:16"), "sdc": Entry("8:32")}
    sys_root = sys_tree(tmp_path / "sys", disks)
    rec = Recorder(refuse={"8:16": errno.ENODEV})  # listed, but gone by the time of the write
    throttle = IoThrottle(1, lambda p: str(tmp_path / "cg" / p), write=rec, sys_root=sys_root)
    with caplog.at_level(logging.WARNING, logger="agent.iothrottle"):
        throttle.apply([LIMIT], resolve_web)
        assert rec.devices() == ["8:0", "8:32"]
        assert sorted(throttle.applied()["web"]) == [(8, 0), (8, 32)]
        assert (throttle.stats.refused, throttle.stats.errors) == (1, 0)

        rec.writes.clear()
        changed = IoLimit("u1", "app", 2e6, None, None, None)
        throttle.apply([changed], resolve_web)  # the refused device is skipped, not retried
        assert rec.devices() == ["8:0", "8:32"]
    refusals = [r for r in caplog.records if "8:16" in r.getMessage()]
    assert len(refusals) == 1, caplog.text
    assert "takes no I/O limits" in refusals[0].getMessage()

    rec.writes.clear()
    throttle.apply([], resolve_web)  # removal: only where rules were written
    assert sorted(t for _, t in rec.writes) == sorted(["8:0 0"] * 4 + ["8:32 0"] * 4)
    assert throttle.applied() == {}


def test_a_refused_device_is_tried_again_when_the_node_disks_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v1_web(tmp_path)
    sys_root = sys_tree(tmp_path / "sys", {"sda": Entry("8:0"), "sdb": Entry("8:16")})
    rec = Recorder(refuse={"8:16": errno.ENODEV})
    throttle = IoThrottle(1, lambda p: str(tmp_path / "cg" / p), write=rec, sys_root=sys_root)
    throttle.apply([LIMIT], resolve_web)
    assert throttle.stats.refused == 1

    sys_tree(tmp_path / "sys", {"nvme0n1": Entry("259:0")})  # a disk plugged in
    rec.refuse.clear()  # and sdb back
    rec.writes.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.iothrottle"):
        throttle.apply([LIMIT], resolve_web)
    assert rec.devices() == ["259:0", "8:16"]  # by name: nvme0n1, sdb
    assert sorted(throttle.applied()["web"]) == [(8, 0), (8, 16), (259, 0)]
    assert throttle.stats.refused == 0
    assert "takes no I/O limits" not in caplog.text


SDB_LIMITED = {"web": {(8, 16): (1000000, None, None, None)}}


@pytest.mark.parametrize(
    ("code", "folder_left", "expected"),
    [
        # (refused devices, errors, applied)
        (errno.ENODEV, True, (1, 0, SDB_LIMITED)),  # no such block device: the others still go
        (errno.EINVAL, True, (1, 0, SDB_LIMITED)),
        (errno.ENODEV, False, (0, 0, {})),  # the cgroup was removed under the write: forgotten
        (errno.ENOENT, False, (0, 0, {})),
        (errno.EACCES, True, (0, 1, {"web": {}})),  # the cgroup cannot be written at all
        (errno.EROFS, True, (0, 1, {"web": {}})),
    ],
)
def test_what_a_failed_rule_write_means(
    tmp_path: Path,
    code: int,
    folder_left: bool,
    expected: tuple[int, int, dict[str, dict[Device, Values]]],
) -> None:
    web = v1_web(tmp_path)
    sys_root = sys_tree(tmp_path / "sys", {"sda": Entry("8:0"), "sdb": Entry("8:16")})

    def write(path: str, text: str) -> None:
        if text.startswith("8:0 "):
            if not folder_left:
                for f in web.iterdir():
                    f.unlink()
                web.rmdir()
            raise OSError(code, "failed")

    throttle = IoThrottle(1, lambda p: str(tmp_path / "cg" / p), write=write, sys_root=sys_root)
    throttle.apply([LIMIT], resolve_web)
    assert (throttle.stats.refused, throttle.stats.errors, throttle.applied()) == expected
