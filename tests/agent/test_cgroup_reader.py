"""The cgroup reader against committed fixture trees: v1/v2 detection, samples, gone, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.cgroups.parse import IoStat, Throttling
from agent.cgroups.reader import V1Reader, V2Reader, open_reader, read_text
from agent.cgroups.sample import Limits, MemorySample, PsiTotals
from agent.errors import AgentError, CgroupParseError, CgroupReadError

TREES = Path(__file__).parent / "fixtures" / "trees"
POD1 = "kubepods.slice/kubepods-pod0f6a1a2b_3c4d_4e5f_8a9b_0c1d2e3f4a01.slice"
CONTAINER_A = f"/{POD1}/cri-containerd-{'a' * 64}.scope"
V1_CONTAINER = f"/kubepods/burstable/pod1f6a1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a02/{'f' * 64}"


def test_open_reader_detects_v2_by_cgroup_controllers() -> None:
    reader = open_reader(str(TREES / "v2-systemd"))
    assert isinstance(reader, V2Reader)
    assert reader.version == 2


def test_open_reader_detects_v1_with_separate_cpu_and_cpuacct_and_hybrid_unified() -> None:
    root = TREES / "v1-cgroupfs"
    reader = open_reader(str(root))
    assert isinstance(reader, V1Reader)
    assert reader.roots.cpu == f"{root}/cpu"
    assert reader.roots.cpuacct == f"{root}/cpuacct"
    assert reader.roots.unified == f"{root}/unified"


def test_open_reader_refuses_a_folder_that_is_no_cgroup_mount(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="neither"):
        open_reader(str(tmp_path))


def test_v2_reader_reads_a_container() -> None:
    sample = open_reader(str(TREES / "v2-systemd")).read(CONTAINER_A)
    assert sample is not None
    assert sample.cpu_usage_ns == 2_000_000_000
    assert sample.throttling == Throttling(nr_periods=100, nr_throttled=7, throttled_ns=35_000_000)
    assert sample.memory == MemorySample(
        usage=104857600,
        working_set=104857600 - 4194304,
        anon=104857600 - 8388608,
        file=8388608,
    )
    assert sample.oom_kills == 0
    assert sample.io == IoStat(read_bytes=4096, write_bytes=8192, read_ops=1, write_ops=2)
    assert sample.psi == PsiTotals(cpu_us=1000, memory_us=1000, io_us=1000)


def test_v2_reader_reads_limits_and_the_lifetime_peak_apart_from_the_sample() -> None:
    reader = open_reader(str(TREES / "v2-systemd"))
    assert reader.read_limits(CONTAINER_A) == Limits(cpu_cores=0.5, memory_bytes=268435456)
    assert reader.read_peak(CONTAINER_A) == 104857600 + 1048576


def test_v1_reader_reads_a_container_across_controllers() -> None:
    reader = open_reader(str(TREES / "v1-cgroupfs"))
    sample = reader.read(V1_CONTAINER)
    assert sample is not None
    assert sample.cpu_usage_ns == 4357074857048
    assert sample.throttling.nr_throttled == 310
    assert sample.memory is not None
    assert sample.memory.usage == 400000000
    assert sample.memory.working_set == 400000000 - 270643200  # hierarchical inactive_file
    assert reader.read_peak(V1_CONTAINER) == 300000000
    assert sample.oom_kills == 2
    assert sample.io == IoStat(read_bytes=91112, write_bytes=4096)  # v1: ops are not read
    # PSI comes from the hybrid unified mount; io.pressure is absent there.
    assert sample.psi == PsiTotals(cpu_us=1385179364, memory_us=5123456, io_us=None)
    assert reader.read_limits(V1_CONTAINER) == Limits(cpu_cores=0.3, memory_bytes=67108864)


@pytest.mark.parametrize("tree", ["v1-cgroupfs", "v2-systemd"])
def test_vanished_cgroup_is_gone_not_an_error(tree: str) -> None:
    reader = open_reader(str(TREES / tree))
    assert reader.read("/kubepods/burstable/podgone/0123") is None
    assert reader.read_limits("/kubepods/burstable/podgone/0123") is None
    assert reader.read_peak("/kubepods/burstable/podgone/0123") is None


def copy_container(tmp_path: Path) -> tuple[V2Reader, Path]:
    root = tmp_path / "root"
    shutil.copytree(TREES / "v2-systemd", root)
    return V2Reader(str(root)), root / CONTAINER_A.lstrip("/")


def test_truncated_file_raises_parse_error(tmp_path: Path) -> None:
    reader, folder = copy_container(tmp_path)
    (folder / "memory.stat").write_text("anon 1\nfile 2\ninactive_fi")
    with pytest.raises(CgroupParseError, match="truncated"):
        reader.read(CONTAINER_A)


def test_unreadable_file_raises_read_error(tmp_path: Path) -> None:
    reader, folder = copy_container(tmp_path)
    (folder / "cpu.stat").unlink()
    (folder / "cpu.stat").mkdir()  # EISDIR on read: broken, not gone
    with pytest.raises(CgroupReadError, match=r"cpu\.stat"):
        reader.read(CONTAINER_A)


def test_optional_files_missing_leave_fields_empty(tmp_path: Path) -> None:
    reader, folder = copy_container(tmp_path)
    for name in ("memory.peak", "io.stat", "io.pressure", "memory.events"):
        (folder / name).unlink()
    sample = reader.read(CONTAINER_A)
    assert sample is not None
    assert sample.memory is not None
    assert reader.read_peak(CONTAINER_A) is None
    assert sample.io is None
    assert sample.oom_kills is None
    assert sample.psi.io_us is None


def test_read_text_of_a_large_file_reads_it_whole(tmp_path: Path) -> None:
    big = tmp_path / "memory.stat"
    text = "".join(f"key{i} {i}\n" for i in range(20000))
    big.write_text(text)
    assert read_text(str(big)) == text
    assert read_text(str(tmp_path / "missing")) is None


def test_a_read_can_skip_the_slow_counters() -> None:
    for reader, path in (
        (open_reader(str(TREES / "v2-systemd")), CONTAINER_A),
        (open_reader(str(TREES / "v1-cgroupfs")), V1_CONTAINER),
    ):
        full = reader.read(path)
        fast = reader.read(path, psi=False, oom=False)
        assert full is not None
        assert fast is not None
        assert full.oom_kills is not None
        assert full.psi != PsiTotals()
        assert fast.oom_kills is None
        assert fast.psi == PsiTotals()
        assert fast._replace(oom_kills=full.oom_kills, psi=full.psi) == full
