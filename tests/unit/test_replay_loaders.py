"""Trace loaders, on tiny synthetic folders in the layouts of ``../shared/traces``."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from presize.errors import TraceError
from presize.replay.loaders import (
    GOOGLE_2011_UNITS,
    GOOGLE_2019_UNITS,
    bitbrains_series,
    load_traces,
    parse_bitbrains,
)
from presize.replay.series import REAL_UNITS, STEPS_PER_DAY

STEP = 300
T0 = 1_372_629_804  # a Bitbrains timestamp: epoch seconds despite the "[ms]" label
KIB = 1024.0

BB_HEADER = ";\t".join(
    [
        "Timestamp [ms]", "CPU cores", "CPU capacity provisioned [MHZ]", "CPU usage [MHZ]",
        "CPU usage [%]", "Memory capacity provisioned [KB]", "Memory usage [KB]",
        "Disk read throughput [KB/s]", "Disk write throughput [KB/s]",
        "Network received throughput [KB/s]", "Network transmitted throughput [KB/s]",
    ]
)


def bb_row(t: float, *fields: float) -> str:
    """A row from (cores, capacity MHz, usage MHz, memory capacity KB, memory usage KB)."""
    cores, cap, cpu, mem_cap, mem = fields
    pct = 100.0 * cpu / cap if cap else 0.0
    return ";\t".join(str(v) for v in (t, cores, cap, cpu, pct, mem_cap, mem, 1.5, 2.5, 0.1, 0.2))


def bb_text(rows: list[str]) -> str:
    return "\n".join([BB_HEADER, *rows]) + "\n"


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))


# ----------------------------------------------------------------------- Bitbrains, parsing


def test_parse_bitbrains_reads_the_semicolon_tab_layout() -> None:
    cols = parse_bitbrains(bb_text([bb_row(T0, 2, 5000.0, 1250.0, 8e6, 1e6)]))
    assert cols["t"].tolist() == [T0]
    assert cols["cores"].tolist() == [2.0]
    assert cols["cap_mhz"].tolist() == [5000.0]
    assert cols["cpu_mhz"].tolist() == [1250.0]
    assert cols["mem_cap"].tolist() == [8e6 * KIB]  # KB -> bytes
    assert cols["mem"].tolist() == [1e6 * KIB]


def test_parse_bitbrains_reads_a_real_row_with_exponents() -> None:
    text = BB_HEADER + "\n1373963436;\t4;\t10399.99;\t207.99;\t2.0;\t1.6703488E7;\t212511.2;" \
        "\t0.0;\t0.0;\t4.46;\t0.0\n"
    cols = parse_bitbrains(text)
    assert cols["mem_cap"][0] == pytest.approx(1.6703488e7 * KIB)
    assert cols["cores"][0] == 4.0


def test_parse_bitbrains_of_a_header_only_file_is_empty_columns() -> None:
    cols = parse_bitbrains(BB_HEADER + "\n\n")
    assert set(cols) == {"t", "cores", "cap_mhz", "cpu_mhz", "mem_cap", "mem"}
    assert all(v.size == 0 for v in cols.values())


@pytest.mark.parametrize("text", ["", "1;\t2;\t3\n", "a,b,c\n1,2,3\n"])
def test_parse_bitbrains_rejects_files_without_the_header(text: str) -> None:
    with pytest.raises(TraceError, match="header"):
        parse_bitbrains(text)


def test_parse_bitbrains_rejects_short_rows() -> None:
    with pytest.raises(TraceError, match="fields"):
        parse_bitbrains(BB_HEADER + "\n1;\t2;\t3;\t4\n")


# ---------------------------------------------------------------------- Bitbrains, series


def cols_of(rows: list[tuple[float, float, float, float, float, float]]) -> dict[str, np.ndarray]:
    a = np.array(rows, dtype=np.float64)
    return {
        "t": a[:, 0], "cores": a[:, 1], "cap_mhz": a[:, 2], "cpu_mhz": a[:, 3],
        "mem_cap": a[:, 4], "mem": a[:, 5],
    }


def test_bitbrains_series_converts_mhz_to_cores_with_the_per_core_clock() -> None:
    s = bitbrains_series(
        "vm", cols_of([(0, 4, 8000.0, 1000.0, 4e9, 1e9), (300, 4, 8000.0, 6000.0, 4e9, 2e9)])
    )
    assert s is not None
    # 8000 MHz / 4 cores = 2000 MHz per core.
    assert s.cpu.tolist() == [0.5, 3.0]
    assert s.mem.tolist() == [1e9, 2e9]
    assert (s.initial_cpu, s.initial_mem) == (4.0, 4e9)
    assert s.cpu_capacity is not None
    assert s.cpu_capacity.tolist() == [4.0, 4.0]
    assert s.series_id == "vm"


def test_bitbrains_series_drops_off_rows_and_zero_core_rows() -> None:
    s = bitbrains_series(
        "vm",
        cols_of(
            [
                (0, 0, 0.0, 0.0, 0.0, 0.0),  # VM off: all zero
                (300, 2, 4000.0, 2000.0, 4e9, 1e9),
                (600, 0, 0.0, 0.0, 4e9, 5e8),  # 0 cores
                (900, 2, 4000.0, 1000.0, 4e9, 1e9),
            ]
        ),
    )
    assert s is not None
    assert s.start_time == 300.0
    # Step 600 was dropped and then forward-filled from step 300.
    assert s.cpu.tolist() == [1.0, 1.0, 0.5]


def test_bitbrains_series_of_a_vm_that_was_always_off_is_none() -> None:
    assert bitbrains_series("vm", cols_of([(0, 0, 0.0, 0.0, 0.0, 0.0)])) is None


# ------------------------------------------------------------------- Bitbrains, the folder

N_STEPS = 1200  # a bit over four days
SHORT_GAP = range(100, 106)  # 6 missing steps: filled
LONG_GAP = range(500, 530)  # 30 missing steps (2.5 h): left missing


def cpu_mhz(i: int) -> float:
    return 25.0 * (i % 50 + 1)


def mem_kb(i: int) -> float:
    return 1000.0 * (i + 1)


def bitbrains_vm_rows() -> list[str]:
    rows = []
    for i in range(N_STEPS):
        if i in SHORT_GAP or i in LONG_GAP:
            continue
        t = T0 + STEP * i
        if i == 10:  # a duplicated timestamp: the last row wins
            rows.append(bb_row(t, 2, 5000.0, 4999.0, 8e6, 7e6))
        if i == 20:  # the VM was off: an all-zero row, and nothing else at this time
            rows.append(bb_row(t, 0, 0.0, 0.0, 0.0, 0.0))
            continue
        rows.append(bb_row(t, 2, 5000.0, cpu_mhz(i), 8e6, mem_kb(i)))
        if i == 30:  # an all-zero duplicate after a real row is dropped, not kept as last
            rows.append(bb_row(t, 0, 0.0, 0.0, 0.0, 0.0))
        if i == 50:  # over-sampled: a second sample inside the same 5-minute bin is averaged
            rows.append(bb_row(t + 100, 2, 5000.0, cpu_mhz(i) + 100.0, 8e6, mem_kb(i)))
    return rows


@pytest.fixture
def bitbrains(tmp_path: Path) -> Path:
    root = tmp_path / "bitbrains-rnd"
    month = root / "2013-7"
    write_gz(month / "1.csv.gz", bb_text(bitbrains_vm_rows()))
    write_gz(month / "3.csv.gz", bb_text([bb_row(T0 + STEP * i, 1, 2000.0, 500.0, 1e6, 1e5)
                                          for i in range(100)]))  # under 3 days: dropped
    write_gz(month / "5.csv.gz", bb_text([bb_row(T0, 0, 0.0, 0.0, 0.0, 0.0)]))  # always off
    write_gz(month / "11.csv.gz", bb_text([bb_row(T0 + STEP * i, 1, 2000.0, 500.0, 1e6, 1e5)
                                           for i in range(3 * STEPS_PER_DAY)]))
    (root / "PROVENANCE.md").write_text("synthetic\n")
    return root


def test_load_traces_reads_a_bitbrains_month_folder(bitbrains: Path) -> None:
    traces = load_traces(bitbrains)
    assert traces.name == "bitbrains-rnd"
    assert traces.units == REAL_UNITS
    assert not traces.has_peaks
    # Numeric file order (1, 3, 5, 11); 3 is too short and 5 has no usable rows.
    assert [s.series_id for s in traces.series] == ["2013-7/1", "2013-7/11"]
    other = traces.series[1]
    assert len(other) == 3 * STEPS_PER_DAY
    assert other.cpu[0] == pytest.approx(0.25)  # 500 MHz on one 2000 MHz core
    assert traces.steps == int(traces.series[0].valid.sum()) + 3 * STEPS_PER_DAY


def test_bitbrains_cleaning_of_one_vm(bitbrains: Path) -> None:
    s = load_traces(bitbrains).series[0]
    assert s.start_time == float(T0)
    assert len(s) == N_STEPS
    per_core = 2500.0
    # An ordinary step.
    assert s.cpu[5] == pytest.approx(cpu_mhz(5) / per_core)
    assert s.mem[5] == pytest.approx(mem_kb(5) * KIB)
    # The duplicated timestamp keeps the last row.
    assert s.cpu[10] == pytest.approx(cpu_mhz(10) / per_core)
    assert s.mem[10] == pytest.approx(mem_kb(10) * KIB)
    # The all-zero row is dropped; its step is forward-filled from the one before.
    assert s.cpu[20] == pytest.approx(cpu_mhz(19) / per_core)
    assert s.mem[20] == pytest.approx(mem_kb(19) * KIB)
    # An all-zero duplicate does not replace a real row.
    assert s.cpu[30] == pytest.approx(cpu_mhz(30) / per_core)
    # Two samples in one bin are averaged.
    assert s.cpu[50] == pytest.approx((cpu_mhz(50) + 50.0) / per_core)
    # A gap under an hour is forward-filled.
    for i in SHORT_GAP:
        assert s.cpu[i] == pytest.approx(cpu_mhz(99) / per_core)
        assert s.mem[i] == pytest.approx(mem_kb(99) * KIB)
    # A gap over an hour stays missing and is not valid.
    for i in LONG_GAP:
        assert np.isnan(s.cpu[i])
        assert not s.valid[i]
    assert s.valid.sum() == N_STEPS - len(LONG_GAP)
    assert s.cpu_capacity is not None
    assert s.mem_capacity is not None
    assert s.cpu_capacity[0] == 2.0
    assert s.mem_capacity[0] == 8e6 * KIB
    assert (s.initial_cpu, s.initial_mem) == (2.0, 8e6 * KIB)


def test_load_traces_limit_stops_after_that_many_series(bitbrains: Path) -> None:
    assert [s.series_id for s in load_traces(bitbrains, limit=1).series] == ["2013-7/1"]


def test_load_traces_wraps_a_corrupt_bitbrains_file(tmp_path: Path) -> None:
    write_gz(tmp_path / "bb" / "2013-7" / "1.csv.gz", BB_HEADER + "\nnot;\tnumbers\n")
    with pytest.raises(TraceError, match=r"1\.csv\.gz"):
        load_traces(tmp_path / "bb")


def test_load_traces_wraps_a_file_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bb" / "2013-7" / "1.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_text("plain text")
    with pytest.raises(TraceError) as info:
        load_traces(tmp_path / "bb")
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------- Google 2011


def g11_rows(job: int, day: int, cpu: float, mem: float) -> list[list[object]]:
    return [[job, day, step, step * 5, cpu + step / 1000.0, mem] for step in range(STEPS_PER_DAY)]


def write_csv_gz(path: Path, header: list[str], rows: list[list[object]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_gz(path, buf.getvalue())


G11_HEADER = ["job_id", "day", "step", "minute_of_day", "cpu_util_pct", "mem_util_pct"]


@pytest.fixture
def google2011(tmp_path: Path) -> Path:
    root = tmp_path / "google-2011-jobs"
    rows: list[list[object]] = []
    # Job 7: days 4, 1, 2 in file order; day 3 is missing. Job 10: three days. Job 9: two.
    rows += g11_rows(7, 4, 40.0, 4.0)
    rows += g11_rows(7, 1, 10.0, 1.0)
    rows += g11_rows(7, 2, 20.0, 2.0)
    rows += g11_rows(9, 1, 50.0, 5.0)
    rows += g11_rows(9, 2, 50.0, 5.0)
    for day in (1, 2, 3):
        rows += g11_rows(10, day, 30.0, 3.0)
    write_csv_gz(root / "jobs_5min.csv.gz", G11_HEADER, rows)
    return root


def test_load_traces_reads_google_2011_jobs(google2011: Path) -> None:
    traces = load_traces(google2011)
    assert traces.units == GOOGLE_2011_UNITS
    # Numeric job order; job 9 has under 3 days.
    assert [s.series_id for s in traces.series] == ["job-7", "job-10"]
    job7 = traces.series[0]
    assert len(job7) == 3 * STEPS_PER_DAY
    # Days are concatenated in day order (1, 2, 4), even across the missing day 3.
    assert job7.cpu[0] == pytest.approx(0.10)  # 10 % of the largest machine -> 0.10
    assert job7.cpu[STEPS_PER_DAY] == pytest.approx(0.20)
    assert job7.cpu[2 * STEPS_PER_DAY + 5] == pytest.approx(0.40005)
    assert job7.mem[STEPS_PER_DAY - 1] == 1.0  # memory stays in % of the largest machine
    assert job7.mem[2 * STEPS_PER_DAY] == 4.0
    assert (job7.initial_cpu, job7.initial_mem) == (1.0, 100.0)
    assert bool(job7.valid.all())


def test_google_2011_missing_column_is_a_trace_error(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_csv_gz(root / "jobs_5min.csv.gz", ["job_id", "day", "step"], [[1, 1, 0]])
    with pytest.raises(TraceError, match="jobs_5min"):
        load_traces(root)


def test_google_2011_short_gap_inside_a_day_is_forward_filled(tmp_path: Path) -> None:
    root = tmp_path / "g"
    rows = [r for day in (1, 2, 3) for r in g11_rows(5, day, 10.0, 1.0)]
    del rows[100]  # day 1, step 100
    write_csv_gz(root / "jobs_5min.csv.gz", G11_HEADER, rows)
    job = load_traces(root).series[0]
    assert job.cpu[100] == pytest.approx(job.cpu[99])


# --------------------------------------------------------------------------- Google 2019

G19_HEADER = [
    "unique_id", "source_file", "time", "avg_cpu_usage", "max_cpu_usage",
    "random_sample_cpu_usage", "avg_memory_usage", "max_memory_usage", "assigned_memory",
    "cpu_limit", "memory_limit", "machine_id",
]
G19_STEPS = 500


def g19_row(uid: str, i: int, *usage: float) -> list[object]:
    """A row from (avg cpu, max cpu, avg memory, max memory) at step ``i``."""
    avg_cpu, max_cpu, avg_mem, max_mem = usage
    time_us = 600_000_000 + i * STEP * 1_000_000
    return [uid, "f.csv", time_us, avg_cpu, max_cpu, avg_cpu, avg_mem, max_mem, 0.01,
            0.05, 0.02, 42]


@pytest.fixture
def google2019(tmp_path: Path) -> Path:
    root = tmp_path / "google-2019-instances"
    rows = []
    for i in range(G19_STEPS):
        if i == 10:  # a -1 cell marks missing data: the row is skipped, the step filled
            rows.append(g19_row("a-1", i, 0.002, -1, 0.003, 0.004))
            continue
        if i == 20:  # a window maximum below the mean is raised to the mean
            rows.append(g19_row("a-1", i, 0.002, 0.001, 0.003, 0.0025))
            continue
        rows.append(g19_row("a-1", i, 0.001 * (1 + i % 3), 0.009, 0.003, 0.004))
    rows += [g19_row("b-2", i, 0.001, 0.002, 0.001, 0.002) for i in range(100)]  # too short
    write_csv_gz(root / "instances_5min_long.csv.gz", G19_HEADER, rows)
    return root


def test_load_traces_reads_google_2019_instances(google2019: Path) -> None:
    traces = load_traces(google2019)
    assert traces.units == GOOGLE_2019_UNITS
    assert traces.has_peaks
    assert [s.series_id for s in traces.series] == ["a-1"]
    s = traces.series[0]
    assert len(s) == G19_STEPS
    assert s.start_time == 600.0  # microseconds -> seconds
    assert s.cpu[0] == pytest.approx(0.001)
    assert s.cpu[1] == pytest.approx(0.002)
    assert s.cpu_peak is not None
    assert s.mem_peak is not None
    assert s.cpu_peak[0] == pytest.approx(0.009)
    assert s.mem_peak[0] == pytest.approx(0.004)
    # The row with -1 was skipped and its step forward-filled from step 9.
    assert s.cpu[10] == pytest.approx(s.cpu[9])
    assert s.cpu_peak[10] == pytest.approx(0.009)
    assert bool(s.valid.all())
    # Peaks are never below the means.
    assert s.cpu_peak[20] == pytest.approx(0.002)
    assert s.mem_peak[20] == pytest.approx(0.003)
    assert bool(np.all(s.cpu_peak >= s.cpu))
    assert (s.initial_cpu, s.initial_mem) == (0.05, 0.02)
    assert s.cpu_capacity is not None
    assert s.cpu_capacity[0] == 0.05


# ------------------------------------------------------------------------- unknown layouts


def test_load_traces_rejects_an_unknown_layout(tmp_path: Path) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TraceError, match="unknown trace layout"):
        load_traces(tmp_path / "odd")


def test_load_traces_rejects_a_path_that_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="not a folder"):
        load_traces(tmp_path / "missing")
    (tmp_path / "file.csv.gz").write_bytes(b"")
    with pytest.raises(TraceError, match="not a folder"):
        load_traces(tmp_path / "file.csv.gz")
