"""Container log pattern counts on real files: incremental reads, rotation by rename,
copytruncate, restarts, partial lines, bounded reads, vanished folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.logs import (
    LogCounter,
    LogSettings,
    LogTail,
    container_log_dir,
    count_matches,
    matching_lines,
    newest_log,
)
from agent.windows import TimedSums
from presize.errors import SettingsError
from presize.model import PodRef

POD = PodRef(namespace="shop", name="web-0", uid="1234-abcd")
PATTERNS = (b"OutOfMemoryError", b"GC overhead", b"Killed")


def cri(text: str) -> str:
    return f"2024-05-01T10:00:00.000000000Z stdout F {text}\n"


@pytest.mark.parametrize(
    ("lines", "counts"),
    [
        (b"", (0, 0, 0)),
        (b"fine\n", (0, 0, 0)),
        (b"java.lang.OutOfMemoryError: heap\n", (1, 0, 0)),
        (b"GC overhead limit exceeded; OutOfMemoryError OutOfMemoryError\n", (2, 1, 0)),
        (b"Killed\nKilled process 12\n", (0, 0, 2)),
        (b"killed (lower case)\n", (0, 0, 0)),
    ],
)
def test_count_matches(lines: bytes, counts: tuple[int, ...]) -> None:
    assert count_matches(lines, PATTERNS) == counts


def test_matching_lines() -> None:
    assert matching_lines(b"a\nKilled b\nc GC overhead\n", PATTERNS) == [
        "Killed b",
        "c GC overhead",
    ]


@pytest.mark.parametrize(
    ("names", "newest"),
    [
        ([], None),
        (["0.log"], "0.log"),
        (["0.log", "1.log", "0.log.20240501-100000"], "1.log"),
        (["2.log", "10.log", "9.log.gz"], "10.log"),
        (["x.log", "0.log.20240501-100000.gz", "notes"], None),
    ],
)
def test_newest_log(names: list[str], newest: str | None) -> None:
    assert newest_log(names) == newest


def test_container_log_dir() -> None:
    assert (
        container_log_dir("/var/log/pods/", POD, "app") == "/var/log/pods/shop_web-0_1234-abcd/app"
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = Path(container_log_dir(str(tmp_path), POD, "app"))
    d.mkdir(parents=True)
    return d


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_reads_only_new_complete_lines(folder: Path) -> None:
    tail = LogTail(str(folder))
    assert tail.read(1 << 20, 1 << 16) == b""  # no file yet: nothing, no error
    log = folder / "0.log"
    append(log, cri("one") + "partial Kil")
    assert tail.read(1 << 20, 1 << 16) == cri("one").encode()
    append(log, "led\n")
    assert tail.read(1 << 20, 1 << 16) == b"partial Killed\n"
    assert tail.read(1 << 20, 1 << 16) == b""


def test_a_rotation_by_rename_loses_nothing_and_counts_nothing_twice(folder: Path) -> None:
    tail = LogTail(str(folder))
    log = folder / "0.log"
    append(log, cri("a"))
    assert tail.read(1 << 20, 1 << 16) == cri("a").encode()
    append(log, cri("written before the rotation"))
    os.rename(log, folder / "0.log.20240501-100000")  # the kubelet rotates ...
    append(log, cri("first in the new file"))  # ... the runtime reopens 0.log
    got = tail.read(1 << 20, 1 << 16)
    assert got == (cri("written before the rotation") + cri("first in the new file")).encode()
    append(log, cri("b"))
    assert tail.read(1 << 20, 1 << 16) == cri("b").encode()


def test_copytruncate_starts_over_at_zero(folder: Path) -> None:
    tail = LogTail(str(folder))
    log = folder / "0.log"
    append(log, cri("a long line that makes the file large") * 3)
    tail.read(1 << 20, 1 << 16)
    log.write_text("")  # copytruncate
    append(log, cri("after"))
    assert tail.read(1 << 20, 1 << 16) == cri("after").encode()
    assert tail.truncations == 1


def test_a_restart_drains_the_old_log_then_follows_the_new(folder: Path) -> None:
    tail = LogTail(str(folder))
    append(folder / "0.log", cri("old"))
    tail.read(1 << 20, 1 << 16)
    append(folder / "0.log", cri("last words: Killed"))
    append(folder / "1.log", cri("new life"))
    assert tail.read(1 << 20, 1 << 16) == (cri("last words: Killed") + cri("new life")).encode()


def test_reads_are_bounded_and_catch_up(folder: Path) -> None:
    tail = LogTail(str(folder))
    line = cri("x" * 60)
    append(folder / "0.log", line * 100)
    total = b""
    for _ in range(100):
        chunk = tail.read(1000, 1 << 16)
        assert len(chunk) <= 1000 + len(line)  # the budget, plus the line it cut into
        total += chunk
        if len(total) == len(line) * 100:
            break
    assert total == line.encode() * 100


def test_an_endless_line_is_matched_not_hoarded(folder: Path) -> None:
    tail = LogTail(str(folder))
    append(folder / "0.log", "Killed " + "y" * 5000)
    assert tail.read(1 << 20, 1000).startswith(b"Killed ")
    assert tail.partial == b""


def test_a_log_older_than_the_agent_is_followed_from_its_end(folder: Path) -> None:
    log = folder / "0.log"
    append(log, cri("Killed long ago"))
    os.utime(log, (1000.0, 1000.0))
    tail = LogTail(str(folder), resume_after=2000.0)
    assert tail.read(1 << 20, 1 << 16) == b""
    append(log, cri("Killed now"))
    assert tail.read(1 << 20, 1 << 16) == cri("Killed now").encode()


def test_counter_reports_matches_per_window_and_recent_lines(tmp_path: Path, folder: Path) -> None:
    counter = LogCounter(LogSettings(root=str(tmp_path)), started_at=0.0)
    key = "/kubepods/pod1/c1"
    append(folder / "0.log", cri("java.lang.OutOfMemoryError") + cri("fine"))
    counter.poll(10.0, [(key, POD, "app")])
    append(folder / "0.log", cri("Killed") + cri("GC overhead limit exceeded"))
    counter.poll(15.0, [(key, POD, "app")])
    assert counter.matches(key, 10.0, now=15.0) == (
        ("OutOfMemoryError", 1),
        ("GC overhead", 1),
        ("Killed", 1),
    )
    assert counter.matches(key, 4.0, now=15.0) == (("GC overhead", 1), ("Killed", 1))
    assert len(counter.recent_lines(key)) == 3
    assert counter.matches("unknown", 10.0, now=15.0) == ()
    counter.poll(20.0, [])  # the container is gone: forgotten, descriptor closed
    assert counter.matches(key, 60.0, now=20.0) == ()
    assert counter.stats.polls == 3


def test_counter_survives_a_vanished_folder(tmp_path: Path, folder: Path) -> None:
    counter = LogCounter(LogSettings(root=str(tmp_path)), started_at=0.0)
    append(folder / "0.log", cri("Killed"))
    counter.poll(1.0, [("k", POD, "app")])
    (folder / "0.log").unlink()
    folder.rmdir()
    counter.poll(2.0, [("k", POD, "app")])  # still open: drained, then nothing
    assert counter.matches("k", 10.0, now=2.0) == (("Killed", 1),)
    assert counter.stats.errors == 0


def test_settings_refuse_empty_patterns() -> None:
    with pytest.raises(SettingsError):
        LogSettings(patterns=("",))


def test_timed_sums_drop_old_entries() -> None:
    sums = TimedSums(retention_s=10.0)
    for t in range(20):
        sums.add(float(t), (1.0, 2.0))
    assert sums.total(100.0, now=19.0, width=2) == (10.0, 20.0)
    assert sums.total(3.0, now=19.0, width=2) == (3.0, 6.0)
    assert sums.total(3.0, now=15.0, width=2) == (3.0, 6.0)
