"""Window summaries → :class:`presize.wire.Report`s, cut to stay under the size cap.

Pure: the sequence numbers come from a callable (the spool's, which persists them), the time
is passed in. A report is cut at ``max_windows`` windows (about 600 bytes each encoded), so a
node with thousands of containers sends several reports rather than one the controller must
refuse; every part carries the urgent flag and reasons of the whole. Diagnostics snapshots ride
in the first part (a report with no windows is still sent when it carries diagnostics).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from presize.model import UsageWindow
from presize.wire import Diagnostics, Report

MAX_WINDOWS = 2000  # ~1.2 MB encoded, well under the 4 MiB cap


def build_reports(
    windows: Sequence[UsageWindow],
    *,
    node: str,
    agent_id: str,
    sent_at: float,
    sequence: Callable[[], int],
    urgent_reasons: tuple[str, ...] = (),
    max_windows: int = MAX_WINDOWS,
    diagnostics: tuple[Diagnostics, ...] = (),
) -> list[Report]:
    """Reports holding ``windows`` in order, at most ``max_windows`` each (none if both
    ``windows`` and ``diagnostics`` are empty)."""
    if max_windows < 1:
        raise ValueError(f"max_windows {max_windows}: expected >= 1")
    starts = range(0, max(len(windows), 1 if diagnostics else 0), max_windows)
    return [
        Report(
            node=node,
            agent_id=agent_id,
            sent_at=sent_at,
            sequence=sequence(),
            windows=tuple(windows[i : i + max_windows]),
            urgent=bool(urgent_reasons),
            urgent_reasons=urgent_reasons,
            diagnostics=diagnostics if i == 0 else (),
        )
        for i in starts
    ]
