"""``/proc/<pid>/net/dev``: the pure parser on samples (truncated and garbled included), and
the meter over files laid out like ``/proc`` in tmp_path (processes that exit, pods without
processes). The real ``/proc`` of a process in a real cgroup is in tests/cgroups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import ProcParseError
from agent.netdev import NetCounters, NetMeter, parse_net_dev

HEAD = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
)


def iface(name: str, rx: int, tx: int) -> str:
    return f"{name:>6}: {rx} 10 0 0 0 0 0 0 {tx} 20 0 0 0 0 0 0\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD, NetCounters(0, 0)),
        (HEAD + iface("lo", 999, 999), NetCounters(0, 0)),
        (HEAD + iface("lo", 5, 5) + iface("eth0", 1000, 2000), NetCounters(1000, 2000)),
        (HEAD + iface("eth0", 1, 2) + iface("net1", 10, 20), NetCounters(11, 22)),
        (HEAD + "eth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", NetCounters(1, 9)),
    ],
)
def test_parse_net_dev(text: str, expected: NetCounters) -> None:
    assert parse_net_dev(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        HEAD[:-1],  # truncated
        HEAD + iface("eth0", 1, 2)[:-10],  # truncated mid-line
        iface("eth0", 1, 2),  # no header
        HEAD + "  eth0: 1 2 3\n",  # too few numbers
        HEAD + "  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",  # no colon
        HEAD + iface("eth0", 1, 2).replace(" 1 ", " x ", 1),  # not a number
    ],
)
def test_parse_net_dev_refuses_bad_text(text: str) -> None:
    with pytest.raises(ProcParseError):
        parse_net_dev(text)


def fake_proc(root: Path, pid: int, rx: int, tx: int, netns: str = "a") -> None:
    d = root / str(pid)
    (d / "net").mkdir(parents=True, exist_ok=True)
    (d / "ns").mkdir(exist_ok=True)
    (d / "net" / "dev").write_text(HEAD + iface("eth0", rx, tx))
    ns = root / f"ns-{netns}"
    ns.touch()
    (d / "ns" / "net").unlink(missing_ok=True)
    os.link(ns, d / "ns" / "net")  # same inode = same namespace


def test_meter_follows_the_pod_across_exiting_processes(tmp_path: Path) -> None:
    procs = {"/pod/c1": [10, 11]}
    meter = NetMeter(lambda path: procs.get(path, []), proc_root=str(tmp_path))
    fake_proc(tmp_path, 10, 100, 200)
    fake_proc(tmp_path, 11, 150, 250)
    got = meter.read("pod", ["/pod/c1"])
    assert got is not None
    assert got[0] == NetCounters(100, 200)
    (tmp_path / "10" / "net" / "dev").write_text("")  # pid 10 exited: its file reads empty
    procs["/pod/c1"] = [11]
    got2 = meter.read("pod", ["/pod/c1"])
    assert got2 is not None
    assert got2[0] == NetCounters(150, 250)
    assert got2[1] == got[1]  # the same namespace


def test_meter_without_processes_is_none_not_an_error(tmp_path: Path) -> None:
    meter = NetMeter(lambda path: [42], proc_root=str(tmp_path))  # 42 does not exist
    assert meter.read("pod", ["/pod/c1"]) is None
    meter.forget("pod")
    assert meter.pods() == []


def test_meter_counts_pods_whose_namespace_link_it_may_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CAP_SYS_PTRACE (the chart drops every capability) ``ns/net`` of another user's
    process is EACCES while ``net/dev`` stays readable: the pod is still counted (seen on the
    real node, where every non-root pod's network read failed)."""
    fake_proc(tmp_path, 10, 100, 200)
    real_stat = os.stat

    def stat(path: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith("/ns/net"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path)

    monkeypatch.setattr(os, "stat", stat)
    meter = NetMeter(lambda path: [10], proc_root=str(tmp_path))
    got = meter.read("pod", ["/pod/c1"])
    assert got == (NetCounters(100, 200), 0)
