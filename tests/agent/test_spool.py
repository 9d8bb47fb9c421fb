"""The on-disk spool: order, restart, crashes mid-write, full-spool downsampling, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.coarsen import merge_reports, merge_windows
from agent.spool import Spool, SpoolError
from presize.model import PodRef, Pressure, UsageWindow
from presize.wire import Report, decode_report, encode_report

PODS = [PodRef(namespace="shop", name=f"web-{i}", uid=f"uid-{i}") for i in range(3)]
CAP = 1 << 20


def window(pod: PodRef, start: float, *, cpu: float = 0.5, seconds: float = 60.0) -> UsageWindow:
    return UsageWindow(
        pod=pod, container="app", start=start, seconds=seconds, samples=int(seconds),
        cpu_mean=cpu, cpu_max=cpu * 2, cpu_p50=cpu, cpu_p90=cpu * 1.5, cpu_p99=cpu * 1.9,
        cpu_throttled_fraction=0.1, mem_mean=100.0, mem_max=150.0, oom_kills=1,
        pressure=Pressure(cpu=0.2), io_read_bytes=10.0, cpu_limit=1.0,
    )  # fmt: skip


def report(spool: Spool, *, start: float | None = None) -> Report:
    seq = spool.next_sequence()
    t = 1000.0 + 60.0 * seq if start is None else start
    return Report(
        node="n1", agent_id=spool.agent_id, sent_at=t + 60, sequence=seq,
        windows=tuple(window(p, t) for p in PODS),
    )  # fmt: skip


def drain(spool: Spool) -> list[Report]:
    out = []
    while (pending := spool.head()) is not None:
        out.append(decode_report(pending.payload, max_bytes=CAP))
        spool.ack(pending.sequence)
    return out


def test_reports_are_sent_in_order_and_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    for _ in range(3):
        spool.put(report(spool))
    assert [r.sequence for r in drain(spool)] == [0, 1, 2]
    assert spool.head() is None
    assert len(spool) == 0
    assert spool.stats.acked == 3


def test_a_restart_resumes_the_unsent_reports_and_the_sequence(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    for _ in range(3):
        spool.put(report(spool))
    pending = spool.head()
    assert pending is not None
    spool.ack(pending.sequence)
    again = Spool(tmp_path, max_bytes=CAP)
    assert again.agent_id == spool.agent_id
    assert [e.last for e in again.entries] == [1, 2]
    assert again.next_sequence() == 3
    assert [r.sequence for r in drain(again)] == [1, 2]
    assert Spool(tmp_path, max_bytes=CAP).next_sequence() == 4  # even with an empty spool


class CrashError(Exception):
    """The process dying between the fsynced temporary file and its rename."""


def crash_on_report(src: Path, dst: Path) -> None:
    if dst.suffix == ".report":
        raise CrashError
    os.replace(src, dst)


def test_a_crash_between_write_and_rename_loses_nothing_that_was_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    spool.put(report(spool))
    crashing = Spool(tmp_path, max_bytes=CAP, rename=crash_on_report)
    with pytest.raises(CrashError):
        crashing.put(report(crashing))  # sequence 1, fsynced under its temporary name
    after = Spool(tmp_path, max_bytes=CAP)
    assert after.stats.recovered == 1
    assert [r.sequence for r in drain(after)] == [0, 1]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_write_cut_short_is_discarded_and_the_rest_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    spool.put(report(spool))
    half = encode_report(report(spool))[:40]
    (tmp_path / f".{1:020d}-{1:020d}.report.tmp").write_bytes(half)
    after = Spool(tmp_path, max_bytes=CAP)
    assert after.stats.discarded_partial == 1
    assert [r.sequence for r in drain(after)] == [0]


def test_a_full_spool_merges_the_oldest_reports_instead_of_dropping_them(tmp_path: Path) -> None:
    probe = Spool(tmp_path / "probe", max_bytes=CAP)
    size = len(encode_report(report(probe)))
    spool = Spool(tmp_path / "s", max_bytes=size * 4 + size // 2)  # room for four
    for _ in range(12):
        spool.put(report(spool))
    assert spool.size_bytes <= spool.max_bytes
    assert spool.stats.downsampled >= 8
    assert spool.stats.dropped == 0
    reports = drain(spool)
    assert [r.sequence for r in reports] == sorted(r.sequence for r in reports)
    assert reports[-1].sequence == 11
    assert reports[-1].windows[0].seconds == 60.0  # the newest keeps full detail
    # every container's whole history is still there, only coarser at the old end
    covered = sum(r.windows[0].seconds for r in reports)
    assert covered == pytest.approx(12 * 60.0)
    assert reports[0].windows[0].seconds > reports[-1].windows[0].seconds
    assert sum(r.windows[0].samples for r in reports) == 12 * 60


def test_the_report_in_flight_is_never_merged_away(tmp_path: Path) -> None:
    probe = Spool(tmp_path / "probe", max_bytes=CAP)
    size = len(encode_report(report(probe)))
    spool = Spool(tmp_path / "s", max_bytes=size * 3 + size // 2)
    spool.put(report(spool))
    pending = spool.head()
    assert pending is not None
    for _ in range(6):
        spool.put(report(spool))
    assert spool.entries[0].last == pending.sequence == 0
    spool.ack(pending.sequence)
    assert spool.head() is not None


def test_a_corrupt_file_is_quarantined_and_nothing_else_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    for _ in range(3):
        spool.put(report(spool))
    bad = tmp_path / spool.entries[1].name
    bad.write_bytes(b"\x93not a report")
    assert [r.sequence for r in drain(spool)] == [0, 2]
    assert spool.stats.quarantined == 1
    assert (tmp_path / "quarantine" / bad.name).exists()
    assert "quarantined" in caplog.text
    assert "not valid msgpack" in caplog.text


def test_a_rejected_report_is_quarantined(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    spool.put(report(spool))
    pending = spool.head()
    assert pending is not None
    spool.reject(pending.sequence, "HTTP 400")
    assert spool.head() is None
    assert len(list((tmp_path / "quarantine").iterdir())) == 1


def test_out_of_order_and_oversized_reports_are_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=CAP)
    first, second = report(spool), report(spool)
    spool.put(second)
    with pytest.raises(SpoolError, match="not after"):
        spool.put(first)
    with pytest.raises(SpoolError, match="cap"):
        Spool(tmp_path / "tiny", max_bytes=10).put(first)


def test_merged_windows_weigh_by_time_and_keep_maxima_and_totals() -> None:
    a = window(PODS[0], 0.0, cpu=1.0, seconds=60.0)
    b = window(PODS[0], 60.0, cpu=0.25, seconds=20.0)
    m = merge_windows([b, a])
    assert (m.start, m.seconds, m.samples) == (0.0, 80.0, 80)
    assert m.cpu_mean == pytest.approx((1.0 * 60 + 0.25 * 20) / 80)
    assert m.cpu_max == 2.0
    assert m.cpu_p99 == 1.9  # the larger part's: errs high
    assert m.oom_kills == 2
    assert m.io_read_bytes == 20.0
    assert m.pressure.cpu == pytest.approx(0.2)


def test_merged_reports_keep_the_newer_sequence_and_every_container() -> None:
    older = Report(
        node="n",
        agent_id="a",
        sent_at=1.0,
        sequence=4,
        windows=(window(PODS[0], 0.0), window(PODS[1], 0.0)),
        urgent=True,
        urgent_reasons=("oom",),
    )
    newer = Report(node="n", agent_id="a", sent_at=2.0, sequence=5, windows=(
        window(PODS[0], 60.0), window(PODS[2], 60.0)))  # fmt: skip
    m = merge_reports(older, newer)
    assert m.sequence == 5
    assert m.urgent
    assert m.urgent_reasons == ("oom",)
    assert [(w.pod.name, w.seconds) for w in m.windows] == [
        ("web-0", 120.0),
        ("web-1", 60.0),
        ("web-2", 60.0),
    ]
