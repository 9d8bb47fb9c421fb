"""The forecaster protocol and the loss used to compare forecasters.

A forecaster is a streaming object: it is told each observation with its time, and asked for
a :class:`~presize.model.Forecast` of the *peak* over a horizon. Everything is driven by the
caller's clock, so the agent (1 s samples), the controller (window summaries) and the replay
(5-minute steps) share the same code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from presize.model import Forecast


@runtime_checkable
class Forecaster(Protocol):
    """Streaming forecaster of the peak of one resource of one container."""

    name: str

    def observe(self, time: float, value: float) -> None:
        """Record the peak usage seen in the sample or window ending at ``time``."""

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        """Forecast the peak over ``(time, time + horizon_s]``; ``None`` until it can."""


def pinball_loss(actual: float, predicted: float, q: float) -> float:
    """Quantile (pinball) loss of ``predicted`` as the ``q`` quantile of ``actual``.

    Under-prediction costs ``q`` per unit, over-prediction ``1 - q``: for an upper quantile
    such as 0.95, running short is 19 times worse than holding spare, which is the trade a
    right-sizer makes between throttling or OOM risk and slack.
    """
    diff = actual - predicted
    return q * diff if diff >= 0 else (q - 1.0) * diff
