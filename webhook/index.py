"""A snapshot indexed for admission: one dict lookup per container, built once per refresh.

A snapshot is a flat tuple of recommendations; scanning it per admission request would make
latency grow with the cluster. The background refresher builds this index once whenever a new
snapshot arrives, and every admission reads it without locks: the index is immutable and the
cache swaps the reference atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from presize.model import ContainerKey, Mode, Recommendation, WorkloadKey
from presize.wire import PolicyBounds, Snapshot


@dataclass(frozen=True, slots=True)
class SnapshotIndex:
    """``snapshot`` plus lookups by container and by workload, the namespaces' modes and the
    ``PresizePolicy`` bounds by (namespace, container or ``None``)."""

    snapshot: Snapshot
    by_container: Mapping[ContainerKey, Recommendation]
    workloads: frozenset[WorkloadKey]
    modes: Mapping[str, Mode]
    bounds: Mapping[tuple[str, str | None], PolicyBounds] = field(default_factory=dict)

    @classmethod
    def build(cls, snapshot: Snapshot) -> SnapshotIndex:
        """Index ``snapshot``; a later duplicate key wins (the controller sends none)."""
        by_container = {rec.key: rec for rec in snapshot.recommendations}
        return cls(
            snapshot=snapshot,
            by_container=by_container,
            workloads=frozenset(key.workload for key in by_container),
            modes=dict(snapshot.namespace_modes),
            bounds={(b.namespace, b.container): b for b in snapshot.policy_bounds},
        )

    @property
    def generation(self) -> int:
        return self.snapshot.generation

    @property
    def generated_at(self) -> float:
        return self.snapshot.generated_at

    def policy_bounds(self, namespace: str, container: str) -> tuple[PolicyBounds, ...]:
        """The namespace-wide entry, then the container's own: later entries win."""
        found = (self.bounds.get((namespace, None)), self.bounds.get((namespace, container)))
        return tuple(b for b in found if b is not None)

    def recommendation(self, workload: WorkloadKey, container: str) -> Recommendation | None:
        return self.by_container.get(ContainerKey(workload, container))
