"""Pure parsers for cgroup v1 and v2 files: text in, typed values out, no disk.

Why pure: the kernel's file formats are the fragile part of any node agent (fields appear with
kernel versions, a read can race a cgroup's removal and come back short). Keeping each format in
one function of a string, with a sample of the file in its docstring, lets every quirk be pinned
by a table-driven test on a committed sample, truncated ones included, while :mod:`reader` stays
a thin shell that only opens files.

How truncation is detected: the kernel ends every line of every cgroup file with a newline, so
text that is empty where the file can never be empty, or that stops without a final newline, is
a short read. Missing required keys, non-numeric values and half-written lines are malformed.
All of it raises :class:`~agent.errors.CgroupParseError`, never ``KeyError``/``ValueError``.

Why the records read every second are ``NamedTuple``s and the rest frozen dataclasses: a
frozen dataclass sets each field through ``object.__setattr__``, which made building the
per-tick records a tenth of the agent's cost at a hundred containers. A named tuple is just as
immutable and typed, and costs a third as much to build.

Values keep the file's own units (v2 counts microseconds, v1 nanoseconds); :mod:`reader`
normalises them into one :class:`~agent.cgroups.sample.CgroupSample`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from agent.errors import CgroupParseError

# v1 writes "no limit" as PAGE_COUNTER_MAX pages, e.g. 9223372036854771712 on 4 KiB pages; any
# value this large is not a limit a container could ever reach.
V1_UNLIMITED_BYTES = 1 << 62


class Throttling(NamedTuple):
    """CFS bandwidth counters: enforcement periods, how many were throttled, time lost."""

    nr_periods: int = 0
    nr_throttled: int = 0
    throttled_ns: int = 0


class CpuStatV2(NamedTuple):
    """v2 ``cpu.stat``: total CPU time (in ns, converted from usec) and throttling."""

    usage_ns: int
    throttling: Throttling


@dataclass(frozen=True, slots=True)
class CpuLimit:
    """A CFS quota: ``quota_us`` per ``period_us``; ``None`` quota means unlimited."""

    quota_us: int | None
    period_us: int

    @property
    def cores(self) -> float | None:
        """The limit in cores (``None`` when unlimited)."""
        if self.quota_us is None:
            return None
        return self.quota_us / self.period_us


class MemoryStat(NamedTuple):
    """The parts of ``memory.stat`` sizing needs, in bytes."""

    anon: int
    file: int
    inactive_file: int


class MemoryEvents(NamedTuple):
    """v2 ``memory.events`` counters (cumulative since the cgroup was created)."""

    high: int
    max: int
    oom: int
    oom_kill: int


class OomControl(NamedTuple):
    """v1 ``memory.oom_control``; ``oom_kill`` is ``None`` on kernels before 4.13."""

    under_oom: bool
    oom_kill: int | None


class IoStat(NamedTuple):
    """Cumulative block I/O summed over devices."""

    read_bytes: int = 0
    write_bytes: int = 0
    read_ops: int = 0
    write_ops: int = 0


@dataclass(frozen=True, slots=True)
class PressureLine:
    """One line of a PSI file: running averages (percent) and total stall time (usec)."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True, slots=True)
class PressureStat:
    """A ``*.pressure`` file; ``full`` is absent from ``cpu.pressure`` on older kernels."""

    some: PressureLine
    full: PressureLine | None


# ---------------------------------------------------------------------------- helpers

# Search order matters for _picked: the first key (the one the kernel writes
# first) decides between "absent" and "truncated".
_V2_STAT = ("anon", "file", "inactive_file")
_V1_STAT = ("cache", "rss", "inactive_file")
_V1_TOTALS = ("total_cache", "total_rss", "total_inactive_file")
_V2_CPU_REQUIRED = ("usage_usec", "user_usec", "system_usec")
_V2_CPU_KEYS = (*_V2_CPU_REQUIRED, "nr_periods", "nr_throttled", "throttled_usec")
_NEEDLES = {key: f"\n{key} " for key in (*_V2_STAT, *_V1_STAT, *_V1_TOTALS)}


def _lines(text: str, what: str, *, may_be_empty: bool = False) -> list[str]:
    """The file's lines, after checking it was read to its end (a final newline)."""
    if not text:
        if may_be_empty:
            return []
        raise CgroupParseError(f"{what}: empty (truncated read?)")
    if not text.endswith("\n"):
        raise CgroupParseError(f"{what}: no final newline (truncated read?): {text[-40:]!r}")
    return text[:-1].split("\n")


def _int(token: str, what: str, *, signed: bool = False) -> int:
    if token.isdigit() and token.isascii():  # the common case, two C calls
        return int(token)
    text = token.strip()
    body = text[1:] if signed and text.startswith("-") else text
    if not body.isdigit() or not body.isascii():
        raise CgroupParseError(f"{what}: expected an integer, got {token!r}")
    return int(text)


def _pairs(text: str, what: str) -> dict[str, str]:
    """A flat-keyed file (``key value`` per line) as raw value strings by key.

    One ``split`` for the whole file instead of one per line: every line must then hold exactly
    one space and two tokens, which the counts check, so a half-written line cannot shift the
    keys and values against each other unnoticed.
    """
    lines = text.count("\n")
    if not text.endswith("\n"):
        _lines(text, what)  # raises with the "truncated" message
    tokens = text.split()
    if len(tokens) != 2 * lines or text.count(" ") != lines:
        raise CgroupParseError(f"{what}: malformed line in {text[:80]!r}")
    return dict(zip(tokens[::2], tokens[1::2], strict=True))


def _keyed(text: str, what: str, required: Iterable[str]) -> dict[str, str]:
    """:func:`_pairs`, with the ``required`` keys present (values are parsed by the caller)."""
    out = _pairs(text, what)
    missing = [key for key in required if key not in out]
    if missing:
        raise CgroupParseError(f"{what}: missing {', '.join(missing)} (truncated read?)")
    return out


def _picked(text: str, what: str, keys: tuple[str, ...]) -> dict[str, int] | None:
    """The ``keys`` of a flat-keyed file, each found by a substring search; ``None`` if the
    first key is absent, :class:`CgroupParseError` if a later one is.

    ``memory.stat`` has some forty keys, the agent needs three, and it reads the file every
    second for every container: splitting every line would be most of the parse cost. The
    final-newline check still catches a short read, and the wanted keys must all be there.
    """
    if not text.endswith("\n"):
        _lines(text, what)  # raises
    body = "\n" + text
    out: dict[str, int] = {}
    for key in keys:
        needle = _NEEDLES.get(key) or f"\n{key} "
        at = body.find(needle)
        if at < 0:
            if not out:
                return None
            raise CgroupParseError(f"{what}: missing {key} (truncated read?)")
        start = at + len(needle)
        value = body[start : body.index("\n", start)]
        ok = value.isdigit() and value.isascii()
        out[key] = int(value) if ok else _int(value, f"{what}: {key}")
    return out


def _ints(raw: dict[str, str], what: str, keys: tuple[str, ...]) -> dict[str, int]:
    """The ``keys`` of ``raw`` that are present, as integers (the others are not parsed)."""
    out: dict[str, int] = {}
    for key in keys:
        value = raw.get(key)
        if value is not None:
            # inline fast path: this runs for every key of every container every second
            ok = value.isdigit() and value.isascii()
            out[key] = int(value) if ok else _int(value, f"{what}: {key}")
    return out


def parse_single_int(text: str, what: str) -> int:
    """A file holding one non-negative integer and a newline.

    ``memory.current``, ``memory.peak``, ``memory.usage_in_bytes`` and ``cpuacct.usage``::

        4357074857048
    """
    body = text[:-1]
    if text[-1:] == "\n" and body.isdigit() and body.isascii():  # fast path, every tick
        return int(body)
    lines = _lines(text, what)
    if len(lines) != 1:
        raise CgroupParseError(f"{what}: expected one line, got {len(lines)}")
    return _int(lines[0], what)


# ---------------------------------------------------------------------------- cgroup v2


def parse_cpu_stat_v2(text: str) -> CpuStatV2:
    """v2 ``cpu.stat``; the throttling keys exist only where the cpu controller is enabled::

    usage_usec 4340592947
    user_usec 3974095173
    system_usec 366497774
    nr_periods 1200
    nr_throttled 310
    throttled_usec 8200000
    """
    d = _ints(_keyed(text, "cpu.stat", _V2_CPU_REQUIRED), "cpu.stat", _V2_CPU_KEYS)
    return CpuStatV2(
        usage_ns=d["usage_usec"] * 1000,
        throttling=Throttling(
            d.get("nr_periods", 0), d.get("nr_throttled", 0), d.get("throttled_usec", 0) * 1000
        ),
    )


def parse_cpu_max(text: str) -> CpuLimit:
    """v2 ``cpu.max``: quota (or ``max``) and period in microseconds::

    50000 100000
    """
    lines = _lines(text, "cpu.max")
    parts = lines[0].split(" ")
    if len(lines) != 1 or len(parts) != 2:
        raise CgroupParseError(f"cpu.max: expected 'QUOTA PERIOD', got {text!r}")
    period = _int(parts[1], "cpu.max period")
    if period == 0:
        raise CgroupParseError("cpu.max: period 0")
    quota = None if parts[0] == "max" else _int(parts[0], "cpu.max quota")
    return CpuLimit(quota_us=quota, period_us=period)


def parse_memory_max(text: str) -> int | None:
    """v2 ``memory.max`` (or ``memory.high``): bytes, or ``None`` for ``max``::

    268435456
    """
    if text == "max\n":
        return None
    return parse_single_int(text, "memory.max")


def parse_memory_stat_v2(text: str) -> MemoryStat:
    """v2 ``memory.stat`` (first lines shown; the file has some forty keys)::

    anon 5533696
    file 12541952
    kernel 1048576
    shmem 9084928
    inactive_anon 0
    active_anon 1531904
    inactive_file 1069056
    active_file 2387968
    """
    d = _picked(text, "memory.stat", _V2_STAT)
    if d is None:
        raise CgroupParseError("memory.stat: missing anon (truncated read?)")
    return MemoryStat(d["anon"], d["file"], d["inactive_file"])


def working_set(usage_bytes: int, inactive_file: int) -> int:
    """Usage minus inactive page cache, as the kubelet computes it for eviction (never < 0).

    Inactive file pages are the first the kernel reclaims, so they are not memory the
    container needs; counting them would make every file-reading container look like a leak.
    """
    return max(0, usage_bytes - inactive_file)


def parse_memory_events(text: str) -> MemoryEvents:
    """v2 ``memory.events``; counters since creation (``oom_group_kill`` on newer kernels)::

    low 0
    high 12
    max 3
    oom 1
    oom_kill 1
    oom_group_kill 0
    """
    keys = ("high", "max", "oom", "oom_kill")
    d = _ints(_keyed(text, "memory.events", keys), "memory.events", keys)
    return MemoryEvents(d["high"], d["max"], d["oom"], d["oom_kill"])


def parse_io_stat(text: str) -> IoStat:
    """v2 ``io.stat``, one line per device, summed; empty when the cgroup did no I/O::

    8:0 rbytes=90112 wbytes=4096 rios=22 wios=1 dbytes=0 dios=0
    253:0 rbytes=1024 wbytes=0 rios=1 wios=0 dbytes=0 dios=0
    """
    totals = {"rbytes": 0, "wbytes": 0, "rios": 0, "wios": 0}
    for line in _lines(text, "io.stat", may_be_empty=True):
        device, *fields = line.split(" ")
        if ":" not in device or not fields:
            raise CgroupParseError(f"io.stat: malformed line {line!r}")
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep:
                raise CgroupParseError(f"io.stat: malformed field {field!r} in {line!r}")
            if key in totals:
                totals[key] += _int(value, f"io.stat {device} {key}")
    return IoStat(
        read_bytes=totals["rbytes"],
        write_bytes=totals["wbytes"],
        read_ops=totals["rios"],
        write_ops=totals["wios"],
    )


def _pressure_line(line: str, what: str) -> tuple[str, PressureLine]:
    kind, *fields = line.split(" ")
    values: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise CgroupParseError(f"{what}: malformed field {field!r}")
        values[key] = value
    try:
        return kind, PressureLine(
            avg10=float(values["avg10"]),
            avg60=float(values["avg60"]),
            avg300=float(values["avg300"]),
            total_us=_int(values["total"], f"{what} {kind} total"),
        )
    except KeyError as exc:
        raise CgroupParseError(f"{what}: {kind} line lacks {exc} (truncated read?)") from exc
    except ValueError as exc:
        raise CgroupParseError(f"{what}: {kind} line has a bad average: {line!r}") from exc


def parse_pressure(text: str, what: str = "pressure") -> PressureStat:
    """A PSI file (``cpu.pressure``, ``memory.pressure``, ``io.pressure``)::

    some avg10=13.39 avg60=12.29 avg300=34.98 total=1385179364
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0
    """
    lines = dict(_pressure_line(line, what) for line in _lines(text, what))
    if "some" not in lines:
        raise CgroupParseError(f"{what}: no 'some' line")
    return PressureStat(some=lines["some"], full=lines.get("full"))


def parse_pressure_some_total(text: str, what: str = "pressure") -> int:
    """Only the cumulative "some" stall (usec) of a PSI file: what the sampler turns into a
    share of each interval. A fast path for the 1 Hz loop; the sample is as above::

        some avg10=13.39 avg60=12.29 avg300=34.98 total=1385179364
        full avg10=0.00 avg60=0.00 avg300=0.00 total=0
    """
    end = text.find("\n")
    first = text[:end] if end > 0 else _lines(text, what)[0]
    if not first.startswith("some "):
        raise CgroupParseError(f"{what}: first line is not 'some': {first!r}")
    _, sep, total = first.rpartition(" total=")
    if not sep:
        raise CgroupParseError(f"{what}: 'some' line lacks total (truncated read?)")
    return _int(total, f"{what} some total")


# ---------------------------------------------------------------------------- cgroup v1


def parse_cpu_stat_v1(text: str) -> Throttling:
    """v1 ``cpu.stat`` (``throttled_time`` is in nanoseconds; burst keys on newer kernels)::

    nr_periods 1200
    nr_throttled 310
    throttled_time 8200000000
    nr_bursts 0
    burst_time 0
    """
    keys = ("nr_periods", "nr_throttled", "throttled_time")
    d = _ints(_keyed(text, "cpu.stat", keys), "cpu.stat", keys)
    return Throttling(d["nr_periods"], d["nr_throttled"], d["throttled_time"])


def parse_cfs(quota_text: str, period_text: str) -> CpuLimit:
    """v1 ``cpu.cfs_quota_us`` (``-1`` = unlimited) and ``cpu.cfs_period_us``::

    -1
    100000
    """
    quota = _int(_single(quota_text, "cpu.cfs_quota_us"), "cpu.cfs_quota_us", signed=True)
    period = parse_single_int(period_text, "cpu.cfs_period_us")
    if period == 0:
        raise CgroupParseError("cpu.cfs_period_us: period 0")
    return CpuLimit(quota_us=None if quota < 0 else quota, period_us=period)


def _single(text: str, what: str) -> str:
    lines = _lines(text, what)
    if len(lines) != 1:
        raise CgroupParseError(f"{what}: expected one line, got {len(lines)}")
    return lines[0]


def parse_memory_stat_v1(text: str) -> MemoryStat:
    """v1 ``memory.stat``; the hierarchical ``total_*`` keys win when present::

    cache 12541952
    rss 5533696
    inactive_file 1069056
    total_cache 1128599552
    total_rss 146518016
    total_inactive_file 371109888
    """
    totals = _picked(text, "memory.stat", _V1_TOTALS)
    if totals is not None:
        return MemoryStat(totals["total_rss"], totals["total_cache"], totals["total_inactive_file"])
    d = _picked(text, "memory.stat", _V1_STAT)
    if d is None:
        raise CgroupParseError("memory.stat: missing rss (truncated read?)")
    return MemoryStat(d["rss"], d["cache"], d["inactive_file"])


def parse_memory_limit_v1(text: str) -> int | None:
    """v1 ``memory.limit_in_bytes``; the page-counter maximum means unlimited (``None``)::

    9223372036854771712
    """
    value = parse_single_int(text, "memory.limit_in_bytes")
    return None if value >= V1_UNLIMITED_BYTES else value


def parse_oom_control(text: str) -> OomControl:
    """v1 ``memory.oom_control``; ``oom_kill`` counts kills since creation (kernel >= 4.13)::

    oom_kill_disable 0
    under_oom 0
    oom_kill 1
    """
    d = _keyed(text, "memory.oom_control", ("oom_kill_disable", "under_oom"))
    kills = d.get("oom_kill")
    return OomControl(
        _int(d["under_oom"], "memory.oom_control under_oom") != 0,
        None if kills is None else _int(kills, "memory.oom_control oom_kill"),
    )


def _blkio_totals(text: str, what: str) -> tuple[int, int]:
    """Read and Write summed over devices; the closing ``Total`` line proves the read was whole."""
    read = write = 0
    lines = _lines(text, what)
    if not lines[-1].startswith("Total "):
        raise CgroupParseError(f"{what}: no closing 'Total' line (truncated read?)")
    _int(lines[-1][len("Total ") :], f"{what} Total")
    for line in lines[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or ":" not in parts[0]:
            raise CgroupParseError(f"{what}: malformed line {line!r}")
        value = _int(parts[2], f"{what} {parts[0]} {parts[1]}")
        if parts[1] == "Read":
            read += value
        elif parts[1] == "Write":
            write += value
    return read, write


def parse_blkio_throttle(bytes_text: str, ops_text: str | None = None) -> IoStat:
    """v1 ``blkio.throttle.io_service_bytes`` and, if given, ``blkio.throttle.io_serviced``
    (ops stay 0 without it; both files have this shape)::

        8:0 Read 90112
        8:0 Write 4096
        8:0 Sync 4096
        8:0 Async 90112
        8:0 Discard 0
        8:0 Total 94208
        Total 94208
    """
    read_bytes, write_bytes = _blkio_totals(bytes_text, "blkio.throttle.io_service_bytes")
    if ops_text is None:
        return IoStat(read_bytes, write_bytes)
    read_ops, write_ops = _blkio_totals(ops_text, "blkio.throttle.io_serviced")
    return IoStat(read_bytes, write_bytes, read_ops, write_ops)


def parse_pids(text: str) -> list[int]:
    """The PIDs in a ``cgroup.procs`` text (one per line; empty for a cgroup without tasks).

    ::

        4242
        4243
    """
    return [_int(line, "cgroup.procs") for line in _lines(text, "cgroup.procs", may_be_empty=True)]


def parse_flat_keyed(text: str, what: str) -> tuple[tuple[str, int], ...]:
    """Every ``key value`` pair of a flat-keyed file (``memory.stat``), in file order, for
    diagnostics snapshots that ship the whole file.

    ::

        anon 1048576
        file 4096
    """
    return tuple((k, _int(v, what, signed=True)) for k, v in _pairs(text, what).items())
