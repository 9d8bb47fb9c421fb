"""The nouns presize talks about, as frozen dataclasses.

Every value that crosses a module boundary is one of these: immutable, typed, cheap to compare
and to serialise (``presize.wire`` turns them into msgpack). Nothing here does I/O or knows the
time; functions that need "now" take it as an argument.

Units are fixed so that no conversion happens by accident: CPU in cores (float), memory and
bytes in bytes (float, so that means and quantiles need no rounding), times in seconds since
the Unix epoch (float), durations in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Resource(StrEnum):
    """A resource presize sizes. CPU is in cores, memory in bytes."""

    CPU = "cpu"
    MEMORY = "memory"


class OwnerKind(StrEnum):
    """The top of a pod's owner chain; a workload is identified by it."""

    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"
    JOB = "Job"
    CRONJOB = "CronJob"
    REPLICASET = "ReplicaSet"
    POD = "Pod"
    SWARM_SERVICE = "SwarmService"
    CONTAINER = "Container"


class Action(StrEnum):
    """What a decision asks the orchestrator to do."""

    NOOP = "NOOP"
    RESIZE_IN_PLACE = "RESIZE_IN_PLACE"
    RESCHEDULE = "RESCHEDULE"
    SCALE_OUT = "SCALE_OUT"
    DEFER = "DEFER"


class Mode(StrEnum):
    """Per-namespace or per-policy operating mode (``presize.io/mode``)."""

    OFF = "off"
    INITIAL = "initial"
    AUTO = "auto"


class WorkloadClass(StrEnum):
    """Behaviour class of a workload, shown to users and used to pick forecaster and buffer."""

    UNKNOWN = "unknown"
    STEADY = "steady"
    PERIODIC = "periodic"
    BURSTY = "bursty"
    TRENDING = "trending"
    BATCH = "batch"


@dataclass(frozen=True, slots=True)
class WorkloadKey:
    """A workload: the owner at the top of a pod's owner chain.

    Keys are hashed on every window the controller aggregates, so the hash is computed once
    (a dataclass would rebuild and hash a tuple of the fields each time).
    """

    namespace: str
    kind: OwnerKind
    name: str
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.namespace, self.kind, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[WorkloadKey], tuple[str, OwnerKind, str]]:
        # Rebuilt through __init__ when unpickled: string hashes differ between processes.
        return (WorkloadKey, (self.namespace, self.kind, self.name))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind.value}/{self.name}"


@dataclass(frozen=True, slots=True)
class ContainerKey:
    """One container name of one workload; profiles are kept at this grain (hash kept, as
    :class:`WorkloadKey`'s)."""

    workload: WorkloadKey
    container: str
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.workload, self.container)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[ContainerKey], tuple[WorkloadKey, str]]:
        return (ContainerKey, (self.workload, self.container))

    def __str__(self) -> str:
        return f"{self.workload}/{self.container}"


@dataclass(frozen=True, slots=True)
class PodRef:
    """A running pod instance (or a Docker task or container)."""

    namespace: str
    name: str
    uid: str
    node: str = ""


@dataclass(frozen=True, slots=True)
class Pressure:
    """Pressure stall information: share of wall time some task was stalled (0..1, avg10)."""

    cpu: float = 0.0
    memory: float = 0.0
    io: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """A summary of one container over one window, as the agent ships it.

    Means are over the window; ``*_max`` are the largest 1 s samples, which is what decides
    throttling and OOM risk (a 5-minute mean hides them).
    """

    pod: PodRef
    container: str
    start: float
    seconds: float
    samples: int
    cpu_mean: float
    cpu_max: float
    cpu_p50: float
    cpu_p90: float
    cpu_p99: float
    cpu_throttled_fraction: float
    mem_mean: float
    mem_max: float
    oom_kills: int = 0
    pressure: Pressure = field(default_factory=Pressure)
    io_read_bytes: float = 0.0
    io_write_bytes: float = 0.0
    net_rx_bytes: float = 0.0
    net_tx_bytes: float = 0.0
    cpu_limit: float | None = None
    mem_limit: float | None = None
    log_matches: tuple[tuple[str, int], ...] = ()

    @property
    def end(self) -> float:
        return self.start + self.seconds


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecast of one resource over a horizon.

    ``point`` is the expected peak over the horizon; ``lower`` and ``upper`` bound the peak with
    nominal coverage ``level`` (after calibration). ``model`` names the forecaster that made it.
    """

    horizon_s: float
    point: float
    lower: float
    upper: float
    level: float
    model: str

    def __post_init__(self) -> None:
        if not (self.lower <= self.point <= self.upper):
            object.__setattr__(self, "lower", min(self.lower, self.point))
            object.__setattr__(self, "upper", max(self.upper, self.point))


@dataclass(frozen=True, slots=True)
class Bounds:
    """Allowed range for one resource (policy min/max, LimitRange, node size)."""

    minimum: float = 0.0
    maximum: float = float("inf")

    def clamp(self, value: float) -> float:
        return min(max(value, self.minimum), self.maximum)


@dataclass(frozen=True, slots=True)
class ResourceRecommendation:
    """Target with a lower and upper bound, as VPA and WorkloadProfile status expose it."""

    target: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What one container of one workload should be given."""

    key: ContainerKey
    cpu: ResourceRecommendation
    memory: ResourceRecommendation
    workload_class: WorkloadClass
    confidence: float
    generation: int
    mem_peak: float = 0.0
    net_egress_bps: float | None = None
    net_ingress_bps: float | None = None


class Reason(StrEnum):
    """Why a decision was taken; machine-readable so metrics and tests can key on it."""

    WITHIN_BAND = "within-band"
    PREDICTED_OVER = "predicted-over-allocation"
    OOM_KILL = "oom-kill"
    SLO_THROTTLING = "slo-throttling"
    SLO_PRESSURE = "slo-pressure"
    SLO_LATENCY = "slo-latency"
    SCALE_DOWN = "predicted-under-allocation"
    HYSTERESIS = "hysteresis"
    COOLDOWN = "cooldown"
    EXCEEDS_MAX = "exceeds-policy-max"
    EXCEEDS_NODE = "exceeds-node-free"
    NO_HISTORY = "insufficient-history"
    MODE_OFF = "mode-off"
    LEAK_CAPPED = "suspected-leak-capped"
    ROLLBACK_BACKOFF = "rollback-backoff"
    # The node's answer to a resize that was asked (Kubernetes: the kubelet's pod conditions).
    RESIZE_DEFERRED = "resize-deferred"  # PodResizePending/Deferred: it applies it when it can
    RESIZE_INFEASIBLE = "resize-infeasible"  # PodResizePending/Infeasible: never on this node
    RESIZE_REFUSED = "resize-refused"  # PodResizeInProgress/Error: e.g. memory below usage


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision is a value with a reason: what to do, to what, and why in words."""

    action: Action
    reason: Reason
    message: str
    cpu: float | None = None
    memory: float | None = None
    reasons: tuple[Reason, ...] = ()

    @property
    def changes_allocation(self) -> bool:
        return self.action is Action.RESIZE_IN_PLACE or self.action is Action.RESCHEDULE
