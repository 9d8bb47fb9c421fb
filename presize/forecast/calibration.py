"""Keeping prediction intervals honest: adaptive conformal inference.

A ratio distribution learned from the recent past covers what follows only as long as the
future behaves like that past. Adaptive conformal inference (Gibbs and Candès, 2021) corrects
for drift with one number: after each outcome the miscoverage level ``alpha`` moves by
``gamma × (target_alpha − missed)``, so a run of misses widens the interval and a run of hits
narrows it, and over any long stretch the share of misses approaches the target. It needs no
model of why the drift happened, which is what makes it safe to run on every container.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class AdaptiveLevel:
    """Tracks the interval level to use so that realised coverage meets ``target``."""

    target: float = 0.90
    gamma: float = 0.005
    alpha: float = 0.10
    hits: int = 0
    misses: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"coverage target {self.target}: expected (0, 1)")
        self.alpha = 1.0 - self.target

    def update(self, covered: bool) -> None:
        """Record whether the last interval covered its outcome."""
        if covered:
            self.hits += 1
        else:
            self.misses += 1
        missed = 0.0 if covered else 1.0
        self.alpha += self.gamma * ((1.0 - self.target) - missed)
        self.alpha = min(max(self.alpha, 1e-4), 0.5)

    @property
    def level(self) -> float:
        """The central interval level to ask for now (1 − alpha)."""
        return 1.0 - self.alpha

    @property
    def coverage(self) -> float:
        """Share of outcomes covered so far (NaN before any)."""
        n = self.hits + self.misses
        return self.hits / n if n else float("nan")


def central_quantiles(level: float) -> tuple[float, float]:
    """Lower and upper quantile of a central interval of ``level``."""
    tail = (1.0 - level) / 2.0
    return tail, 1.0 - tail
