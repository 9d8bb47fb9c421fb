"""Container logs as a signal: how often configurable patterns (``OutOfMemoryError``,
``GC overhead``, ``Killed``) appear in each container's log, read incrementally.

Why logs at all: a JVM that spends its time in GC, or a worker the runtime kills, says so in its
log minutes before the cgroup counters make it obvious. The counts ride along with the windows
(``UsageWindow.log_matches``: only patterns seen, in pattern order) and the last matching lines
go into diagnostics snapshots.

Where: the kubelet writes ``<root>/<namespace>_<pod>_<uid>/<container>/<restart>.log`` (CRI
format, one line per write: ``<time> <stream> <P|F> <text>``); ``<root>`` is ``/var/log/pods``,
configurable for a DaemonSet that mounts it elsewhere. The newest ``<n>.log`` is the running
container's; a restart starts ``<n+1>.log``.

How each log is followed (:class:`LogTail`), so that nothing is read twice and nothing written
while the agent runs is skipped:

* one descriptor per log, read with ``pread`` at a kept offset, at most ``max_bytes`` per poll
  (a chatty container catches up over several polls instead of stalling the agent's loop);
* **rotation by rename** (the kubelet renames ``0.log`` to ``0.log.<time>`` and the runtime opens
  a new ``0.log``): the descriptor still points at the old file, which is read to its end,
  then the new file is opened at offset 0 — the lines written between the last poll and the
  rotation are counted once;
* **copytruncate** (a file cut to zero in place): the size falls below the offset, so the offset
  goes back to 0; what was written and cut between two polls cannot be recovered by anyone;
* **a restart** (a newer ``<n>.log`` appears): the old file is drained, then the new one followed;
* only complete lines are matched; a partial last line waits for its end (up to
  ``max_line`` bytes, beyond which it is matched as is, so a line without end cannot grow
  memory).

A log that existed before the agent started is followed from its end if it was last written
before the agent started (an agent restart must not count old lines again), else from its start.
Counting is by occurrence (``bytes.count``, in C), so a pattern twice in a line counts twice.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.windows import TimedSums
from presize.errors import SettingsError
from presize.model import PodRef

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = ("OutOfMemoryError", "GC overhead", "Killed")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``root``: the kubelet's pod log folder; ``patterns``: substrings counted;
    ``max_bytes``: most bytes read from one container's log per poll; ``max_line``: longest
    partial line kept; ``keep_lines``: matching lines kept per container for diagnostics;
    ``retention_s``: how far back counts are kept (the longest window)."""

    root: str = "/var/log/pods"
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    max_bytes: int = 256 << 10
    max_line: int = 64 << 10
    keep_lines: int = 20
    retention_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.patterns or any(not p for p in self.patterns):
            raise SettingsError("LogSettings.patterns: expected non-empty patterns")
        if min(self.max_bytes, self.max_line, self.keep_lines) <= 0:
            raise SettingsError("LogSettings: max_bytes, max_line and keep_lines must be > 0")


def count_matches(lines: bytes, patterns: Sequence[bytes]) -> tuple[int, ...]:
    """Occurrences of each pattern in ``lines``. Pure."""
    return tuple(lines.count(p) for p in patterns)


def matching_lines(lines: bytes, patterns: Sequence[bytes]) -> list[str]:
    """The lines of ``lines`` holding any pattern, decoded, each cut to 500 characters."""
    return [
        line.decode("utf-8", errors="replace")[:500]
        for line in lines.splitlines()
        if any(p in line for p in patterns)
    ]


def newest_log(names: Iterable[str]) -> str | None:
    """The running container's log among a container folder's file names: the highest
    ``<n>.log`` (rotated ``<n>.log.<time>`` files and others are ignored). Pure."""
    best: tuple[int, str] | None = None
    for name in names:
        stem, dot, ext = name.partition(".")
        if dot and ext == "log" and stem.isdigit() and (best is None or int(stem) > best[0]):
            best = (int(stem), name)
    return None if best is None else best[1]


def container_log_dir(root: str, pod: PodRef, container: str) -> str:
    return f"{root.rstrip('/')}/{pod.namespace}_{pod.name}_{pod.uid}/{container}"


class LogTail:
    """One container's log folder, followed across rotations (see the module docstring)."""

    __slots__ = ("fd", "folder", "ident", "offset", "partial", "resume_after", "truncations")

    def __init__(self, folder: str, *, resume_after: float = 0.0) -> None:
        self.folder = folder
        self.fd: int | None = None
        self.ident: tuple[int, int] = (0, 0)
        self.offset = 0
        self.partial = b""
        self.resume_after = resume_after  # files last written before this start at their end
        self.truncations = 0

    def _current(self) -> str | None:
        try:
            name = newest_log(os.listdir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if name is None else f"{self.folder}/{name}"

    def _open(self, path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise
        st = os.fstat(fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        self.offset = st.st_size if st.st_mtime < self.resume_after else 0
        self.resume_after = 0.0  # only the first file of an agent run may be skipped
        return True

    def read(self, budget: int, max_line: int) -> bytes:
        """New complete lines, at most about ``budget`` bytes of the log."""
        chunks = [self.partial] if self.partial else []
        self.partial = b""
        while budget > 0:
            if self.fd is None:
                path = self._current()
                if path is None or not self._open(path):
                    break
            assert self.fd is not None
            if os.fstat(self.fd).st_size < self.offset:  # copytruncate
                self.offset = 0
                self.truncations += 1
            data = os.pread(self.fd, budget, self.offset)
            if data:
                self.offset += len(data)
                budget -= len(data)
                chunks.append(data)
                continue
            # at the end of this file: is a newer one being written?
            path = self._current()
            try:
                st = os.stat(path) if path is not None else None
            except FileNotFoundError:
                st = None
            if st is None or (st.st_dev, st.st_ino) == self.ident:
                break
            if chunks and not chunks[-1].endswith(b"\n"):
                chunks.append(b"\n")  # the old file ended mid-line: that line is complete
            self.close()
        data = b"".join(chunks)
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        if len(self.partial) > max_line:  # no end in sight: match it as it is
            cut, self.partial = len(data), b""
        return data[:cut]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.offset = None, 0


@dataclass(slots=True)
class LogStats:
    polls: int = 0
    bytes_read: int = 0
    truncations: int = 0
    errors: int = 0


class LogCounter:
    """Pattern counts per container, from :class:`LogTail`s, as timed sums for windows."""

    def __init__(self, settings: LogSettings | None = None, *, started_at: float | None = None):
        self.s = settings or LogSettings()
        self._patterns = tuple(p.encode() for p in self.s.patterns)
        self._started_at = time.time() if started_at is None else started_at
        self._tails: dict[str, LogTail] = {}
        self._counts: dict[str, TimedSums] = {}
        self._lines: dict[str, deque[str]] = {}
        self.stats = LogStats()

    def poll(self, now: float, containers: Iterable[tuple[str, PodRef, str]]) -> None:
        """Read what each ``(key, pod, container name)`` logged since the last poll; forget
        containers no longer listed."""
        seen: set[str] = set()
        for key, pod, name in containers:
            seen.add(key)
            tail = self._tails.get(key)
            if tail is None:
                folder = container_log_dir(self.s.root, pod, name)
                tail = self._tails[key] = LogTail(folder, resume_after=self._started_at)
            before = tail.truncations
            try:
                lines = tail.read(self.s.max_bytes, self.s.max_line)
            except OSError as exc:
                self.stats.errors += 1
                log.warning("log of %s unreadable: %s", tail.folder, exc)
                tail.close()
                continue
            self.stats.truncations += tail.truncations - before
            self.stats.bytes_read += len(lines)
            if not lines:
                continue
            counts = count_matches(lines, self._patterns)
            if any(counts):
                self._record(key, now, counts, lines)
        for key in self._tails.keys() - seen:
            self.forget(key)
        self.stats.polls += 1

    def _record(self, key: str, now: float, counts: tuple[int, ...], lines: bytes) -> None:
        sums = self._counts.get(key)
        if sums is None:
            sums = self._counts[key] = TimedSums(self.s.retention_s)
        sums.add(now, counts)
        recent = self._lines.get(key)
        if recent is None:
            recent = self._lines[key] = deque(maxlen=self.s.keep_lines)
        recent.extend(matching_lines(lines, self._patterns))

    def matches(self, key: str, seconds: float, *, now: float) -> tuple[tuple[str, int], ...]:
        """``(pattern, count)`` of the patterns seen in the last ``seconds`` (others omitted)."""
        sums = self._counts.get(key)
        if sums is None:
            return ()
        totals = sums.total(seconds, now=now, width=len(self._patterns))
        return tuple((p, int(n)) for p, n in zip(self.s.patterns, totals, strict=True) if n)

    def recent_lines(self, key: str) -> tuple[str, ...]:
        return tuple(self._lines.get(key, ()))

    def forget(self, key: str) -> None:
        tail = self._tails.pop(key, None)
        if tail is not None:
            tail.close()
        self._counts.pop(key, None)
        self._lines.pop(key, None)

    def close(self) -> None:
        for key in list(self._tails):
            self.forget(key)
