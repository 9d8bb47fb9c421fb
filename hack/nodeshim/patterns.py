"""The load annotation: what a shim container burns and allocates over time (pure, stdlib only).

This module is imported by the load program itself (``load.py``, which runs inside a container
cgroup), so it stays stdlib-only and cheap to import.

Schema
======

A pod asks for a load with the annotation ``presize.io/load`` (every container) or
``presize.io/load.<container-name>`` (one container; wins over the pod-wide one). Its value is
a JSON object with an optional ``cpu`` and an optional ``memory`` pattern::

    presize.io/load: '{"cpu":    {"pattern": "cycle", "low": 0.1, "high": 0.8, "period_s": 120},
                       "memory": {"pattern": "leak", "start_mb": 50, "mb_per_min": 20}}'

CPU values are in cores (0.25 = a quarter of one core, really burned, duty-cycled); memory
values are in MiB (really allocated and touched) and their keys carry an ``_mb`` suffix. ``t``
is the time in seconds since the container (re)started: a container restarted after an OOM kill
starts its patterns, and its memory, from the beginning.

===========  ====================================================  ===========================
pattern      keys (memory: ``value_mb``, ``low_mb``, ...)          value at ``t``
===========  ====================================================  ===========================
constant     ``value``                                             ``value``
cycle        ``low``, ``high``, ``period_s``, [``phase_s`` = 0]    a compressed daily cycle:
                                                                   ``low`` at t=0, ``high`` at
                                                                   half a period, cosine shape
step         ``before``, ``after``, ``at_s``                       ``before`` until ``at_s``,
                                                                   then ``after``
ramp         ``start``, ``end``, ``at_s``, ``duration_s``          ``start`` until ``at_s``,
                                                                   linear to ``end`` over
                                                                   ``duration_s``, then ``end``
burst        ``base``, ``peak``, ``every_s``, ``duration_s``,      ``peak`` for ``duration_s``
             [``offset_s`` = 0]                                    every ``every_s`` (first at
                                                                   ``offset_s``), else ``base``
leak         ``start``, ``per_min`` (memory: ``mb_per_min``),      grows linearly from
             [``max``]                                             ``start``; capped at ``max``
===========  ====================================================  ===========================

A CPU pattern may peak at 16 cores at most, so a CPU ``leak`` needs ``max``; a memory leak
without ``max_mb`` grows until its container is OOM-killed, which is what it is for.

No annotation means an idle container (no CPU burned, no memory beyond the interpreter's
~10 MiB). Unknown patterns or keys, negative values and non-positive periods are errors: the
shim then reports the container as waiting with reason ``CreateContainerConfigError``, as a
kubelet does for a bad container config, instead of guessing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ANNOTATION: Final = "presize.io/load"
MAX_CPU_CORES: Final = 16.0  # one burner process per core of peak demand; keep that bounded

# pattern -> (required keys, optional keys with defaults), in the CPU spelling
_SHAPES: Final[Mapping[str, tuple[tuple[str, ...], Mapping[str, float | None]]]] = {
    "constant": (("value",), {}),
    "cycle": (("low", "high", "period_s"), {"phase_s": 0.0}),
    "step": (("before", "after", "at_s"), {}),
    "ramp": (("start", "end", "at_s", "duration_s"), {}),
    "burst": (("base", "peak", "every_s", "duration_s"), {"offset_s": 0.0}),
    "leak": (("start", "per_min"), {"max": None}),
}
# Keys that are times, not amounts: they keep their spelling for memory too.
_TIME_KEYS: Final = frozenset({"period_s", "phase_s", "at_s", "duration_s", "every_s", "offset_s"})


class LoadSpecError(ValueError):
    """The load annotation is not valid JSON or does not follow the schema."""


@dataclass(frozen=True)
class Pattern:
    """One resource's usage over time: ``kind`` and its parameters (CPU spelling, MiB/cores)."""

    kind: str
    params: Mapping[str, float | None] = field(default_factory=dict)

    def at(self, t: float) -> float:
        """The target value ``t`` seconds after the container started (never negative)."""
        p = self.params
        t = max(t, 0.0)
        value: float
        match self.kind:
            case "constant":
                value = _f(p["value"])
            case "cycle":
                lo, hi, period = _f(p["low"]), _f(p["high"]), _f(p["period_s"])
                angle = 2.0 * math.pi * (t + _f(p["phase_s"])) / period
                value = lo + (hi - lo) * (1.0 - math.cos(angle)) / 2.0
            case "step":
                value = _f(p["before"]) if t < _f(p["at_s"]) else _f(p["after"])
            case "ramp":
                start, end, at, duration = (
                    _f(p[k]) for k in ("start", "end", "at_s", "duration_s")
                )
                if t < at:
                    value = start
                elif duration <= 0.0 or t >= at + duration:
                    value = end
                else:
                    value = start + (end - start) * (t - at) / duration
            case "burst":
                phase = (t - _f(p["offset_s"])) % _f(p["every_s"])
                in_burst = t >= _f(p["offset_s"]) and phase < _f(p["duration_s"])
                value = _f(p["peak"]) if in_burst else _f(p["base"])
            case "leak":
                value = _f(p["start"]) + _f(p["per_min"]) * t / 60.0
                cap = p.get("max")
                if cap is not None:
                    value = min(value, cap)
            case _:  # parse() admits only known kinds
                raise LoadSpecError(f"unknown pattern {self.kind!r}")
        return max(value, 0.0)

    def peak(self) -> float:
        """The largest value the pattern ever reaches (``inf`` for an uncapped leak)."""
        p = self.params
        match self.kind:
            case "constant":
                return _f(p["value"])
            case "cycle":
                return max(_f(p["low"]), _f(p["high"]))
            case "step":
                return max(_f(p["before"]), _f(p["after"]))
            case "ramp":
                return max(_f(p["start"]), _f(p["end"]))
            case "burst":
                return max(_f(p["base"]), _f(p["peak"]))
            case _:  # leak
                cap = p.get("max")
                if _f(p["per_min"]) <= 0.0:
                    return _f(p["start"])
                return math.inf if cap is None else max(cap, _f(p["start"]))

    def to_json(self) -> dict[str, Any]:
        return {"pattern": self.kind, **{k: v for k, v in self.params.items() if v is not None}}


@dataclass(frozen=True)
class LoadSpec:
    """What one container runs: CPU in cores and memory in MiB, each optional (= idle)."""

    cpu: Pattern | None = None
    memory: Pattern | None = None

    def to_json(self) -> str:
        """The canonical form handed to the load program (CPU spelling for both resources)."""
        doc = {
            name: pattern.to_json()
            for name, pattern in (("cpu", self.cpu), ("memory", self.memory))
            if pattern is not None
        }
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_canonical(cls, text: str) -> LoadSpec:
        """Inverse of :meth:`to_json` (memory already in the CPU spelling)."""
        doc = json.loads(text)
        return cls(
            cpu=parse_pattern(doc["cpu"], memory=False) if "cpu" in doc else None,
            memory=parse_pattern(doc["memory"], memory=False) if "memory" in doc else None,
        )


def _f(value: float | None) -> float:
    if value is None:  # only optional keys default to None, and they are read with .get()
        raise LoadSpecError("missing value")
    return value


def _canonical_key(key: str, memory: bool) -> str:
    """``low_mb`` -> ``low`` and ``mb_per_min`` -> ``per_min`` for memory; times unchanged."""
    if not memory or key in _TIME_KEYS or key == "pattern":
        return key
    if key == "mb_per_min":
        return "per_min"
    if key.endswith("_mb"):
        return key.removesuffix("_mb")
    raise LoadSpecError(f"memory key {key!r} needs the _mb suffix (e.g. {key}_mb)")


def parse_pattern(doc: object, *, memory: bool, cap: float | None = None) -> Pattern:
    """One pattern object; ``memory`` selects the ``_mb`` spelling of amounts, ``cap`` bounds
    the peak (CPU: one burner process per core)."""
    if not isinstance(doc, Mapping):
        raise LoadSpecError(f"a pattern must be a JSON object, got {doc!r}")
    kind = str(doc.get("pattern"))
    if kind not in _SHAPES:
        raise LoadSpecError(f"unknown pattern {kind!r}; known: {', '.join(sorted(_SHAPES))}")
    required, optional = _SHAPES[kind]
    params: dict[str, float | None] = dict(optional)
    for raw_key, raw in doc.items():
        if raw_key == "pattern":
            continue
        key = _canonical_key(str(raw_key), memory)
        if key not in required and key not in optional:
            raise LoadSpecError(f"pattern {kind!r} has no key {raw_key!r}")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise LoadSpecError(f"{raw_key} must be a finite number, got {raw!r}")
        value = float(raw)
        if value < 0.0 and key != "phase_s":
            raise LoadSpecError(f"{raw_key} must not be negative, got {raw!r}")
        params[key] = value
    missing = [k for k in required if k not in params]
    if missing:
        raise LoadSpecError(f"pattern {kind!r} needs {', '.join(missing)}")
    for positive in ("period_s", "every_s"):
        if positive in params and not _f(params[positive]) > 0.0:
            raise LoadSpecError(f"{positive} must be positive")
    if kind == "burst" and _f(params["duration_s"]) > _f(params["every_s"]):
        raise LoadSpecError("burst duration_s must not exceed every_s")
    pattern = Pattern(kind, params)
    if cap is not None and pattern.peak() > cap:
        raise LoadSpecError(f"peak {pattern.peak()} is above {cap}")
    return pattern


def parse_load(text: str) -> LoadSpec:
    """Parse an annotation value (see the module docstring)."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise LoadSpecError(f"not JSON: {err}") from None
    if not isinstance(doc, Mapping):
        raise LoadSpecError("the load annotation must be a JSON object")
    unknown = set(doc) - {"cpu", "memory"}
    if unknown:
        raise LoadSpecError(f"unknown resource(s) {sorted(unknown)}; use cpu and memory")
    return LoadSpec(
        cpu=parse_pattern(doc["cpu"], memory=False, cap=MAX_CPU_CORES) if "cpu" in doc else None,
        memory=parse_pattern(doc["memory"], memory=True) if "memory" in doc else None,
    )


def load_for_container(annotations: Mapping[str, str], container: str) -> LoadSpec:
    """The load of one container: its own annotation, else the pod's, else idle."""
    text = annotations.get(f"{ANNOTATION}.{container}", annotations.get(ANNOTATION))
    return LoadSpec() if text is None else parse_load(text)
