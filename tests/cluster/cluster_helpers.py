"""Small helpers shared by the cluster-tier tests (polling, free loopback ports)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    *,
    ignore_errors: bool = True,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` on timeout.

    With ``ignore_errors`` a probe that raises counts as "not yet" (an object still being
    created answers 404 for a while); without it the first error fails the test.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if ignore_errors:
            with contextlib.suppress(Exception):
                last = probe()
        else:
            last = probe()
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (released before use: a small race, fine for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
