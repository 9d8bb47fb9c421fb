"""The collector on a copied fixture tree with a fake clock: rates, churn, and error policy."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from agent.cgroups.reader import V2Reader
from agent.cgroups.sample import CgroupSample
from agent.collector import Collector, CollectorSettings
from agent.discovery import PodInfo, StaticPods
from presize.errors import SettingsError
from presize.model import PodRef

TREES = Path(__file__).parent / "fixtures" / "trees"
UID1 = "0f6a1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a01"
POD1 = f"kubepods.slice/kubepods-pod{UID1.replace('-', '_')}.slice"
A = f"{POD1}/cri-containerd-{'a' * 64}.scope"
B = f"{POD1}/cri-containerd-{'b' * 64}.scope"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def set_usage(root: Path, rel: str, usage_usec: int) -> None:
    (root / rel / "cpu.stat").write_text(
        f"usage_usec {usage_usec}\nuser_usec 0\nsystem_usec 0\n"
        "nr_periods 100\nnr_throttled 7\nthrottled_usec 0\n"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(TREES / "v2-systemd", root)
    return root


def make(tree: Path, clock: FakeClock, **kw: object) -> Collector:
    ref = PodRef(namespace="shop", name="web-0", uid=UID1, node="n1")
    pods = StaticPods({UID1: PodInfo(ref=ref, container_names={"a" * 64: "app"})})
    return Collector(
        V2Reader(str(tree)),
        scan_root=str(tree),
        clock=clock,
        directory=pods,
        settings=CollectorSettings(**kw),  # type: ignore[arg-type]
    )


def test_two_ticks_give_a_rate_named_from_the_directory(tree: Path) -> None:
    clock = FakeClock()
    collector = make(tree, clock)
    set_usage(tree, A, 1_000_000)
    collector.tick()
    assert len(collector.containers) == 4
    assert collector.windows(10, now=clock.now, epoch_offset=0) == []  # primed only
    clock.now += 2.0
    set_usage(tree, A, 2_000_000)  # one core-second in two seconds
    collector.tick()
    windows = {
        (w.pod.name, w.container): w for w in collector.windows(10, now=clock.now, epoch_offset=0)
    }
    app = windows[("web-0", "app")]
    assert app.cpu_mean == pytest.approx(0.5)
    assert app.cpu_limit == 0.5
    assert app.mem_limit == 268435456.0
    # B is in web-0's cgroup but in none of its status lists: the pod's sandbox (pause), which
    # a real kubelet puts next to the containers. Read, but neither reported nor sized.
    assert ("web-0", "b" * 12) not in windows
    assert all(name != "b" * 12 for _, name, _ in collector.latest())
    assert any(c.container_id == "b" * 64 for c in collector.containers)


def test_a_container_missing_from_the_rescan_is_dropped_and_its_files_closed(tree: Path) -> None:
    # On cgroupfs a removed cgroup's open files answer ENODEV ("gone", tested on real
    # cgroups); on this ordinary copy they stay readable, so the rescan is what drops it.
    clock = FakeClock()
    collector = make(tree, clock, rescan_s=1.0)
    collector.tick()
    reader = collector.reader
    assert isinstance(reader, V2Reader)
    open_before = len(reader.files)
    shutil.rmtree(tree / B)
    clock.now += 1.0
    collector.tick()
    assert collector.stats.read_errors == 0
    assert len(collector.containers) == 3
    assert len(reader.files) == open_before - 8  # the eight files B had open are closed


def test_a_cgroup_removed_before_its_first_read_is_gone(tree: Path) -> None:
    clock = FakeClock()
    collector = make(tree, clock)
    collector.rescan()
    shutil.rmtree(tree / B)
    collector.tick()
    assert collector.stats.gone == 1
    assert collector.stats.read_errors == 0
    assert len(collector.containers) == 3


def test_a_truncated_file_is_counted_and_the_others_are_still_read(tree: Path) -> None:
    clock = FakeClock()
    collector = make(tree, clock)
    collector.tick()
    (tree / A / "memory.stat").write_text("anon 1\nfi")
    clock.now += 1.0
    collector.tick()
    assert collector.stats.read_errors == 1
    assert collector.stats.reads == 4 + 3
    assert len(collector.containers) == 4  # kept: the next read may succeed


def test_rescan_picks_up_new_containers_when_due(tree: Path) -> None:
    clock = FakeClock()
    collector = make(tree, clock, rescan_s=5.0)
    collector.tick()
    new = tree / POD1 / f"cri-containerd-{'9' * 64}.scope"
    shutil.copytree(tree / A, new)
    clock.now += 1.0
    collector.tick()
    assert len(collector.containers) == 4
    clock.now += 5.0
    collector.tick()
    assert len(collector.containers) == 5
    assert collector.stats.scans == 2


def test_counter_reset_is_reported(tree: Path) -> None:
    clock = FakeClock()
    collector = make(tree, clock)
    set_usage(tree, A, 5_000_000)
    collector.tick()
    clock.now += 1.0
    set_usage(tree, A, 10)
    collector.tick()
    assert collector.resets() == 1


@pytest.mark.parametrize("kw", [{"hz": 0.0}, {"window_s": ()}, {"window_s": (10.0, -1.0)}])
def test_settings_are_checked(kw: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        CollectorSettings(**kw)  # type: ignore[arg-type]


class Recording(V2Reader):
    """A reader that records which slow counters each read asked for."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.asked: list[tuple[str, bool, bool]] = []

    def read(self, path: str, *, psi: bool = True, oom: bool = True) -> CgroupSample | None:
        self.asked.append((path, psi, oom))
        return super().read(path, psi=psi, oom=oom)


def test_slow_counters_are_read_on_their_cadence_with_phases_spread(tree: Path) -> None:
    clock = FakeClock()
    reader = Recording(str(tree))
    collector = Collector(
        reader,
        scan_root=str(tree),
        clock=clock,
        settings=CollectorSettings(psi_s=5.0, oom_s=2.0, rescan_s=1e9),
    )
    for _ in range(11):
        collector.tick()
        clock.now += 1.0
    paths = {p for p, _, _ in reader.asked}
    assert len(paths) == 4
    for path in paths:
        asked = [(psi, oom) for p, psi, oom in reader.asked if p == path]
        assert asked[0] == (True, True)  # the first read is whole
        psi_ticks = [i for i, (psi, _) in enumerate(asked[1:], 1) if psi]
        oom_ticks = [i for i, (_, oom) in enumerate(asked[1:], 1) if oom]
        assert len(psi_ticks) == 2
        assert psi_ticks[1] - psi_ticks[0] == 5
        assert len(oom_ticks) == 5
        assert {b - a for a, b in itertools.pairwise(oom_ticks)} == {2}
    # Containers do not all read PSI on the same tick.
    first_psi = {next(i for i, (p, psi, _) in enumerate(reader.asked[4:]) if p == path and psi)
                 // 4 for path in paths}  # fmt: skip
    assert len(first_psi) > 1
    assert collector.stats.read_errors == 0
