"""cgroup file parsers, against committed samples of real file text (truncated ones too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cgroups import parse
from agent.errors import AgentError, CgroupParseError
from presize.errors import PresizeError

SAMPLES = Path(__file__).parent / "fixtures" / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# ---------------------------------------------------------------------------- cgroup v2


def test_cpu_stat_v2_converts_usec_to_ns_and_reads_throttling() -> None:
    stat = parse.parse_cpu_stat_v2(sample("v2.cpu.stat"))
    assert stat.usage_ns == 4_340_592_947_000
    assert stat.throttling == parse.Throttling(
        nr_periods=1200, nr_throttled=310, throttled_ns=8_200_000_000
    )


def test_cpu_stat_v2_without_cpu_controller_has_zero_throttling() -> None:
    stat = parse.parse_cpu_stat_v2(sample("v2.cpu.stat.nocontroller"))
    assert stat.usage_ns == 4_340_592_947_000
    assert stat.throttling == parse.Throttling()


@pytest.mark.parametrize(("name", "cores"), [("v2.cpu.max", 0.5), ("v2.cpu.max.unlimited", None)])
def test_cpu_max_gives_cores_or_unlimited(name: str, cores: float | None) -> None:
    assert parse.parse_cpu_max(sample(name)).cores == cores


def test_memory_current_and_peak_are_bytes() -> None:
    assert parse.parse_single_int(sample("v2.memory.current"), "memory.current") == 268435456
    assert parse.parse_single_int(sample("v2.memory.peak"), "memory.peak") == 301989888


@pytest.mark.parametrize(
    ("name", "limit"), [("v2.memory.max", 268435456), ("v2.memory.max.unlimited", None)]
)
def test_memory_max_gives_bytes_or_unlimited(name: str, limit: int | None) -> None:
    assert parse.parse_memory_max(sample(name)) == limit


def test_memory_stat_v2_and_working_set() -> None:
    stat = parse.parse_memory_stat_v2(sample("v2.memory.stat"))
    assert stat == parse.MemoryStat(anon=201326592, file=62914560, inactive_file=41943040)
    assert parse.working_set(268435456, stat.inactive_file) == 268435456 - 41943040


def test_working_set_never_goes_negative() -> None:
    # usage and memory.stat are two reads; cache can be counted in between.
    assert parse.working_set(100, 150) == 0


def test_memory_events_counts_oom_kills_and_limit_hits() -> None:
    events = parse.parse_memory_events(sample("v2.memory.events"))
    assert events == parse.MemoryEvents(high=12, max=3, oom=1, oom_kill=1)


def test_io_stat_sums_devices() -> None:
    io = parse.parse_io_stat(sample("v2.io.stat"))
    assert io == parse.IoStat(read_bytes=91136, write_bytes=4096, read_ops=23, write_ops=1)


def test_io_stat_of_a_cgroup_without_io_is_empty_not_truncated() -> None:
    assert parse.parse_io_stat("") == parse.IoStat()


def test_pressure_reads_some_and_full() -> None:
    psi = parse.parse_pressure(sample("v2.memory.pressure"), "memory.pressure")
    assert psi.some == parse.PressureLine(avg10=1.5, avg60=0.75, avg300=0.2, total_us=5123456)
    assert psi.full is not None
    assert psi.full.total_us == 1234567


def test_pressure_without_full_line_is_accepted() -> None:
    psi = parse.parse_pressure(sample("v2.cpu.pressure.old-kernel"), "cpu.pressure")
    assert psi.full is None
    assert psi.some.total_us == 0


# ---------------------------------------------------------------------------- cgroup v1


def test_cpuacct_usage_is_nanoseconds() -> None:
    assert parse.parse_single_int(sample("v1.cpuacct.usage"), "cpuacct.usage") == 4357074857048


def test_cpu_stat_v1_reads_throttled_time_in_ns() -> None:
    assert parse.parse_cpu_stat_v1(sample("v1.cpu.stat")) == parse.Throttling(
        nr_periods=1200, nr_throttled=310, throttled_ns=8_200_000_000
    )


@pytest.mark.parametrize(
    ("quota", "cores"), [("v1.cpu.cfs_quota_us", 0.3), ("v1.cpu.cfs_quota_us.unlimited", None)]
)
def test_cfs_quota_and_period_give_cores(quota: str, cores: float | None) -> None:
    limit = parse.parse_cfs(sample(quota), sample("v1.cpu.cfs_period_us"))
    assert limit.cores == cores


def test_memory_stat_v1_prefers_hierarchical_totals() -> None:
    stat = parse.parse_memory_stat_v1(sample("v1.memory.stat"))
    assert stat == parse.MemoryStat(anon=290033664, file=829227008, inactive_file=270643200)


def test_memory_stat_v1_falls_back_to_local_keys() -> None:
    stat = parse.parse_memory_stat_v1(sample("v1.memory.stat.nohierarchy"))
    assert stat == parse.MemoryStat(anon=5582848, file=12062720, inactive_file=1028096)


@pytest.mark.parametrize(
    ("name", "limit"),
    [("v1.memory.limit_in_bytes", 67108864), ("v1.memory.limit_in_bytes.unlimited", None)],
)
def test_memory_limit_v1_treats_page_counter_max_as_unlimited(name: str, limit: int | None) -> None:
    assert parse.parse_memory_limit_v1(sample(name)) == limit


@pytest.mark.parametrize(
    ("name", "kills"), [("v1.memory.oom_control", 2), ("v1.memory.oom_control.pre-4.13", None)]
)
def test_oom_control_counts_kills_where_the_kernel_does(name: str, kills: int | None) -> None:
    assert parse.parse_oom_control(sample(name)) == parse.OomControl(
        under_oom=False, oom_kill=kills
    )


def test_blkio_throttle_sums_reads_and_writes_over_devices() -> None:
    io = parse.parse_blkio_throttle(
        sample("v1.blkio.throttle.io_service_bytes"), sample("v1.blkio.throttle.io_serviced")
    )
    assert io == parse.IoStat(read_bytes=91112, write_bytes=4096, read_ops=22, write_ops=1)


def test_blkio_throttle_without_devices_is_zero() -> None:
    io = parse.parse_blkio_throttle("Total 0\n", sample("v1.blkio.throttle.io_serviced.empty"))
    assert io == parse.IoStat()


# ---------------------------------------------------------------------------- bad text

TRUNCATED: list[tuple[str, Callable[[str], object]]] = [
    ("v2.cpu.stat.truncated", parse.parse_cpu_stat_v2),
    ("v2.memory.stat.truncated", parse.parse_memory_stat_v2),
    ("v2.memory.events.truncated", parse.parse_memory_events),
    ("v2.io.stat.truncated", parse.parse_io_stat),
    ("v2.memory.pressure.truncated", parse.parse_pressure),
    ("v1.cpuacct.usage.truncated", lambda t: parse.parse_single_int(t, "cpuacct.usage")),
    ("v1.memory.stat.truncated", parse.parse_memory_stat_v1),
    (
        "v1.blkio.throttle.io_service_bytes.truncated",
        lambda t: parse.parse_blkio_throttle(t, "Total 0\n"),
    ),
]


@pytest.mark.parametrize(("name", "parser"), TRUNCATED, ids=[n for n, _ in TRUNCATED])
def test_truncated_sample_raises_parse_error(name: str, parser: Callable[[str], object]) -> None:
    with pytest.raises(CgroupParseError, match="truncated"):
        parser(sample(name))


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (lambda t: parse.parse_single_int(t, "memory.current"), ""),
        (lambda t: parse.parse_single_int(t, "memory.current"), "12ab\n"),
        (lambda t: parse.parse_single_int(t, "memory.current"), "1\n2\n"),
        (lambda t: parse.parse_single_int(t, "memory.current"), "-5\n"),
        (parse.parse_cpu_max, "50000\n"),
        (parse.parse_cpu_max, "50000 0\n"),
        (parse.parse_memory_max, "lots\n"),
        (parse.parse_cpu_stat_v2, "usage_usec\n"),
        (parse.parse_cpu_stat_v2, "usage_usec 1\nuser_usec 1\nsystem_usec x\n"),
        (parse.parse_io_stat, "rbytes=1\n"),
        (parse.parse_io_stat, "8:0 rbytes\n"),
        (parse.parse_pressure, "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
        (parse.parse_pressure, "some avg10=x avg60=0.00 avg300=0.00 total=0\n"),
        (parse.parse_oom_control, "oom_kill 1\n"),
        (lambda t: parse.parse_cfs(t, "100000\n"), "--1\n"),
        (lambda t: parse.parse_blkio_throttle(t, "Total 0\n"), "8:0 Read\nTotal 0\n"),
        (
            parse.parse_memory_stat_v1,
            "cache 1\nrss 1\ninactive_file 1\ntotal_cache 1\n",
        ),
    ],
)
def test_malformed_text_raises_parse_error(parser: Callable[[str], object], text: str) -> None:
    with pytest.raises(CgroupParseError):
        parser(text)


def test_parse_error_belongs_to_the_presize_tree() -> None:
    assert issubclass(CgroupParseError, AgentError)
    assert issubclass(CgroupParseError, PresizeError)
