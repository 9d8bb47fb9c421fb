"""``PresizePolicy`` specs and namespace modes, turned into what one container may be given.

Pure: the orchestrator adapters hand over raw ``spec`` mappings (:class:`ClusterState`
``policies``) and this module parses them, so Kubernetes and Docker share one reading and a
malformed policy is reported the same way everywhere.

Which policy applies to a pod: the policies of its namespace whose ``selector`` matches the
pod's labels, the one with the most specific selector (most terms) first, ties by name. Within
it, the entry for the container's name wins over the ``"*"`` entry. The mode is, most specific
first: the container entry's ``mode``, the policy's ``mode``, the namespace's mode
(annotation ``presize.io/mode``), the controller's default.

A policy that does not parse is skipped with its error recorded (:attr:`PolicyBook.errors`),
never applied half-read: a typo must not turn into a 0-byte memory maximum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from presize.errors import QuantityError
from presize.model import Bounds, Mode
from presize.units import parse_bytes, parse_cpu
from presize.wire import PolicyBounds


@dataclass(frozen=True, slots=True)
class LatencySlo:
    """A Prometheus histogram to scrape as an SLO signal (``url`` or the pod's ``port``)."""

    metric: str
    max_seconds: float
    quantile: float = 0.99
    url: str | None = None
    port: int | None = None
    path: str = "/metrics"


@dataclass(frozen=True, slots=True)
class Slo:
    """Limits whose breach is a reason to grow, and to roll a change back."""

    max_throttling_ratio: float | None = None
    max_psi: float | None = None  # 0..1 (the CRD says percent; parsed to a share)
    max_oom_kills: int | None = None
    latency: LatencySlo | None = None


@dataclass(frozen=True, slots=True)
class ContainerRule:
    """One ``spec.containers[]`` entry."""

    name: str
    mode: Mode | None = None
    cpu: Bounds = Bounds()
    memory: Bounds = Bounds()
    controlled: frozenset[str] = frozenset({"cpu", "memory"})


@dataclass(frozen=True, slots=True)
class ParsedPolicy:
    """One ``PresizePolicy``, fully parsed."""

    namespace: str
    name: str
    mode: Mode | None = None
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()
    buffer: float | None = None
    containers: tuple[ContainerRule, ...] = ()
    slo: Slo = Slo()
    rollback_enabled: bool = True
    rollback_window_s: float | None = None
    eviction_allowed: bool = False
    remediate_leaks: bool = False
    io: IoRates | None = None

    @property
    def specificity(self) -> int:
        return len(self.match_labels) + len(self.match_expressions)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(_expression_holds(e, labels) for e in self.match_expressions)

    def rule_for(self, container: str) -> ContainerRule | None:
        named = next((r for r in self.containers if r.name == container), None)
        return named or next((r for r in self.containers if r.name == "*"), None)


@dataclass(frozen=True, slots=True)
class Effective:
    """What applies to one container of one pod: the result of :meth:`PolicyBook.resolve`."""

    mode: Mode
    cpu: Bounds = Bounds()
    memory: Bounds = Bounds()
    buffer: float | None = None
    slo: Slo = Slo()
    controlled: frozenset[str] = frozenset({"cpu", "memory"})
    rollback_enabled: bool = True
    rollback_window_s: float | None = None
    eviction_allowed: bool = False
    remediate_leaks: bool = False
    io: IoRates | None = None
    policy: str | None = None


#: Read and write bytes per second, read and write operations per second (``None``: unlimited).
IoRates = tuple[float | None, float | None, float | None, float | None]


def _io(raw: object, path: str) -> IoRates | None:
    if raw is None:
        return None
    io = _map(raw, path)
    names = ("readBytesPerSecond", "writeBytesPerSecond", "readIOPS", "writeIOPS")
    rates = tuple(_number(io.get(n), f"{path}.{n}", lo=1.0) for n in names)
    if all(r is None for r in rates):
        return None
    return rates[0], rates[1], rates[2], rates[3]


def _expression_holds(expr: tuple[str, str, frozenset[str]], labels: Mapping[str, str]) -> bool:
    key, op, values = expr
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    return key not in labels  # DoesNotExist


class PolicyError(ValueError):
    """A ``PresizePolicy`` spec that cannot be applied; the message names the field."""


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``"15m"``, ``"1h30m"``, ``"90s"``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PolicyError(f"duration {text!r}: expected e.g. 15m, 1h30m, 90s")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def _mode(value: object, path: str) -> Mode | None:
    if value is None:
        return None
    try:
        return Mode(str(value))
    except ValueError as exc:
        raise PolicyError(f"{path}: {value!r} is not one of off, initial, auto") from exc


def _number(value: object, path: str, *, lo: float = 0.0, hi: float = math.inf) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise PolicyError(f"{path}: {value!r} is not a number in [{lo}, {hi}]")
    return float(value)


def _map(value: object, path: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{path}: expected an object")
    return value


def _bounds(rule: Mapping[str, object], resource: str, path: str) -> Bounds:
    parse = parse_cpu if resource == "cpu" else parse_bytes
    values: list[float] = []
    for side, default in (("minAllowed", 0.0), ("maxAllowed", math.inf)):
        raw = _map(rule.get(side), f"{path}.{side}").get(resource)
        try:
            values.append(default if raw is None else parse(raw))  # type: ignore[arg-type]
        except (QuantityError, TypeError) as exc:
            raise PolicyError(f"{path}.{side}.{resource}: {exc}") from exc
    if values[0] > values[1]:
        raise PolicyError(f"{path}: {resource} minAllowed is above maxAllowed")
    return Bounds(values[0], values[1])


def _container_rule(raw: object, path: str) -> ContainerRule:
    rule = _map(raw, path)
    name = rule.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{path}.name: expected a container name or '*'")
    controlled = rule.get("controlledResources", ["cpu", "memory"])
    if not isinstance(controlled, list) or not set(controlled) <= {"cpu", "memory"}:
        raise PolicyError(f"{path}.controlledResources: expected a list of cpu, memory")
    return ContainerRule(
        name=name,
        mode=_mode(rule.get("mode"), f"{path}.mode"),
        cpu=_bounds(rule, "cpu", path),
        memory=_bounds(rule, "memory", path),
        controlled=frozenset(str(c) for c in controlled),
    )


def _latency(raw: object, path: str) -> LatencySlo | None:
    if raw is None:
        return None
    lat = _map(raw, path)
    metric, url, port = lat.get("metric"), lat.get("url"), lat.get("port")
    if not isinstance(metric, str) or not metric:
        raise PolicyError(f"{path}.metric: expected a metric name")
    max_s = _number(lat.get("maxSeconds"), f"{path}.maxSeconds")
    if max_s is None:
        raise PolicyError(f"{path}.maxSeconds: required")
    if url is None and port is None:
        raise PolicyError(f"{path}: give a url or a port to scrape")
    return LatencySlo(
        metric=metric,
        max_seconds=max_s,
        quantile=_number(lat.get("quantile", 0.99), f"{path}.quantile", hi=1.0) or 0.99,
        url=str(url) if url is not None else None,
        port=int(port) if isinstance(port, int) and not isinstance(port, bool) else None,
        path=str(lat.get("path", "/metrics")),
    )


def _slo(raw: object, path: str) -> Slo:
    slo = _map(raw, path)
    psi = _number(slo.get("maxPSI"), f"{path}.maxPSI", hi=100.0)
    ooms = _number(slo.get("maxOOMKills"), f"{path}.maxOOMKills")
    return Slo(
        max_throttling_ratio=_number(
            slo.get("maxThrottlingRatio"), f"{path}.maxThrottlingRatio", hi=1.0
        ),
        max_psi=None if psi is None else psi / 100.0,
        max_oom_kills=None if ooms is None else int(ooms),
        latency=_latency(slo.get("latency"), f"{path}.latency"),
    )


def _expressions(
    selector: Mapping[str, object], path: str
) -> tuple[tuple[str, str, frozenset[str]], ...]:
    out: list[tuple[str, str, frozenset[str]]] = []
    raw = selector.get("matchExpressions") or []
    if not isinstance(raw, list):
        raise PolicyError(f"{path}.matchExpressions: expected a list")
    for i, item in enumerate(raw):
        e = _map(item, f"{path}.matchExpressions[{i}]")
        op = e.get("operator")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise PolicyError(f"{path}.matchExpressions[{i}].operator: {op!r}")
        values = e.get("values") or []
        if not isinstance(values, list):
            raise PolicyError(f"{path}.matchExpressions[{i}].values: expected a list")
        out.append((str(e.get("key")), str(op), frozenset(str(v) for v in values)))
    return tuple(out)


def parse_policy(namespace: str, name: str, spec: Mapping[str, object]) -> ParsedPolicy:
    """One ``PresizePolicy`` spec; raises :class:`PolicyError` naming the bad field."""
    path = f"PresizePolicy {namespace}/{name}: spec"
    selector = _map(spec.get("selector"), f"{path}.selector")
    labels = _map(selector.get("matchLabels"), f"{path}.selector.matchLabels")
    rules = spec.get("containers") or []
    if not isinstance(rules, list):
        raise PolicyError(f"{path}.containers: expected a list")
    rollback = _map(spec.get("rollback"), f"{path}.rollback")
    window = rollback.get("window")
    eviction = _map(spec.get("eviction"), f"{path}.eviction")
    remediation = _map(spec.get("remediation"), f"{path}.remediation")
    return ParsedPolicy(
        namespace=namespace,
        name=name,
        mode=_mode(spec.get("mode"), f"{path}.mode"),
        match_labels={str(k): str(v) for k, v in labels.items()},
        match_expressions=_expressions(selector, f"{path}.selector"),
        buffer=_number(spec.get("buffer"), f"{path}.buffer", lo=1.0, hi=10.0),
        containers=tuple(
            _container_rule(r, f"{path}.containers[{i}]") for i, r in enumerate(rules)
        ),
        slo=_slo(spec.get("slo"), f"{path}.slo"),
        rollback_enabled=rollback.get("enabled", True) is not False,
        rollback_window_s=None if window is None else parse_duration(str(window)),
        eviction_allowed=eviction.get("allowed", False) is True,
        remediate_leaks=remediation.get("restartOnLeak", False) is True,
        io=_io(spec.get("io"), f"{path}.io"),
    )


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """Every parsed policy by namespace, the namespaces' modes, and the policies refused."""

    policies: Mapping[str, tuple[ParsedPolicy, ...]]
    namespace_modes: Mapping[str, Mode]
    default_mode: Mode
    errors: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        raw: Mapping[str, Sequence[Mapping[str, object]]],
        namespace_modes: Mapping[str, Mode],
        default_mode: Mode,
    ) -> PolicyBook:
        """``raw``: per namespace, the policy objects as ``{"name": ..., "spec": {...}}``."""
        parsed: dict[str, list[ParsedPolicy]] = {}
        errors: list[str] = []
        for namespace, items in raw.items():
            for item in items:
                name = str(item.get("name", "?"))
                spec = item.get("spec")
                try:
                    policy = parse_policy(namespace, name, _map(spec, f"{namespace}/{name}"))
                except PolicyError as exc:
                    errors.append(str(exc))
                    continue
                parsed.setdefault(namespace, []).append(policy)
        ordered = {
            ns: tuple(sorted(ps, key=lambda p: (-p.specificity, p.name)))
            for ns, ps in parsed.items()
        }
        return cls(ordered, dict(namespace_modes), default_mode, tuple(errors))

    def managed(self, namespace: str) -> bool:
        return namespace in self.namespace_modes

    def resolve(self, namespace: str, container: str, labels: Mapping[str, str]) -> Effective:
        """What applies to ``container`` of a pod with ``labels`` in ``namespace``."""
        ns_mode = self.namespace_modes.get(namespace, self.default_mode)
        policy = next((p for p in self.policies.get(namespace, ()) if p.matches(labels)), None)
        if policy is None:
            return Effective(mode=ns_mode)
        rule = policy.rule_for(container)
        return Effective(
            mode=(rule.mode if rule and rule.mode else None) or policy.mode or ns_mode,
            cpu=rule.cpu if rule else Bounds(),
            memory=rule.memory if rule else Bounds(),
            buffer=policy.buffer,
            slo=policy.slo,
            controlled=rule.controlled if rule else frozenset({"cpu", "memory"}),
            rollback_enabled=policy.rollback_enabled,
            rollback_window_s=policy.rollback_window_s,
            eviction_allowed=policy.eviction_allowed,
            remediate_leaks=policy.remediate_leaks,
            io=policy.io,
            policy=f"{namespace}/{policy.name}",
        )

    def snapshot_bounds(self) -> tuple[PolicyBounds, ...]:
        """The bounds of selector-less policies, as the webhook's snapshot carries them."""
        out: list[PolicyBounds] = []
        for namespace, policies in sorted(self.policies.items()):
            policy = next((p for p in policies if p.specificity == 0), None)
            if policy is None:
                continue
            for rule in policy.containers:
                out.append(
                    PolicyBounds(
                        namespace=namespace,
                        container=None if rule.name == "*" else rule.name,
                        cpu_min=rule.cpu.minimum or None,
                        cpu_max=None if math.isinf(rule.cpu.maximum) else rule.cpu.maximum,
                        memory_min=rule.memory.minimum or None,
                        memory_max=(
                            None if math.isinf(rule.memory.maximum) else rule.memory.maximum
                        ),
                    )
                )
        return tuple(out)
