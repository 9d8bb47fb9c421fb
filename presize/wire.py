"""The formats that cross process boundaries, and the only module that imports msgpack.

Two formats, each with its own schema version:

* **Report**, agent -> controller (``POST /v1/reports``), msgpack: window summaries, the
  urgent flag and its reasons, and optional diagnostics taken when a container misbehaves.
* **ReportAck**, controller -> agent, the msgpack body of a 2xx answer to a report: whether
  it was new or a repeat, and what the controller asks of the agent (diagnostics snapshots of
  containers it flagged, I/O bandwidth limits for ``io.max``). An agent that cannot decode
  the body still treats the 2xx as delivered: the instructions are repeated on every answer.
* **Snapshot**, controller -> webhook (``GET /v1/snapshot``), msgpack or JSON: every current
  recommendation, the namespaces' modes and, optionally, the ``PresizePolicy`` min/max bounds
  per namespace (and per container). ``policy_bounds`` is the one optional key: it is written
  only when non-empty and a snapshot without it decodes with none, so webhooks and controllers
  built before it was added still read and write version 1. An unknown version raises
  ``WireVersionError``, which the webhook answers with "allow, no patch".

Design decisions:

* **Maps keyed by field name, not positional arrays.** A few hundred bytes more per report buy
  error messages that name the field (``report.windows[3].cpu_mean: expected a number``) and
  payloads one can read with any msgpack tool. The keys are exactly the dataclass field names
  and the decoder insists on exactly that set, so a field added to :mod:`presize.model`
  without a wire decision fails the round-trip tests instead of being silently dropped. Small
  fixed tuples (log matches, memory.stat pairs, processes, namespace modes) are arrays.
* **Strict, total decoding.** The size cap is checked before a single byte is parsed, msgpack
  gets ``max_*_len`` limits and no bin or ext types, then every value is type-checked (no
  ``bool`` for an ``int``, no NaN, exactly the expected keys). Whatever goes wrong comes out
  as a :class:`~presize.errors.WireError` with the cause chained, never a ``KeyError`` or a
  ``TypeError``: callers on the network edge need exactly one thing to catch.
* **Exact round-trips.** Floats travel as float64, tuples come back as tuples, enums as enums,
  so ``decode(encode(x)) == x``. JSON cannot hold infinities, so the JSON form of a snapshot
  writes them as the strings ``"Infinity"``/``"-Infinity"`` (the JSON is standard and still
  exact). NaN is refused at both ends: it would poison every aggregate downstream.
* **No numpy.** The webhook image has none; this module needs only msgpack, json and the
  stdlib besides :mod:`presize.model` and :mod:`presize.errors`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import NamedTuple, TypeVar, cast

import msgpack

from presize.errors import WireError, WireSizeError, WireVersionError
from presize.model import (
    ContainerKey,
    Mode,
    OwnerKind,
    PodRef,
    Pressure,
    Recommendation,
    ResourceRecommendation,
    UsageWindow,
    WorkloadClass,
    WorkloadKey,
)

__all__ = [
    "ACK_VERSION",
    "REPORT_VERSION",
    "SNAPSHOT_VERSION",
    "DiagnoseRequest",
    "Diagnostics",
    "IoLimit",
    "PolicyBounds",
    "ProcessSample",
    "Report",
    "ReportAck",
    "Snapshot",
    "decode_ack",
    "decode_report",
    "decode_snapshot",
    "decode_snapshot_json",
    "encode_ack",
    "encode_report",
    "encode_snapshot",
    "encode_snapshot_json",
    "snapshot_from_json_dict",
    "snapshot_to_json_dict",
]

REPORT_VERSION = 1
ACK_VERSION = 1
SNAPSHOT_VERSION = 1

_E = TypeVar("_E", bound=StrEnum)
_T = TypeVar("_T")


class ProcessSample(NamedTuple):
    """One process inside a container when diagnostics were taken."""

    pid: int
    name: str
    cpu_cores: float
    rss_bytes: float


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """What the agent saw inside a container that triggered an urgent report."""

    pod: PodRef
    container: str
    taken_at: float
    processes: tuple[ProcessSample, ...] = ()
    memory_stat: tuple[tuple[str, int], ...] = ()
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One agent -> controller message. ``sequence`` increases per agent, to spot gaps."""

    version: int = REPORT_VERSION
    node: str
    agent_id: str
    sent_at: float
    sequence: int
    windows: tuple[UsageWindow, ...] = ()
    urgent: bool = False
    urgent_reasons: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostics, ...] = ()


class DiagnoseRequest(NamedTuple):
    """The controller asks for a diagnostics snapshot of one container (an anomaly flagged)."""

    pod_uid: str
    container: str


class IoLimit(NamedTuple):
    """An I/O bandwidth limit the agent applies (cgroup v2 ``io.max``, v1 ``blkio.throttle``).

    Bytes and operations per second; ``None`` leaves that dimension unlimited. The agent
    applies it to every block device the container's cgroup has used.
    """

    pod_uid: str
    container: str
    read_bps: float | None
    write_bps: float | None
    read_iops: float | None
    write_iops: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportAck:
    """The controller's answer to a report it took: ``duplicate`` when it had it already."""

    version: int = ACK_VERSION
    sequence: int
    duplicate: bool = False
    diagnose: tuple[DiagnoseRequest, ...] = ()
    io_limits: tuple[IoLimit, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyBounds:
    """A ``PresizePolicy``'s min/max for one namespace, or one container name in it.

    ``container=None`` applies to every container of the namespace; a named entry wins over it
    for that container. CPU is in cores and memory in bytes; ``None`` means not set (the
    webhook's own flags apply).
    """

    namespace: str
    container: str | None = None
    cpu_min: float | None = None
    cpu_max: float | None = None
    memory_min: float | None = None
    memory_max: float | None = None


_BOUND_NUMBERS = ("cpu_min", "cpu_max", "memory_min", "memory_max")


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything the webhook needs to answer admission reviews without any I/O."""

    version: int = SNAPSHOT_VERSION
    generation: int
    generated_at: float
    recommendations: tuple[Recommendation, ...] = ()
    namespace_modes: tuple[tuple[str, Mode], ...] = ()
    policy_bounds: tuple[PolicyBounds, ...] = ()


_SNAPSHOT_OPTIONAL = frozenset({"policy_bounds"})


# ---------------------------------------------------------------------------- public API


def encode_report(report: Report) -> bytes:
    """msgpack bytes for ``report``; raises ``WireError`` for a value the format cannot hold."""
    _check_encodable_version(report.version, REPORT_VERSION, "report")
    return _pack(_report_out(report), "report")


def decode_report(payload: bytes, *, max_bytes: int) -> Report:
    """The report in msgpack ``payload``; raises ``WireError`` (or its subclasses
    ``WireSizeError``, ``WireVersionError``) and nothing else."""
    raw = _unpack(payload, max_bytes, "report")
    _check_version(raw, REPORT_VERSION, "report")
    return _report_in(_Fields(raw, "report", json=False, names=_names(Report)))


def encode_ack(ack: ReportAck) -> bytes:
    """msgpack bytes for ``ack``."""
    _check_encodable_version(ack.version, ACK_VERSION, "ack")
    return _pack(_ack_out(ack), "ack")


def decode_ack(payload: bytes, *, max_bytes: int) -> ReportAck:
    """The ack in msgpack ``payload``; raises ``WireError`` and nothing else."""
    raw = _unpack(payload, max_bytes, "ack")
    _check_version(raw, ACK_VERSION, "ack")
    return _ack_in(_Fields(raw, "ack", json=False, names=_names(ReportAck)))


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """msgpack bytes for ``snapshot``."""
    _check_encodable_version(snapshot.version, SNAPSHOT_VERSION, "snapshot")
    return _pack(_snapshot_out(snapshot), "snapshot")


def decode_snapshot(payload: bytes, *, max_bytes: int) -> Snapshot:
    """The snapshot in msgpack ``payload``; ``WireVersionError`` means "allow without patch"."""
    raw = _unpack(payload, max_bytes, "snapshot")
    _check_version(raw, SNAPSHOT_VERSION, "snapshot")
    return _snapshot_in(_snapshot_fields(raw, json=False))


def snapshot_to_json_dict(snapshot: Snapshot) -> dict[str, object]:
    """Plain JSON-safe data for ``snapshot`` (infinities as ``"Infinity"``/``"-Infinity"``)."""
    _check_encodable_version(snapshot.version, SNAPSHOT_VERSION, "snapshot")
    return cast(dict[str, object], _json_safe(_snapshot_out(snapshot)))


def snapshot_from_json_dict(data: object) -> Snapshot:
    """The snapshot in already-parsed JSON ``data`` (what :func:`snapshot_to_json_dict` made)."""
    _check_version(data, SNAPSHOT_VERSION, "snapshot")
    return _snapshot_in(_snapshot_fields(data, json=True))


def encode_snapshot_json(snapshot: Snapshot) -> bytes:
    """UTF-8 JSON bytes for ``snapshot``, as ``GET /v1/snapshot`` serves it."""
    data = snapshot_to_json_dict(snapshot)
    try:
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise WireError(f"snapshot: cannot encode as JSON ({exc})") from exc


def decode_snapshot_json(payload: bytes, *, max_bytes: int) -> Snapshot:
    """The snapshot in JSON ``payload``, with the same checks as :func:`decode_snapshot`."""
    _check_size(payload, max_bytes, "snapshot")
    try:
        data = json.loads(bytes(payload), parse_constant=_reject_json_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise WireError(f"snapshot: not valid JSON ({exc})") from exc
    return snapshot_from_json_dict(data)


# ---------------------------------------------------------------------------- transport


def _check_size(payload: object, max_bytes: int, what: str) -> None:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise WireError(f"{what}: expected bytes, got {type(payload).__name__}")
    if len(payload) > max_bytes:
        raise WireSizeError(f"{what}: {len(payload)} bytes is over the cap of {max_bytes}")


def _unpack(payload: bytes, max_bytes: int, what: str) -> object:
    _check_size(payload, max_bytes, what)
    limit = max(len(payload), 1)
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_str_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_bin_len=0,
            max_ext_len=0,
        )
    # msgpack raises ValueError subclasses, its own exceptions, TypeError (unhashable key),
    # RecursionError...; at this edge every one of them means "not a payload we accept".
    except Exception as exc:
        raise WireError(f"{what}: not valid msgpack ({_brief(exc)})") from exc


def _show(value: object) -> str:
    """A value as it appears in an error message: its repr, cut short if it is long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _brief(exc: BaseException) -> str:
    """The exception's name and the start of its message (ExtraData's repr holds the data)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:160]}{'...' if len(text) > 160 else ''}"


def _pack(tree: object, what: str) -> bytes:
    try:
        return cast(bytes, msgpack.packb(tree, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"{what}: cannot encode ({exc})") from exc


def _check_version(raw: object, expected: int, what: str) -> None:
    if not isinstance(raw, dict):
        raise WireError(f"{what}: expected a map, got {type(raw).__name__}")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise WireError(f"{what}.version {_show(version)}: expected an integer")
    if version != expected:
        raise WireVersionError(f"{what} version {version}: this build speaks only {expected}")


def _check_encodable_version(version: int, expected: int, what: str) -> None:
    if version != expected:
        raise WireVersionError(f"{what} version {version!r}: this build writes only {expected}")


def _reject_json_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed; infinities are written as strings")


def _json_safe(tree: object) -> object:
    if isinstance(tree, float) and math.isinf(tree):
        return "Infinity" if tree > 0 else "-Infinity"
    if isinstance(tree, dict):
        return {key: _json_safe(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_json_safe(value) for value in tree]
    return tree


# ---------------------------------------------------------------------------- encoding


def _num(value: float | None, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{path} {_show(value)}: expected a number")
    if math.isnan(value):
        raise WireError(f"{path}: NaN cannot be sent")
    return float(value)


def _opt_num(value: float | None, path: str) -> float | None:
    return None if value is None else _num(value, path)


def _pod_out(pod: PodRef) -> dict[str, object]:
    return {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid, "node": pod.node}


def _window_out(w: UsageWindow, path: str) -> dict[str, object]:
    out: dict[str, object] = {"pod": _pod_out(w.pod), "container": w.container}
    for name in _WINDOW_NUMBERS:
        out[name] = _num(getattr(w, name), f"{path}.{name}")
    for name in ("cpu_limit", "mem_limit"):
        out[name] = _opt_num(getattr(w, name), f"{path}.{name}")
    out["samples"] = w.samples
    out["oom_kills"] = w.oom_kills
    p = w.pressure
    out["pressure"] = {
        "cpu": _num(p.cpu, f"{path}.pressure.cpu"),
        "memory": _num(p.memory, f"{path}.pressure.memory"),
        "io": _num(p.io, f"{path}.pressure.io"),
    }
    out["log_matches"] = [[pattern, count] for pattern, count in w.log_matches]
    return out


def _process_out(p: ProcessSample, path: str) -> list[object]:
    cpu = _num(p.cpu_cores, f"{path}.cpu_cores")
    return [p.pid, p.name, cpu, _num(p.rss_bytes, f"{path}.rss_bytes")]


def _diagnostics_out(d: Diagnostics, path: str) -> dict[str, object]:
    return {
        "pod": _pod_out(d.pod),
        "container": d.container,
        "taken_at": _num(d.taken_at, f"{path}.taken_at"),
        "processes": [_process_out(p, f"{path}.processes[{i}]") for i, p in enumerate(d.processes)],
        "memory_stat": [[key, value] for key, value in d.memory_stat],
        "log_lines": list(d.log_lines),
    }


def _report_out(r: Report) -> dict[str, object]:
    return {
        "version": r.version,
        "node": r.node,
        "agent_id": r.agent_id,
        "sent_at": _num(r.sent_at, "report.sent_at"),
        "sequence": r.sequence,
        "windows": [_window_out(w, f"report.windows[{i}]") for i, w in enumerate(r.windows)],
        "urgent": r.urgent,
        "urgent_reasons": list(r.urgent_reasons),
        "diagnostics": [
            _diagnostics_out(d, f"report.diagnostics[{i}]") for i, d in enumerate(r.diagnostics)
        ],
    }


def _ack_out(a: ReportAck) -> dict[str, object]:
    return {
        "version": a.version,
        "sequence": a.sequence,
        "duplicate": a.duplicate,
        "diagnose": [[d.pod_uid, d.container] for d in a.diagnose],
        "io_limits": [
            [
                io.pod_uid,
                io.container,
                *(_opt_num(getattr(io, n), f"ack.io_limits[{i}].{n}") for n in _IO_NUMBERS),
            ]
            for i, io in enumerate(a.io_limits)
        ],
    }


_IO_NUMBERS = ("read_bps", "write_bps", "read_iops", "write_iops")


def _resource_out(rr: ResourceRecommendation, path: str) -> dict[str, object]:
    return {
        "target": _num(rr.target, f"{path}.target"),
        "lower": _num(rr.lower, f"{path}.lower"),
        "upper": _num(rr.upper, f"{path}.upper"),
    }


def _recommendation_out(rec: Recommendation, path: str) -> dict[str, object]:
    workload = rec.key.workload
    return {
        "key": {
            "workload": {
                "namespace": workload.namespace,
                "kind": workload.kind.value,
                "name": workload.name,
            },
            "container": rec.key.container,
        },
        "cpu": _resource_out(rec.cpu, f"{path}.cpu"),
        "memory": _resource_out(rec.memory, f"{path}.memory"),
        "workload_class": rec.workload_class.value,
        "confidence": _num(rec.confidence, f"{path}.confidence"),
        "generation": rec.generation,
        "mem_peak": _num(rec.mem_peak, f"{path}.mem_peak"),
        "net_egress_bps": _opt_num(rec.net_egress_bps, f"{path}.net_egress_bps"),
        "net_ingress_bps": _opt_num(rec.net_ingress_bps, f"{path}.net_ingress_bps"),
    }


def _bounds_out(b: PolicyBounds, path: str) -> dict[str, object]:
    out: dict[str, object] = {"namespace": b.namespace, "container": b.container}
    for name in _BOUND_NUMBERS:
        out[name] = _opt_num(getattr(b, name), f"{path}.{name}")
    return out


def _snapshot_out(s: Snapshot) -> dict[str, object]:
    out: dict[str, object] = {
        "version": s.version,
        "generation": s.generation,
        "generated_at": _num(s.generated_at, "snapshot.generated_at"),
        "recommendations": [
            _recommendation_out(rec, f"snapshot.recommendations[{i}]")
            for i, rec in enumerate(s.recommendations)
        ],
        "namespace_modes": [[namespace, mode.value] for namespace, mode in s.namespace_modes],
    }
    if s.policy_bounds:  # absent when empty: what a decoder built before the field expects
        out["policy_bounds"] = [
            _bounds_out(b, f"snapshot.policy_bounds[{i}]") for i, b in enumerate(s.policy_bounds)
        ]
    return out


# ---------------------------------------------------------------------------- decoding

_WINDOW_NUMBERS = (
    "start", "seconds", "cpu_mean", "cpu_max", "cpu_p50", "cpu_p90", "cpu_p99",
    "cpu_throttled_fraction", "mem_mean", "mem_max", "io_read_bytes", "io_write_bytes",
    "net_rx_bytes", "net_tx_bytes",
)  # fmt: skip


def _as_text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise WireError(f"{path}: expected a string, got {type(value).__name__}")
    return value


def _as_int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{path}: expected an integer, got {type(value).__name__}")
    return value


def _as_float(value: object, path: str, *, json: bool) -> float:
    if json and value in ("Infinity", "-Infinity"):
        return math.inf if value == "Infinity" else -math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{path}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError as exc:  # a JSON integer with hundreds of digits
        raise WireError(f"{path}: number out of range") from exc
    if math.isnan(number):
        raise WireError(f"{path}: NaN is not accepted")
    return number


def _as_list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise WireError(f"{path}: expected an array, got {type(value).__name__}")
    return value


def _as_tuple(value: object, path: str, length: int) -> list[object]:
    items = _as_list(value, path)
    if len(items) != length:
        raise WireError(f"{path}: expected {length} elements, got {len(items)}")
    return items


def _as_enum(kind: type[_E], value: object, path: str) -> _E:
    try:
        return kind(_as_text(value, path))
    except ValueError as exc:
        raise WireError(f"{path} {_show(value)}: not a known {kind.__name__}") from exc


class _Fields:
    """A decoded map under validation; every error names the path of the offending field."""

    __slots__ = ("_data", "_json", "_path")

    def __init__(
        self, raw: object, path: str, *, json: bool, names: Iterable[str] = (),
        optional: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        if not isinstance(raw, dict):
            raise WireError(f"{path}: expected a map, got {type(raw).__name__}")
        self._data: dict[object, object] = raw
        self._path = path
        self._json = json
        expected = set(names)
        if expected and not (expected - optional <= set(raw) <= expected):
            missing = sorted(expected - optional - set(raw))
            extra = _show(sorted(map(str, set(raw) - expected)))
            raise WireError(f"{path}: missing fields {missing}, unexpected fields {extra}")

    @property
    def data(self) -> dict[object, object]:
        return self._data

    def at(self, name: str) -> str:
        return f"{self._path}.{name}"

    def raw(self, name: str) -> object:
        if name not in self._data:
            raise WireError(f"{self.at(name)}: missing")
        return self._data[name]

    def text(self, name: str) -> str:
        return _as_text(self.raw(name), self.at(name))

    def integer(self, name: str) -> int:
        return _as_int(self.raw(name), self.at(name))

    def number(self, name: str) -> float:
        return _as_float(self.raw(name), self.at(name), json=self._json)

    def optional_number(self, name: str) -> float | None:
        value = self.raw(name)
        return None if value is None else _as_float(value, self.at(name), json=self._json)

    def has(self, name: str) -> bool:
        return name in self._data

    def optional_text(self, name: str) -> str | None:
        value = self.raw(name)
        return None if value is None else _as_text(value, self.at(name))

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            raise WireError(f"{self.at(name)}: expected true or false")
        return value

    def nested(self, name: str, names: Iterable[str]) -> _Fields:
        return _Fields(self.raw(name), self.at(name), json=self._json, names=names)

    def each(self, name: str, convert: Callable[[object, str], _T]) -> tuple[_T, ...]:
        items = _as_list(self.raw(name), self.at(name))
        return tuple(convert(item, f"{self.at(name)}[{i}]") for i, item in enumerate(items))

    def each_map(self, name: str, cls: type, convert: Callable[[_Fields], _T]) -> tuple[_T, ...]:
        names = _names(cls)
        return self.each(
            name, lambda item, path: convert(_Fields(item, path, json=self._json, names=names))
        )


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.init)


def _fast_numbers(raw: dict[object, object], names: tuple[str, ...]) -> dict[str, float] | None:
    """The named numbers of a map when every one is a plain finite float or int (the common
    case, checked in one pass); ``None`` to fall back to the field-by-field checks, which
    produce the precise error."""
    out: dict[str, float] = {}
    for name in names:
        value = raw.get(name)
        kind = type(value)
        if kind is float:
            if value != value:  # NaN  # noqa: PLR0124
                return None
            out[name] = value  # type: ignore[assignment]
        elif kind is int:  # msgpack ints are 64-bit: float() cannot overflow
            out[name] = float(value)  # type: ignore[arg-type]
        else:
            return None
    return out


def _pod_in(f: _Fields) -> PodRef:
    return PodRef(
        namespace=f.text("namespace"), name=f.text("name"), uid=f.text("uid"), node=f.text("node")
    )


def _pair_text_int(value: object, path: str) -> tuple[str, int]:
    key, count = _as_tuple(value, path, 2)
    return _as_text(key, f"{path}[0]"), _as_int(count, f"{path}[1]")


_WINDOW_KEYS = frozenset(f.name for f in fields(UsageWindow))
_POD_KEYS = frozenset(f.name for f in fields(PodRef))
_PRESSURE_KEYS = frozenset(f.name for f in fields(Pressure))


def _window_fast(raw: object) -> UsageWindow | None:
    """The common, well-formed window in one pass of exact type checks; ``None`` for anything
    else (the careful path then decodes it, or names what is wrong). Reports are mostly
    windows, so this is where the controller's ingest time goes."""
    if type(raw) is not dict or raw.keys() != _WINDOW_KEYS:
        return None
    pod, pressure = raw["pod"], raw["pressure"]
    if type(pod) is not dict or pod.keys() != _POD_KEYS:
        return None
    if type(pressure) is not dict or pressure.keys() != _PRESSURE_KEYS:
        return None
    if raw["log_matches"] or type(raw["log_matches"]) is not list:
        return None  # rare: take the careful path
    if type(raw["container"]) is not str or not all(type(v) is str for v in pod.values()):
        return None
    if type(raw["samples"]) is not int or type(raw["oom_kills"]) is not int:
        return None
    numbers = _fast_numbers(raw, _WINDOW_NUMBERS)
    psi = _fast_numbers(pressure, ("cpu", "memory", "io"))
    if numbers is None or psi is None:
        return None
    limits: list[float | None] = []
    for value in (raw["cpu_limit"], raw["mem_limit"]):
        if value is None:
            limits.append(None)
        elif type(value) is int:
            limits.append(float(value))
        elif type(value) is float and value == value:  # noqa: PLR0124
            limits.append(value)
        else:
            return None
    return UsageWindow(
        pod=PodRef(pod["namespace"], pod["name"], pod["uid"], pod["node"]),
        container=raw["container"],
        samples=raw["samples"],
        oom_kills=raw["oom_kills"],
        pressure=Pressure(psi["cpu"], psi["memory"], psi["io"]),
        cpu_limit=limits[0],
        mem_limit=limits[1],
        start=numbers["start"], seconds=numbers["seconds"], cpu_mean=numbers["cpu_mean"],
        cpu_max=numbers["cpu_max"], cpu_p50=numbers["cpu_p50"], cpu_p90=numbers["cpu_p90"],
        cpu_p99=numbers["cpu_p99"], cpu_throttled_fraction=numbers["cpu_throttled_fraction"],
        mem_mean=numbers["mem_mean"], mem_max=numbers["mem_max"],
        io_read_bytes=numbers["io_read_bytes"], io_write_bytes=numbers["io_write_bytes"],
        net_rx_bytes=numbers["net_rx_bytes"], net_tx_bytes=numbers["net_tx_bytes"],
    )  # fmt: skip


def _windows_in(f: _Fields) -> tuple[UsageWindow, ...]:
    items = _as_list(f.raw("windows"), f.at("windows"))
    out: list[UsageWindow] = []
    names = _names(UsageWindow)
    for i, item in enumerate(items):
        w = _window_fast(item)
        if w is None:
            path = f"{f.at('windows')}[{i}]"
            w = _window_in(_Fields(item, path, json=False, names=names))
        out.append(w)
    return tuple(out)


def _window_in(f: _Fields) -> UsageWindow:
    p = f.nested("pressure", _names(Pressure))
    numbers = _fast_numbers(f.data, _WINDOW_NUMBERS)
    if numbers is None:
        numbers = {name: f.number(name) for name in _WINDOW_NUMBERS}
    return UsageWindow(
        pod=_pod_in(f.nested("pod", _names(PodRef))),
        container=f.text("container"),
        samples=f.integer("samples"),
        oom_kills=f.integer("oom_kills"),
        pressure=Pressure(cpu=p.number("cpu"), memory=p.number("memory"), io=p.number("io")),
        cpu_limit=f.optional_number("cpu_limit"),
        mem_limit=f.optional_number("mem_limit"),
        log_matches=f.each("log_matches", _pair_text_int),
        **numbers,
    )


def _process_in(value: object, path: str) -> ProcessSample:
    pid, name, cpu, rss = _as_tuple(value, path, 4)
    return ProcessSample(
        pid=_as_int(pid, f"{path}.pid"),
        name=_as_text(name, f"{path}.name"),
        cpu_cores=_as_float(cpu, f"{path}.cpu_cores", json=False),
        rss_bytes=_as_float(rss, f"{path}.rss_bytes", json=False),
    )


def _diagnostics_in(f: _Fields) -> Diagnostics:
    return Diagnostics(
        pod=_pod_in(f.nested("pod", _names(PodRef))),
        container=f.text("container"),
        taken_at=f.number("taken_at"),
        processes=f.each("processes", _process_in),
        memory_stat=f.each("memory_stat", _pair_text_int),
        log_lines=f.each("log_lines", _as_text),
    )


def _report_in(f: _Fields) -> Report:
    return Report(
        version=f.integer("version"),
        node=f.text("node"),
        agent_id=f.text("agent_id"),
        sent_at=f.number("sent_at"),
        sequence=f.integer("sequence"),
        windows=_windows_in(f),
        urgent=f.flag("urgent"),
        urgent_reasons=f.each("urgent_reasons", _as_text),
        diagnostics=f.each_map("diagnostics", Diagnostics, _diagnostics_in),
    )


def _diagnose_in(value: object, path: str) -> DiagnoseRequest:
    uid, container = _as_tuple(value, path, 2)
    return DiagnoseRequest(_as_text(uid, f"{path}[0]"), _as_text(container, f"{path}[1]"))


def _io_limit_in(value: object, path: str) -> IoLimit:
    uid, container, *numbers = _as_tuple(value, path, 2 + len(_IO_NUMBERS))
    limits = [
        None if v is None else _as_float(v, f"{path}.{name}", json=False)
        for v, name in zip(numbers, _IO_NUMBERS, strict=True)
    ]
    for v, name in zip(limits, _IO_NUMBERS, strict=True):
        if v is not None and v <= 0:
            raise WireError(f"{path}.{name}: a limit must be > 0 (null means unlimited)")
    return IoLimit(
        _as_text(uid, f"{path}[0]"),
        _as_text(container, f"{path}[1]"),
        limits[0],
        limits[1],
        limits[2],
        limits[3],
    )


def _ack_in(f: _Fields) -> ReportAck:
    return ReportAck(
        version=f.integer("version"),
        sequence=f.integer("sequence"),
        duplicate=f.flag("duplicate"),
        diagnose=f.each("diagnose", _diagnose_in),
        io_limits=f.each("io_limits", _io_limit_in),
    )


def _resource_in(f: _Fields) -> ResourceRecommendation:
    return ResourceRecommendation(
        target=f.number("target"), lower=f.number("lower"), upper=f.number("upper")
    )


def _recommendation_in(f: _Fields) -> Recommendation:
    key = f.nested("key", _names(ContainerKey))
    workload = key.nested("workload", _names(WorkloadKey))
    resource_names = _names(ResourceRecommendation)
    return Recommendation(
        key=ContainerKey(
            workload=WorkloadKey(
                namespace=workload.text("namespace"),
                kind=_as_enum(OwnerKind, workload.raw("kind"), workload.at("kind")),
                name=workload.text("name"),
            ),
            container=key.text("container"),
        ),
        cpu=_resource_in(f.nested("cpu", resource_names)),
        memory=_resource_in(f.nested("memory", resource_names)),
        workload_class=_as_enum(WorkloadClass, f.raw("workload_class"), f.at("workload_class")),
        confidence=f.number("confidence"),
        generation=f.integer("generation"),
        mem_peak=f.number("mem_peak"),
        net_egress_bps=f.optional_number("net_egress_bps"),
        net_ingress_bps=f.optional_number("net_ingress_bps"),
    )


def _mode_pair(value: object, path: str) -> tuple[str, Mode]:
    namespace, mode = _as_tuple(value, path, 2)
    return _as_text(namespace, f"{path}[0]"), _as_enum(Mode, mode, f"{path}[1]")


def _bounds_in(f: _Fields) -> PolicyBounds:
    numbers = {name: f.optional_number(name) for name in _BOUND_NUMBERS}
    return PolicyBounds(
        namespace=f.text("namespace"), container=f.optional_text("container"), **numbers
    )


def _snapshot_fields(raw: object, *, json: bool) -> _Fields:
    return _Fields(raw, "snapshot", json=json, names=_names(Snapshot), optional=_SNAPSHOT_OPTIONAL)


def _snapshot_in(f: _Fields) -> Snapshot:
    return Snapshot(
        version=f.integer("version"),
        generation=f.integer("generation"),
        generated_at=f.number("generated_at"),
        recommendations=f.each_map("recommendations", Recommendation, _recommendation_in),
        namespace_modes=f.each("namespace_modes", _mode_pair),
        policy_bounds=(
            f.each_map("policy_bounds", PolicyBounds, _bounds_in) if f.has("policy_bounds") else ()
        ),
    )
