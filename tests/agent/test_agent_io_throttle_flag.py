"""``--io-throttle`` / ``--no-io-throttle``: whether the agent applies the I/O limits the
controller's acks carry. The chart passes ``--no-io-throttle`` while it mounts the cgroup tree
read-only (the default) and ``--io-throttle`` with ``agent.ioThrottle.enabled``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.__main__ import Agent, _parser
from presize.wire import IoLimit, ReportAck

TREES = Path(__file__).parent / "fixtures" / "trees"
LIMIT = IoLimit("uid-1", "app", 1e6, None, None, 200.0)


@pytest.mark.parametrize(
    ("argv", "env", "applies"),
    [
        ([], None, True),  # outside the chart: as before, limits are applied
        (["--io-throttle"], None, True),
        (["--no-io-throttle"], None, False),
        ([], "0", False),
        ([], "true", True),
        (["--io-throttle"], "0", True),  # a flag beats the environment
    ],
)
def test_io_limits_are_applied_only_when_enabled(
    argv: list[str], env: str | None, applies: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("PRESIZE_IO_THROTTLE", raising=False)
    if env is not None:
        monkeypatch.setenv("PRESIZE_IO_THROTTLE", env)
    args = _parser().parse_args(["--root", str(TREES / "v2-systemd"), "--directory", "none", *argv])
    assert args.io_throttle is applies
    agent = Agent(args)
    calls: list[Sequence[IoLimit]] = []

    def apply(limits: Sequence[IoLimit], resolve: Any) -> None:
        calls.append(limits)

    monkeypatch.setattr(agent.throttle, "apply", apply)
    for _ in range(2):
        agent.on_ack(ReportAck(sequence=1, io_limits=(LIMIT,)))
    assert calls == ([(LIMIT,), (LIMIT,)] if applies else [])
    assert agent.io_limits_ignored is (not applies)
