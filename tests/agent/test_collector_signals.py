"""The collector's slower signals end to end on a fixture tree, fake ``/proc`` and real log
files: network bytes per pod and log pattern counts land in the windows; a new network
namespace restarts the counting; a garbled net/dev is a read error, not a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.cgroups.reader import V2Reader
from agent.collector import Collector, CollectorSettings
from agent.discovery import PodInfo, StaticPods
from agent.logs import LogCounter, LogSettings, container_log_dir
from agent.netdev import NetMeter
from presize.model import PodRef

TREES = Path(__file__).parent / "fixtures" / "trees"
UID1 = "0f6a1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a01"
POD1 = f"kubepods.slice/kubepods-pod{UID1.replace('-', '_')}.slice"
A = f"{POD1}/cri-containerd-{'a' * 64}.scope"
REF = PodRef(namespace="shop", name="web-0", uid=UID1, node="n1")
HEAD = "Inter-| Receive | Transmit\n face |bytes ...|bytes ...\n"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def net_dev(proc: Path, pid: int, rx: int, tx: int, ns: str = "ns1") -> None:
    (proc / str(pid) / "net").mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "ns").mkdir(exist_ok=True)
    line = f"  eth0: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0\n"
    (proc / str(pid) / "net" / "dev").write_text(HEAD + line)
    target = proc / ns
    target.touch()
    link = proc / str(pid) / "ns" / "net"
    link.unlink(missing_ok=True)
    os.link(target, link)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Collector, Clock, Path, Path]:
    tree = tmp_path / "root"
    shutil.copytree(TREES / "v2-systemd", tree)
    (tree / A / "cgroup.procs").write_text("77\n")
    proc, logs = tmp_path / "proc", tmp_path / "logs"
    net_dev(proc, 77, 1000, 2000)
    folder = Path(container_log_dir(str(logs), REF, "app"))
    folder.mkdir(parents=True)
    clock = Clock()
    reader = V2Reader(str(tree))
    collector = Collector(
        reader,
        scan_root=str(tree),
        clock=clock,
        directory=StaticPods({UID1: PodInfo(ref=REF, container_names={"a" * 64: "app"})}),
        settings=CollectorSettings(net_s=1.0, logs_s=1.0),
        net=NetMeter(reader.read_pids, proc_root=str(proc)),
        logs=LogCounter(LogSettings(root=str(logs)), started_at=0.0),
    )
    return collector, clock, proc, folder


def window_of(collector: Collector, clock: Clock, name: str = "app") -> object:
    (w,) = [w for w in collector.windows(10, now=clock.now, epoch_offset=0) if w.container == name]
    return w


def test_network_bytes_and_log_matches_reach_the_windows(
    setup: tuple[Collector, Clock, Path, Path],
) -> None:
    collector, clock, proc, folder = setup
    collector.tick()  # primes cgroups and network
    (folder / "0.log").write_text("t stdout F java.lang.OutOfMemoryError\nt stdout F ok\n")
    net_dev(proc, 77, 1000 + 5000, 2000 + 700)
    clock.now += 1.0
    collector.tick()
    w = window_of(collector, clock)
    assert (w.net_rx_bytes, w.net_tx_bytes) == (5000.0, 700.0)  # type: ignore[attr-defined]
    assert w.log_matches == (("OutOfMemoryError", 1),)  # type: ignore[attr-defined]
    # every container of the pod carries the pod's namespace totals
    others = [x for x in collector.windows(10, now=clock.now, epoch_offset=0) if x.pod.uid == UID1]
    assert all(x.net_rx_bytes == 5000.0 for x in others)


def test_a_new_namespace_restarts_the_count(setup: tuple[Collector, Clock, Path, Path]) -> None:
    collector, clock, proc, _ = setup
    collector.tick()
    net_dev(proc, 77, 10, 10, ns="ns2")  # the sandbox was recreated: counters from zero
    clock.now += 1.0
    collector.tick()
    net_dev(proc, 77, 110, 30, ns="ns2")
    clock.now += 1.0
    collector.tick()
    w = window_of(collector, clock)
    assert (w.net_rx_bytes, w.net_tx_bytes) == (100.0, 20.0)  # type: ignore[attr-defined]
    assert collector.stats.net_resets == 1


def test_a_garbled_net_dev_is_a_counted_read_error(
    setup: tuple[Collector, Clock, Path, Path],
) -> None:
    collector, _clock, proc, _ = setup
    (proc / "77" / "net" / "dev").write_text(HEAD + "  eth0: 1 2\n")
    collector.tick()
    assert collector.stats.read_errors == 1
    assert collector.stats.reads > 0  # the cgroups were still read


def test_find_names_a_tracked_container(setup: tuple[Collector, Clock, Path, Path]) -> None:
    collector, *_ = setup
    collector.tick()
    found = collector.find(UID1, "app")
    assert found is not None
    assert found[0].endswith(A)
    assert found[1] == REF
    assert collector.find(UID1, "nope") is None
