"""Fixtures for real-cgroup tests: a factory of scratch cgroups that are always removed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cgroup_scratch import Scratch, rmdir_retry, why_not


@pytest.fixture
def scratch() -> Iterator[type[Scratch]]:
    """A factory of scratch cgroups; every one made is cleaned up, also on failure."""
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    made: list[Scratch] = []

    class Tracked(Scratch):
        def __init__(self, name: str) -> None:
            made.append(self)
            super().__init__(name)

    try:
        yield Tracked
    finally:
        for s in reversed(made):
            s.cleanup()
        for parent in {d.parent for s in made for d in s.dirs}:
            rmdir_retry(parent)
