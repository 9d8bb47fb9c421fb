"""A bounded on-disk spool of encoded reports: nothing is lost while the controller is away.

Every report goes through the spool, not only the ones that failed: it is written first and
deleted when the controller has acknowledged it (write-ahead). So a report is either on disk
or acknowledged, an agent restart resumes exactly where the last run stopped, and the sender
has one path, not a fast path and a recovery path.

On disk, in ``directory``:

* ``<first>-<last>.report``: one encoded report (:func:`presize.wire.encode_report`) standing
  for the sequence numbers ``first..last`` (20 digits each, so names sort by time). A fresh
  report has ``first == last``; a merged one covers the range it absorbed.
* ``state.json``: the agent id and the next sequence number, so numbers keep increasing
  across restarts even when the spool was empty (the controller drops repeats by
  ``(agent_id, sequence)``, which is what makes "sent once" hold across a crash between the
  controller's answer and the local delete).
* ``.<name>.tmp``: a write in progress. Files are written to a temporary name, fsynced, then
  renamed, then the folder is fsynced: a reader sees a whole report or none. A temporary file
  left by a crash is adopted if it decodes as a whole report and deleted otherwise.
* ``quarantine/``: files that do not decode, or that the controller rejected (4xx). They are
  moved aside with a logged reason, so one bad file never blocks the ones behind it.

When a new report does not fit under ``max_bytes``, the oldest detail is merged away
(:mod:`agent.coarsen`): two adjacent reports become one with coarser windows, oldest first and
equal spans first, like the buckets of an exponential histogram, so recent data keeps full
detail and old data thins out gradually. Only when merging cannot free room (one report
left) is the oldest dropped. Both are counted (``downsampled``, ``dropped``) and logged.

The spool is synchronous file I/O on purpose: it is touched once per batch (a minute), an
fsync costs milliseconds, and one thread of control means no locking.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from agent.coarsen import merge_reports
from agent.errors import AgentError
from presize.errors import WireError
from presize.wire import Report, decode_report, encode_report

log = logging.getLogger(__name__)

STATE_FORMAT = 1
_NAME = re.compile(r"^(\d{20})-(\d{20})\.report$")
QUARANTINE_KEEP = 32


class SpoolError(AgentError):
    """A report that cannot be spooled (larger than the whole spool, or out of order)."""


class Entry(NamedTuple):
    """One spooled file: it stands for sequence numbers ``first..last`` (``last`` is sent)."""

    first: int
    last: int
    size: int

    @property
    def name(self) -> str:
        return f"{self.first:020d}-{self.last:020d}.report"

    @property
    def span(self) -> int:
        return self.last - self.first + 1


class Pending(NamedTuple):
    """The oldest report, ready to send: its sequence number and its encoded bytes."""

    sequence: int
    payload: bytes


@dataclass(slots=True)
class SpoolStats:
    """Cumulative counts, exported as metrics."""

    written: int = 0
    acked: int = 0
    downsampled: int = 0  # merges of two reports into one
    dropped: int = 0  # reports removed unmerged (loud, and only when merging cannot help)
    quarantined: int = 0
    recovered: int = 0  # whole temporary files adopted after a crash
    discarded_partial: int = 0  # incomplete temporary files deleted after a crash


class _State(NamedTuple):
    """``state.json``, versioned by its ``format`` field."""

    agent_id: str = ""
    next_sequence: int = 0

    @classmethod
    def from_json(cls, raw: object) -> _State:
        ok = isinstance(raw, dict) and raw.get("format") == STATE_FORMAT
        agent_id = raw.get("agent_id") if ok and isinstance(raw, dict) else None
        nxt = raw.get("next_sequence") if ok and isinstance(raw, dict) else None
        if not isinstance(agent_id, str) or not isinstance(nxt, int) or isinstance(nxt, bool):
            log.error("spool: state.json of an unknown shape; sequence resumes from the files")
            return cls()
        return cls(agent_id, nxt)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The spool in ``directory`` (created if missing), at most ``max_bytes`` of reports.

    ``rename`` is the one file-system step a crash test needs to interrupt (between the
    fsynced temporary file and its final name); it defaults to :func:`os.replace`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int,
        max_report_bytes: int = 8 << 20,
        agent_id: str | None = None,
        rename: Callable[[Path, Path], None] = os.replace,
    ) -> None:
        if max_bytes <= 0:
            raise SpoolError(f"spool max_bytes {max_bytes}: expected > 0")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.max_report_bytes = max_report_bytes
        self._rename = rename
        self.stats = SpoolStats()
        self._inflight: int | None = None
        self.quarantine_dir = self.dir / "quarantine"
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        self.agent_id: str = agent_id or state.agent_id or uuid.uuid4().hex
        self._recover_temporaries()
        self._entries = self._scan()
        last = self._entries[-1].last if self._entries else -1
        self._next = max(state.next_sequence, last + 1)

    # ---------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return sum(e.size for e in self._entries)

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    # ---------------------------------------------------------------------------- writing
    def next_sequence(self) -> int:
        """A new sequence number, persisted before it is handed out."""
        sequence = self._next
        self._next += 1
        state = {"format": STATE_FORMAT, "agent_id": self.agent_id, "next_sequence": self._next}
        self._write("state.json", json.dumps(state).encode())
        return sequence

    def put(self, report: Report) -> None:
        """Spool ``report`` durably, making room by downsampling the oldest if needed."""
        data = encode_report(report)
        if len(data) > self.max_bytes:
            raise SpoolError(f"report {report.sequence}: {len(data)} bytes > spool cap")
        if self._entries and report.sequence <= self._entries[-1].last:
            raise SpoolError(f"report {report.sequence}: not after {self._entries[-1].last}")
        while self.size_bytes + len(data) > self.max_bytes:
            if self._downsample() <= 0:
                self._drop_oldest()
        entry = Entry(report.sequence, report.sequence, len(data))
        self._write(entry.name, data)
        self._entries.append(entry)
        self.stats.written += 1

    # ---------------------------------------------------------------------------- sending
    def head(self) -> Pending | None:
        """The oldest report (marked in flight, so downsampling leaves it alone); ``None``
        when the spool is empty. Files that do not decode are quarantined on the way."""
        while self._entries:
            entry = self._entries[0]
            try:
                data = (self.dir / entry.name).read_bytes()
                decode_report(data, max_bytes=self.max_report_bytes)
            except (OSError, WireError) as exc:
                self._quarantine(entry, f"unreadable: {exc}")
                continue
            self._inflight = entry.last
            return Pending(entry.last, data)
        return None

    def ack(self, sequence: int) -> None:
        """The controller has ``sequence``: delete it."""
        entry = self._take(sequence)
        (self.dir / entry.name).unlink(missing_ok=True)
        self.stats.acked += 1

    def reject(self, sequence: int, reason: str) -> None:
        """The controller refused ``sequence`` for good: move it to the quarantine."""
        self._quarantine(self._take(sequence), reason)

    def release(self) -> None:
        """The in-flight report was not delivered; it stays first in line."""
        self._inflight = None

    # ---------------------------------------------------------------------------- internals
    def _take(self, sequence: int) -> Entry:
        for i, entry in enumerate(self._entries):
            if entry.last == sequence:
                del self._entries[i]
                if self._inflight == sequence:
                    self._inflight = None
                return entry
        raise SpoolError(f"sequence {sequence}: not in the spool")

    def _write(self, name: str, data: bytes) -> None:
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._rename(tmp, self.dir / name)
        _fsync_dir(self.dir)

    def _merge_candidates(self) -> int | None:
        """Index ``i`` of the pair ``(i, i+1)`` to merge: the oldest pair of equal spans, else
        the oldest pair; never the report in flight. ``None`` if there is no pair."""
        start = 1 if self._entries and self._entries[0].last == self._inflight else 0
        pairs = range(start, len(self._entries) - 1)
        for i in pairs:
            if self._entries[i].span == self._entries[i + 1].span:
                return i
        return pairs[0] if pairs else None

    def _downsample(self) -> int:
        """Merge one pair of reports; the bytes freed (0 when there was nothing to merge)."""
        i = self._merge_candidates()
        if i is None:
            return 0
        older, newer = self._entries[i], self._entries[i + 1]
        reports: list[Report] = []
        for entry in (older, newer):
            try:
                data = (self.dir / entry.name).read_bytes()
                reports.append(decode_report(data, max_bytes=self.max_report_bytes))
            except (OSError, WireError) as exc:
                self._entries.remove(entry)
                self._move_to_quarantine(entry, f"unreadable: {exc}")
                return entry.size
        data = encode_report(merge_reports(reports[0], reports[1]))
        merged = Entry(older.first, newer.last, len(data))
        # The merged file is in place before the parts go: a crash in between leaves ranges
        # that the next start resolves (a range inside another is deleted).
        self._write(merged.name, data)
        (self.dir / older.name).unlink(missing_ok=True)
        (self.dir / newer.name).unlink(missing_ok=True)
        self._entries[i : i + 2] = [merged]
        self.stats.downsampled += 1
        log.warning(
            "spool full: merged reports %d..%d into one (%d bytes freed)",
            older.first, newer.last, older.size + newer.size - merged.size,
        )  # fmt: skip
        return older.size + newer.size - merged.size

    def _drop_oldest(self) -> None:
        start = 1 if self._entries and self._entries[0].last == self._inflight else 0
        if start >= len(self._entries):
            raise SpoolError("spool full and nothing left to drop")
        entry = self._entries.pop(start)
        (self.dir / entry.name).unlink(missing_ok=True)
        self.stats.dropped += 1
        log.error("spool full: dropped report %d..%d (%d bytes)", entry.first, entry.last,
                  entry.size)  # fmt: skip

    def _quarantine(self, entry: Entry, reason: str) -> None:
        if entry in self._entries:
            self._entries.remove(entry)
        if self._inflight == entry.last:
            self._inflight = None
        self._move_to_quarantine(entry, reason)

    def _move_to_quarantine(self, entry: Entry, reason: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.dir / entry.name, self.quarantine_dir / entry.name)
        self.stats.quarantined += 1
        log.error("spool: report %s quarantined: %s", entry.name, reason)
        kept = sorted(self.quarantine_dir.glob("*.report"))
        for old in kept[:-QUARANTINE_KEEP]:
            old.unlink(missing_ok=True)

    def _load_state(self) -> _State:
        path = self.dir / "state.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return _State()
        except (OSError, ValueError) as exc:
            log.error("spool: state.json unreadable (%s); sequence resumes from the files", exc)
            return _State()
        return _State.from_json(raw)

    def _recover_temporaries(self) -> None:
        for tmp in self.dir.glob(".*.tmp"):
            name = tmp.name[1:-4]
            try:
                whole = _NAME.match(name) is not None and not (self.dir / name).exists()
                if whole:
                    decode_report(tmp.read_bytes(), max_bytes=self.max_report_bytes)
            except (OSError, WireError):
                whole = False
            if whole:
                os.replace(tmp, self.dir / name)
                self.stats.recovered += 1
                log.warning("spool: adopted %s, written whole before a crash", name)
            else:
                tmp.unlink(missing_ok=True)
                self.stats.discarded_partial += 1
                log.warning("spool: deleted %s, a write cut short by a crash", tmp.name)

    def _scan(self) -> list[Entry]:
        found: list[Entry] = []
        for path in self.dir.iterdir():
            m = _NAME.match(path.name)
            if m is not None:
                found.append(Entry(int(m.group(1)), int(m.group(2)), path.stat().st_size))
        found.sort(key=lambda e: (e.first, -e.last))
        entries: list[Entry] = []
        for entry in found:
            if entries and entry.first <= entries[-1].last:
                # inside a merged range whose parts were not yet deleted at a crash
                (self.dir / entry.name).unlink(missing_ok=True)
                continue
            entries.append(entry)
        return entries
