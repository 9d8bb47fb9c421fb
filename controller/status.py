"""``WorkloadProfile`` status documents: what users read with kubectl, and the checkpoint.

Pure: profiles, decisions, rollbacks and anomalies in, a JSON-safe mapping out (and back, for
the parts a restart needs). Quantities are written as Kubernetes quantity strings so that
``kubectl get wlp`` prints "250m" and "512Mi", not floats; the checkpoint is one opaque string
per container (see :meth:`controller.profile.ContainerProfile.checkpoint`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.profile import ContainerProfile
from presize.model import Decision, Forecast, Recommendation
from presize.policy import DecisionState
from presize.units import format_bytes, format_cpu


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as the status lists it."""

    at: float
    pod: str
    action: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    at: float
    pod: str
    container: str
    reason: str
    before: Mapping[str, str]
    after: Mapping[str, str]


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def _cpu(x: float) -> str:
    return format_cpu(x) if math.isfinite(x) and x > 0 else "0"


def _mem(x: float) -> str:
    return format_bytes(x) if math.isfinite(x) and x > 0 else "0"


def _resource(rec: Recommendation) -> dict[str, dict[str, str]]:
    return {
        "cpu": {
            "target": _cpu(rec.cpu.target),
            "lower": _cpu(rec.cpu.lower),
            "upper": _cpu(rec.cpu.upper),
        },
        "memory": {
            "target": _mem(rec.memory.target),
            "lower": _mem(rec.memory.lower),
            "upper": _mem(rec.memory.upper),
        },
    }


def _forecast(f: Forecast | None, fmt: object) -> dict[str, object] | None:
    if f is None:
        return None
    show = _cpu if fmt == "cpu" else _mem
    return {
        "horizonSeconds": int(f.horizon_s),
        "mean": show(f.point),
        "peak": show(f.upper),
        "lower": show(f.lower),
        "upper": show(f.upper),
        "intervalLevel": round(f.level, 3),
    }


def _state_out(state: DecisionState) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in DecisionState.__slots__:
        value = getattr(state, name)
        out[name] = None if value is None or math.isinf(value) else value
    return out


def state_in(raw: object) -> DecisionState:
    """A decision state from its status form; unknown or malformed fields keep defaults."""
    if not isinstance(raw, Mapping):
        return DecisionState()
    base = DecisionState()
    values: dict[str, float | None] = {}
    for name in DecisionState.__slots__:
        value = raw.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = float(value)
        elif value is None and getattr(base, name) is None:
            values[name] = None
    return DecisionState(**values)  # type: ignore[arg-type]


def build_status(
    *,
    now: float,
    profiles: Sequence[ContainerProfile],
    recommendations: Mapping[str, Recommendation],
    decisions: Sequence[DecisionRecord],
    rollbacks: Sequence[RollbackRecord],
    states: Mapping[str, Mapping[str, DecisionState]],
    checkpoint_s: float,
    watches: Sequence[Mapping[str, object]] = (),
) -> dict[str, object]:
    """The status of one workload's ``WorkloadProfile`` (CRD schema in the chart);
    ``watches`` are its changes under rollback watch, in their checkpoint form."""
    containers: list[dict[str, object]] = []
    total_cpu = total_mem = 0.0
    covered = scored = 0
    for p in profiles:
        name = p.key.container
        entry: dict[str, object] = {"name": name}
        rec = recommendations.get(name)
        if rec is not None:
            entry["recommendation"] = _resource(rec)
            entry["confidence"] = rec.confidence
            total_cpu += rec.cpu.target
            total_mem += rec.memory.target
        summary = p.forecast_summary(now)
        forecast = {
            k: v
            for k, v in (
                ("cpu", _forecast(summary["cpu"], "cpu")),
                ("memory", _forecast(summary["memory"], "memory")),
            )
            if v
        }
        if forecast:
            entry["forecast"] = forecast
        hours = p.hourly(now)
        if hours:
            entry["hourly"] = [
                {
                    "time": rfc3339(t),
                    "cpu": {"point": _cpu(c.point), "lower": _cpu(c.lower), "upper": _cpu(c.upper)},
                    "memory": {
                        "point": _mem(m.point),
                        "lower": _mem(m.lower),
                        "upper": _mem(m.upper),
                    },
                }
                for t, c, m in hours
            ]
        acc = p.accuracy()
        entry["accuracy"] = {
            "coverage": 0.0 if math.isnan(acc.coverage) else round(acc.coverage, 4),
            "meanAbsoluteScaledError": 0.0 if math.isnan(acc.mase) else round(acc.mase, 4),
            "samples": acc.samples,
        }
        covered += p.covered
        scored += p.scored
        containers.append(entry)
    first = profiles[0] if profiles else None
    cls = first.classification() if first else None
    status: dict[str, object] = {
        "class": cls.workload_class.value if cls else "unknown",
        "model": first.model_name() if first else "none",
        "profileGeneration": max((p.generation for p in profiles), default=0),
        "summary": {
            "cpuTarget": _cpu(total_cpu),
            "memoryTarget": _mem(total_mem),
            "coverage": f"{covered / scored:.0%}" if scored else "n/a",
        },
        "containers": containers,
        "rollbacks": [
            {
                "time": rfc3339(r.at),
                "pod": r.pod,
                "container": r.container,
                "reason": r.reason,
                "from": dict(r.before),
                "to": dict(r.after),
            }
            for r in rollbacks
        ],
        "anomalies": [
            {
                "kind": a.kind.value,
                "container": p.key.container,
                "since": rfc3339(a.started_at),
                "detail": f"{a.severity.value}: {a.reason}",
            }
            for p in profiles
            for a in p.anomalies
        ],
        "checkpoint": json.dumps(
            {
                "containers": {p.key.container: p.checkpoint(checkpoint_s) for p in profiles},
                "states": {
                    uid: {c: _state_out(s) for c, s in per.items()} for uid, per in states.items()
                },
                "decisions": [[d.at, d.pod, d.action, d.reason, d.message] for d in decisions],
                "watches": list(watches),
                "savedAt": now,
            },
            separators=(",", ":"),
        ),
    }
    if decisions:
        last = decisions[-1]
        status["lastDecision"] = {
            "action": last.action,
            "reason": last.reason,
            "time": rfc3339(last.at),
            "pod": last.pod,
            "message": last.message,
        }
    return status


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restart takes back from a status document."""

    containers: Mapping[str, dict[str, object]]
    states: Mapping[str, Mapping[str, DecisionState]]
    decisions: tuple[DecisionRecord, ...]
    rollbacks: tuple[RollbackRecord, ...]
    # Changes under rollback watch, still in checkpoint form (``controller.rollback`` reads
    # them, each on its own, so that one unreadable watch does not lose the others).
    watches: tuple[object, ...] = ()


def restore_status(status: Mapping[str, object]) -> Restored:
    """The checkpoint and histories in ``status``; raises ``ValueError`` if it is unreadable."""
    raw = status.get("checkpoint")
    if not isinstance(raw, str):
        raise ValueError("no checkpoint in status")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("checkpoint is not an object")
    containers = data.get("containers") or {}
    states_raw = data.get("states") or {}
    decisions = tuple(
        DecisionRecord(float(d[0]), str(d[1]), str(d[2]), str(d[3]), str(d[4]))
        for d in data.get("decisions") or []
        if isinstance(d, list) and len(d) == 5
    )
    rollbacks: list[RollbackRecord] = []
    for r in status.get("rollbacks") or []:  # type: ignore[attr-defined]
        if isinstance(r, Mapping):
            at = parse_rfc3339(r.get("time"))
            rollbacks.append(
                RollbackRecord(
                    at if at is not None else 0.0,
                    str(r.get("pod", "")),
                    str(r.get("container", "")),
                    str(r.get("reason", "")),
                    dict(r.get("from") or {}),
                    dict(r.get("to") or {}),
                )
            )
    return Restored(
        containers={str(k): v for k, v in containers.items() if isinstance(v, dict)},
        states={
            str(uid): {str(c): state_in(s) for c, s in per.items()}
            for uid, per in states_raw.items()
            if isinstance(per, dict)
        },
        decisions=decisions,
        rollbacks=tuple(rollbacks),
        watches=tuple(w) if isinstance(w := data.get("watches"), list) else (),
    )


def decision_record(now: float, pod: str, d: Decision) -> DecisionRecord:
    return DecisionRecord(now, pod, d.action.value, d.reason.value, d.message)
