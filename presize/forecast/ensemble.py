"""Ensemble: use the member that has recently been right, judged out of sample.

Each member's forecast for the coming observation is remembered; when the observation arrives
each member is charged the pinball loss of its upper edge at quantile ``q`` (running short
costs ``q``, holding spare ``1 − q``), decayed so that the last day or two matter most. The
ensemble answers with the cheapest member. Members that cannot forecast yet (a seasonal model
with too little history) are simply skipped, which is how the ensemble falls back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from presize.forecast.base import Forecaster, pinball_loss
from presize.model import Forecast


class EnsembleForecaster:
    """Pick the member with the lowest decayed pinball loss of its upper edge."""

    name = "ensemble"

    def __init__(
        self,
        members: Sequence[Forecaster],
        *,
        q: float = 0.95,
        decay: float = 0.99,
        horizon_s: float = 300.0,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.q = q
        self.decay = decay
        self.horizon_s = horizon_s
        self.losses = [0.0] * len(self.members)
        self.scored = [0] * len(self.members)
        self._pending: list[float | None] = [None] * len(self.members)

    def observe(self, time: float, value: float) -> None:
        if not math.isnan(value):
            for i, predicted in enumerate(self._pending):
                if predicted is None:
                    continue
                loss = pinball_loss(value, predicted, self.q)
                self.losses[i] = self.decay * self.losses[i] + (1 - self.decay) * loss
                self.scored[i] += 1
        self._pending = [None] * len(self.members)
        for m in self.members:
            m.observe(time, value)

    def add_member(self, member: Forecaster) -> None:
        """Join a member (e.g. a seasonal model once a workload proves periodic)."""
        self.members.append(member)
        self.losses.append(0.0)
        self.scored.append(0)
        self._pending.append(None)

    def best(self) -> int | None:
        """Index of the member in use (lowest loss among those scored at least once)."""
        candidates = [i for i, n in enumerate(self.scored) if n > 0]
        if not candidates:
            return None
        return min(candidates, key=lambda i: self.losses[i])

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        forecasts = [m.forecast(time, horizon_s) for m in self.members]
        for i, f in enumerate(forecasts):
            self._pending[i] = f.upper if f is not None else None
        best = self.best()
        if best is not None and forecasts[best] is not None:
            return forecasts[best]
        return next((f for f in forecasts if f is not None), None)
