"""Loaders for the trace folders of ``../shared/traces`` (read in place, never copied).

Each loader knows one folder layout and its quirks (see each folder's PROVENANCE.md):

* Bitbrains Rnd: one ``;\\t``-separated file per VM; CPU in MHz converted to cores with the VM's
  per-core clock; memory in KB; all-zero rows (VM off) and rows with 0 cores dropped; some files
  repeat and over-sample timestamps.
* Google 2011 jobs: one long CSV of 288-step days; a job's days are concatenated in day order
  even where days are missing (the values are continuous across consecutive days).
* Google 2019 instances: per-container windows with mean and max CPU and memory and the limits
  Borg recorded; OOM and throttling are judged on the window maxima.

:func:`load_traces` picks the loader from the folder's contents.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from presize.errors import TraceError
from presize.replay.cleaning import clean, forward_fill, trim
from presize.replay.series import (
    REAL_UNITS,
    STEPS_PER_DAY,
    FloatArray,
    Series,
    TraceSet,
    TraceUnits,
)

GOOGLE_2011_UNITS = TraceUnits(
    cpu_name="% of largest machine / 100",
    mem_name="% of largest machine",
    cpu_bucket=0.001,
    mem_bucket=0.01,
    cpu_min=0.0,
    mem_min=0.0,
    oom_min_bump=0.0,
)

GOOGLE_2019_UNITS = TraceUnits(
    cpu_name="NCU (fraction of the largest machine)",
    mem_name="NMU (fraction of the largest machine)",
    cpu_bucket=1e-5,
    mem_bucket=1e-5,
    cpu_min=0.0,
    mem_min=0.0,
    oom_min_bump=0.0,
)


def _enough(series: Series, min_days: float) -> bool:
    return bool(series.valid.sum() >= min_days * STEPS_PER_DAY)


def parse_bitbrains(text: str) -> dict[str, FloatArray]:
    """Parse one Bitbrains file's text (``;\\t`` separated, one header line) into columns."""
    lines = text.splitlines()
    if not lines or "Timestamp" not in lines[0]:
        raise TraceError("not a Bitbrains file: the header line is missing")
    body = "\n".join(line.replace(";", ",") for line in lines[1:] if line.strip())
    if not body:
        return {k: np.empty(0) for k in ("t", "cores", "cap_mhz", "cpu_mhz", "mem_cap", "mem")}
    data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)
    if data.shape[1] < 7:
        raise TraceError(f"Bitbrains rows have {data.shape[1]} fields, expected 11")
    return {
        "t": data[:, 0],
        "cores": data[:, 1],
        "cap_mhz": data[:, 2],
        "cpu_mhz": data[:, 3],
        "mem_cap": data[:, 5] * 1024.0,
        "mem": data[:, 6] * 1024.0,
    }


def bitbrains_series(series_id: str, cols: dict[str, FloatArray]) -> Series | None:
    """Clean one VM's columns into a :class:`Series` (``None`` when nothing usable is left)."""
    off = (cols["cores"] <= 0) | (
        (cols["cpu_mhz"] == 0) & (cols["mem"] == 0) & (cols["cap_mhz"] == 0)
    )
    keep = ~off
    if not keep.any():
        return None
    per_core = cols["cap_mhz"][keep] / cols["cores"][keep]
    cpu = np.where(per_core > 0, cols["cpu_mhz"][keep] / np.where(per_core > 0, per_core, 1), 0.0)
    start, grid = clean(
        cols["t"][keep],
        {
            "cpu": (cpu, "mean"),
            "mem": (cols["mem"][keep], "mean"),
            "cores": (cols["cores"][keep], "mean"),
            "mem_cap": (cols["mem_cap"][keep], "mean"),
        },
        key="cpu",
    )
    if grid["cpu"].size == 0:
        return None
    first = ~np.isnan(grid["cpu"])
    i0 = int(np.argmax(first))
    return Series(
        series_id=series_id,
        cpu=grid["cpu"],
        mem=grid["mem"],
        cpu_capacity=grid["cores"],
        mem_capacity=grid["mem_cap"],
        initial_cpu=float(grid["cores"][i0]),
        initial_mem=float(grid["mem_cap"][i0]),
        start_time=start,
    )


def load_bitbrains(folder: Path, *, limit: int | None = None, min_days: float = 3.0) -> TraceSet:
    files = sorted(
        (p for p in folder.glob("*/*.csv.gz")),
        key=lambda p: (p.parent.name, int(p.name.split(".")[0])),
    )
    if not files:
        raise TraceError(f"{folder}: no Bitbrains month folders with *.csv.gz files")
    out: list[Series] = []
    for path in files:
        try:
            cols = parse_bitbrains(gzip.decompress(path.read_bytes()).decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise TraceError(f"{path}: {exc}") from exc
        s = bitbrains_series(f"{path.parent.name}/{path.name.split('.')[0]}", cols)
        if s is not None and _enough(s, min_days):
            out.append(s)
        if limit is not None and len(out) >= limit:
            break
    return TraceSet(name=folder.name, units=REAL_UNITS, series=tuple(out))


def load_google2011(folder: Path, *, limit: int | None = None, min_days: float = 3.0) -> TraceSet:
    path = folder / "jobs_5min.csv.gz"
    days: dict[str, dict[int, list[tuple[int, float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    try:
        with gzip.open(path, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                days[row["job_id"]][int(row["day"])].append(
                    (int(row["step"]), float(row["cpu_util_pct"]), float(row["mem_util_pct"]))
                )
    except (OSError, KeyError, ValueError) as exc:
        raise TraceError(f"{path}: {exc}") from exc
    out: list[Series] = []
    for job in sorted(days, key=int):
        cpu_parts: list[FloatArray] = []
        mem_parts: list[FloatArray] = []
        for day in sorted(days[job]):
            cpu_day = np.full(STEPS_PER_DAY, np.nan)
            mem_day = np.full(STEPS_PER_DAY, np.nan)
            for step, c, m in days[job][day]:
                if 0 <= step < STEPS_PER_DAY:
                    cpu_day[step] = c / 100.0
                    mem_day[step] = m
            cpu_parts.append(cpu_day)
            mem_parts.append(mem_day)
        # Days are concatenated in day order even where days are missing (the reference's
        # choice); missing steps inside them are filled like any short gap, ends trimmed.
        _, cols = trim(
            {
                "cpu": forward_fill(np.concatenate(cpu_parts), max_fill=12),
                "mem": forward_fill(np.concatenate(mem_parts), max_fill=12),
            },
            key="cpu",
        )
        cpu, mem = cols["cpu"], cols["mem"]
        mem[np.isnan(cpu)] = np.nan
        cpu[np.isnan(mem)] = np.nan
        s = Series(series_id=f"job-{job}", cpu=cpu, mem=mem, initial_cpu=1.0, initial_mem=100.0)
        if _enough(s, min_days):
            out.append(s)
        if limit is not None and len(out) >= limit:
            break
    return TraceSet(name=folder.name, units=GOOGLE_2011_UNITS, series=tuple(out))


_G19_COLS = ("avg_cpu_usage", "max_cpu_usage", "avg_memory_usage", "max_memory_usage")


def load_google2019(folder: Path, *, limit: int | None = None, min_days: float = 1.5) -> TraceSet:
    path = folder / "instances_5min_long.csv.gz"
    rows: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    try:
        with gzip.open(path, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                vals = tuple(float(row[c]) for c in _G19_COLS)
                if min(vals) < 0:  # -1 marks a missing cell in the source
                    continue
                rows[row["unique_id"]].append(
                    (float(row["time"]) / 1e6, *vals, float(row["cpu_limit"]),
                     float(row["memory_limit"]))
                )
    except (OSError, KeyError, ValueError) as exc:
        raise TraceError(f"{path}: {exc}") from exc
    out: list[Series] = []
    for uid in sorted(rows):
        a = np.asarray(rows[uid], dtype=np.float64)
        start, g = clean(
            a[:, 0],
            {
                "cpu": (a[:, 1], "mean"),
                "cpu_peak": (a[:, 2], "max"),
                "mem": (a[:, 3], "mean"),
                "mem_peak": (a[:, 4], "max"),
                "cpu_limit": (a[:, 5], "last"),
                "mem_limit": (a[:, 6], "last"),
            },
            key="cpu",
        )
        if g["cpu"].size == 0:
            continue
        s = Series(
            series_id=uid,
            cpu=g["cpu"],
            mem=g["mem"],
            cpu_peak=np.fmax(g["cpu_peak"], g["cpu"]),
            mem_peak=np.fmax(g["mem_peak"], g["mem"]),
            cpu_capacity=g["cpu_limit"],
            mem_capacity=g["mem_limit"],
            initial_cpu=float(g["cpu_limit"][0]),
            initial_mem=float(g["mem_limit"][0]),
            start_time=start,
        )
        if _enough(s, min_days):
            out.append(s)
        if limit is not None and len(out) >= limit:
            break
    return TraceSet(name=folder.name, units=GOOGLE_2019_UNITS, series=tuple(out), has_peaks=True)


def load_traces(folder: Path | str, *, limit: int | None = None) -> TraceSet:
    """Load a trace folder, recognising its layout from the files it holds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TraceError(f"{folder}: not a folder")
    if (folder / "jobs_5min.csv.gz").exists():
        return load_google2011(folder, limit=limit)
    if (folder / "instances_5min_long.csv.gz").exists():
        return load_google2019(folder, limit=limit)
    if any(folder.glob("*/*.csv.gz")):
        return load_bitbrains(folder, limit=limit)
    raise TraceError(
        f"{folder}: unknown trace layout (expected Bitbrains month folders, "
        "jobs_5min.csv.gz or instances_5min_long.csv.gz)"
    )
