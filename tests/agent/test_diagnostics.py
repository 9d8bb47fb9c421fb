"""Diagnostics snapshots: requested by an ack, primed on one tick, finished a second later,
attached once; unresolvable requests dropped; repeats ignored; processes that exit skipped.
The process readings here are fixed (the real psutil reading is exercised in
``test_real_process_readings``)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

from agent.diagnostics import Diagnoser, DiagnosticsSources
from agent.node import ProcessReading, read_processes
from agent.reports import build_reports
from presize.model import PodRef
from presize.wire import DiagnoseRequest

POD = PodRef(namespace="shop", name="web-0", uid="u1")
REQ = DiagnoseRequest("u1", "app")


class World:
    def __init__(self) -> None:
        self.cpu = {10: 1.0, 11: 5.0}
        self.rss = {10: 100, 11: 200}
        self.tracked = True

    def find(self, uid: str, name: str) -> tuple[str, PodRef] | None:
        return (
            ("/kubepods/pod-u1/c1", POD) if self.tracked and (uid, name) == ("u1", "app") else None
        )

    def processes(self, pids: Iterable[int]) -> list[ProcessReading]:
        return [ProcessReading(p, f"p{p}", self.cpu[p], self.rss[p]) for p in pids if p in self.cpu]

    def sources(self) -> DiagnosticsSources:
        return DiagnosticsSources(
            find=self.find,
            pids=lambda path: sorted(self.cpu),
            processes=self.processes,
            memory_stat=lambda path: (("anon", 4096), ("file", 0)),
            log_lines=lambda path: ("java.lang.OutOfMemoryError",),
        )


def test_a_request_becomes_one_snapshot_after_the_interval() -> None:
    world = World()
    diag = Diagnoser(world.sources(), interval_s=1.0)
    diag.request([REQ, REQ], now=0.0)
    diag.step(0.0, epoch_offset=1000.0)  # primed
    assert diag.take() == ()
    world.cpu = {10: 1.5, 11: 7.0, 12: 3.0}  # 11 busier; 12 new
    world.rss[12] = 50
    diag.step(0.5, epoch_offset=1000.0)  # too early
    assert diag.take() == ()
    diag.step(2.0, epoch_offset=1000.0)
    (snap,) = diag.take()
    assert snap.pod == POD
    assert snap.container == "app"
    assert snap.taken_at == 1002.0
    cpu = {p.pid: p.cpu_cores for p in snap.processes}
    assert cpu == pytest.approx({10: 0.25, 11: 1.0, 12: 0.0})
    assert [p.pid for p in snap.processes] == [11, 10, 12]  # by RSS
    assert snap.memory_stat == (("anon", 4096), ("file", 0))
    assert snap.log_lines == ("java.lang.OutOfMemoryError",)
    assert diag.take() == ()  # once


def test_repeated_requests_within_the_cooldown_are_not_taken_again() -> None:
    diag = Diagnoser(World().sources(), interval_s=1.0, cooldown_s=60.0)
    diag.request([REQ], now=0.0)
    diag.step(0.0, 0.0)
    diag.step(1.0, 0.0)
    assert len(diag.take()) == 1
    diag.request([REQ], now=10.0)  # the controller repeats itself on every ack
    diag.step(10.0, 0.0)
    diag.step(11.0, 0.0)
    assert diag.take() == ()
    diag.request([REQ], now=70.0)
    diag.step(70.0, 0.0)
    diag.step(71.0, 0.0)
    assert len(diag.take()) == 1


def test_an_unknown_container_is_dropped_after_a_few_ticks() -> None:
    world = World()
    world.tracked = False
    diag = Diagnoser(world.sources(), max_tries=3)
    diag.request([REQ], now=0.0)
    for t in range(5):
        diag.step(float(t), 0.0)
    assert diag.take() == ()
    assert diag.unresolved == 1


def test_snapshots_ride_in_the_first_report_even_without_windows() -> None:
    world = World()
    diag = Diagnoser(world.sources())
    diag.request([REQ], now=0.0)
    diag.step(0.0, 0.0)
    diag.step(1.0, 0.0)
    seq = iter(range(10))
    (report,) = build_reports([], node="n", agent_id="a", sent_at=1.0,
                              sequence=lambda: next(seq), diagnostics=diag.take())  # fmt: skip
    assert len(report.diagnostics) == 1
    assert report.windows == ()
    assert build_reports([], node="n", agent_id="a", sent_at=1.0, sequence=lambda: 0) == []


def test_put_back_keeps_snapshots_for_the_next_report() -> None:
    world = World()
    diag = Diagnoser(world.sources())
    diag.request([REQ], now=0.0)
    diag.step(0.0, 0.0)
    diag.step(1.0, 0.0)
    taken = diag.take()
    diag.put_back(taken)
    assert diag.take() == taken


def test_real_process_readings() -> None:
    """psutil on this process and on a PID that does not exist (skipped, no error)."""
    me = os.getpid()
    (reading,) = read_processes([me, 2**22 + 1])
    assert reading.pid == me
    assert reading.rss_bytes > 1 << 20
    assert reading.cpu_s > 0
