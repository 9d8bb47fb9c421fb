"""Read cgroup files (v1 or v2, detected once at start) and hand their text to :mod:`parse`.

This is the only module of the agent that opens cgroup files. It does no arithmetic beyond
putting parsed values into a :class:`~agent.cgroups.sample.CgroupSample`.

Outcomes, by meaning rather than origin:

* the sample, when the required file (``cpu.stat`` on v2, ``cpuacct.usage`` on v1) was read;
* ``None`` when the cgroup has gone (``ENOENT``/``ENODEV``): containers that stop between
  discovery and reading are normal on a busy node, so this is not an error;
* :class:`~agent.errors.CgroupReadError` for any other I/O failure and
  :class:`~agent.errors.CgroupParseError` for a truncated or garbled file: the loop counts
  these and moves on to the next container.

On v1 the block I/O op counts are not read (see ``V1Reader._io``): v1 samples carry bytes and
zero ops; v2's ``io.stat`` has both in one file, so both are kept there.

Optional files (``memory.peak`` before kernel 5.19, ``io.stat`` without the io controller, PSI
without ``CONFIG_PSI``) come back as ``None`` fields.

Why files are kept open: at 1 Hz over a hundred containers and ten files each, opening a file
(a path walk through kernfs) costs several times more than reading it. :class:`OpenFiles`
keeps one descriptor per file and rereads it with ``pread(fd, n, 0)``, which makes the kernel
regenerate the text; a removed cgroup answers ``ENODEV``, which is "gone". The collector calls
``forget`` for a container it drops, so descriptors never outlive their cgroup's tracking.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from agent.cgroups import parse
from agent.cgroups.sample import CgroupSample, Limits, MemorySample, PsiTotals
from agent.errors import AgentError, CgroupReadError

_GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH)
_CHUNK = 65536
_UNOPENED = -1  # no descriptor is negative


class CgroupReader(Protocol):
    """What the sampling loop needs from a cgroup hierarchy."""

    version: int

    def read(self, path: str, *, psi: bool = True, oom: bool = True) -> CgroupSample | None:
        """The container at cgroup ``path`` (e.g. ``/kubepods/pod…/…``); ``None`` if gone.

        ``psi=False`` / ``oom=False`` skip the PSI and OOM-kill files (slow counters the
        collector reads every few ticks): the sample then has no PSI totals / ``oom_kills``."""
        ...

    def read_limits(self, path: str) -> Limits | None:
        """The container's CPU and memory limits; ``None`` if gone."""
        ...

    def read_peak(self, path: str) -> int | None:
        """The container's lifetime memory peak in bytes; ``None`` if gone or not offered."""
        ...

    def forget(self, path: str) -> None:
        """Release what is held open for the container at ``path``."""
        ...


def read_text(path: str) -> str | None:
    """The whole text of one cgroup file, ``None`` if it (or its cgroup) does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in _GONE:
            return None
        raise CgroupReadError(f"{path}: cannot open ({exc.strerror})") from exc
    try:
        data = os.read(fd, _CHUNK)
        # kernfs fills the buffer as far as it can, so a short read is the whole file; only a
        # full buffer can have more behind it.
        if len(data) == _CHUNK:
            parts = [data]
            while chunk := os.read(fd, _CHUNK):
                parts.append(chunk)
            data = b"".join(parts)
    except OSError as exc:
        if exc.errno in _GONE:
            return None
        raise CgroupReadError(f"{path}: cannot read ({exc.strerror})") from exc
    finally:
        os.close(fd)
    return data.decode("ascii", errors="replace")


class OpenFiles:
    """Cgroup files held open by folder and reread in place (see the module docstring).

    A file found missing is remembered as missing until its folder is forgotten, so optional
    files a kernel lacks cost one failed open per container, not one per tick.
    """

    def __init__(self) -> None:
        self._folders: dict[str, dict[str, int | None]] = {}

    def __len__(self) -> int:
        return sum(fd is not None for files in self._folders.values() for fd in files.values())

    def read(self, folder: str, name: str) -> str | None:
        files = self._folders.get(folder)
        if files is None:
            files = self._folders[folder] = {}
        fd = files.get(name, _UNOPENED)
        if fd is None:
            return None
        if fd < 0:
            try:
                fd = files[name] = os.open(f"{folder}/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno in _GONE:
                    files[name] = None
                    return None
                raise CgroupReadError(f"{folder}/{name}: cannot open ({exc.strerror})") from exc
        try:
            data = os.pread(fd, _CHUNK, 0)
            if len(data) == _CHUNK:  # a rare huge file: read it whole the slow way
                return read_text(f"{folder}/{name}")
        except OSError as exc:
            if exc.errno in _GONE:
                self.forget(folder)
                return None
            raise CgroupReadError(f"{folder}/{name}: cannot read ({exc.strerror})") from exc
        return data.decode("ascii", errors="replace")

    def forget(self, folder: str) -> None:
        for fd in (self._folders.pop(folder, None) or {}).values():
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        for folder in list(self._folders):
            self.forget(folder)


def _folder(root: str, path: str) -> str:
    return f"{root}/{path.strip('/')}" if path.strip("/") else root


def _join(root: str, path: str, name: str) -> str:
    return f"{_folder(root, path)}/{name}"


class V2Reader:
    """A unified (cgroup v2) hierarchy rooted at ``root``."""

    version = 2

    def __init__(self, root: str, files: OpenFiles | None = None) -> None:
        self.root = root.rstrip("/")
        self.files = files or OpenFiles()

    def read(self, path: str, *, psi: bool = True, oom: bool = True) -> CgroupSample | None:
        folder = _folder(self.root, path)
        read = self.files.read
        cpu_text = read(folder, "cpu.stat")
        if cpu_text is None:
            return None
        cpu = parse.parse_cpu_stat_v2(cpu_text)
        events = read(folder, "memory.events") if oom else None
        io_text = read(folder, "io.stat")
        return CgroupSample(
            cpu.usage_ns,
            cpu.throttling,
            self._memory(folder),
            None if events is None else parse.parse_memory_events(events).oom_kill,
            None if io_text is None else parse.parse_io_stat(io_text),
            _psi(self.files, folder) if psi else _NO_PSI,
        )

    def _memory(self, folder: str) -> MemorySample | None:
        current = self.files.read(folder, "memory.current")
        stat = self.files.read(folder, "memory.stat")
        if current is None or stat is None:
            return None
        usage = parse.parse_single_int(current, "memory.current")
        ms = parse.parse_memory_stat_v2(stat)
        return MemorySample(usage, parse.working_set(usage, ms.inactive_file), ms.anon, ms.file)

    def read_peak(self, path: str) -> int | None:
        text = read_text(_join(self.root, path, "memory.peak"))
        return None if text is None else parse.parse_single_int(text, "memory.peak")

    def read_limits(self, path: str) -> Limits | None:
        if not os.path.isdir(_folder(self.root, path)):
            return None
        cpu_max = read_text(_join(self.root, path, "cpu.max"))
        mem_max = read_text(_join(self.root, path, "memory.max"))
        return Limits(
            cpu_cores=None if cpu_max is None else parse.parse_cpu_max(cpu_max).cores,
            memory_bytes=None if mem_max is None else parse.parse_memory_max(mem_max),
        )

    def forget(self, path: str) -> None:
        self.files.forget(_folder(self.root, path))

    # Rare reads (diagnostics, network, I/O limits): opened each time, never kept open.

    def read_pids(self, path: str) -> list[int]:
        """The processes in the container's cgroup (empty if gone)."""
        text = read_text(_join(self.root, path, "cgroup.procs"))
        return [] if text is None else parse.parse_pids(text)

    def read_memory_stat(self, path: str) -> tuple[tuple[str, int], ...] | None:
        """The whole ``memory.stat``, for diagnostics; ``None`` if gone."""
        text = read_text(_join(self.root, path, "memory.stat"))
        return None if text is None else parse.parse_flat_keyed(text, "memory.stat")

    def io_folder(self, path: str) -> str | None:
        """Where the container's I/O limits (``io.max``) are written."""
        return _folder(self.root, path)


def _psi(files: OpenFiles, folder: str) -> PsiTotals:
    read, total = files.read, parse.parse_pressure_some_total
    cpu = read(folder, "cpu.pressure")
    memory = read(folder, "memory.pressure")
    io = read(folder, "io.pressure")
    return PsiTotals(
        None if cpu is None else total(cpu, "cpu.pressure"),
        None if memory is None else total(memory, "memory.pressure"),
        None if io is None else total(io, "io.pressure"),
    )


class _V1Folders(NamedTuple):
    cpuacct: str
    cpu: str
    memory: str | None
    blkio: str | None
    unified: str | None


_NO_THROTTLING = parse.Throttling()
_NO_PSI = PsiTotals()


@dataclass(frozen=True, slots=True)
class V1Roots:
    """Where each v1 controller is mounted; ``unified`` is the hybrid v2 mount, for PSI only."""

    cpu: str
    cpuacct: str
    memory: str | None = None
    blkio: str | None = None
    unified: str | None = None


class V1Reader:
    """Per-controller cgroup v1 hierarchies (``cpu`` and ``cpuacct`` may be one mount)."""

    version = 1

    def __init__(self, roots: V1Roots, files: OpenFiles | None = None) -> None:
        self.roots = roots
        self.files = files or OpenFiles()
        self._paths: dict[str, _V1Folders] = {}

    def _folders(self, path: str) -> _V1Folders:
        """The container's folder in each hierarchy, computed once per container."""
        folders = self._paths.get(path)
        if folders is None:
            r = self.roots
            folders = self._paths[path] = _V1Folders(
                cpuacct=_folder(r.cpuacct, path),
                cpu=_folder(r.cpu, path),
                memory=None if r.memory is None else _folder(r.memory, path),
                blkio=None if r.blkio is None else _folder(r.blkio, path),
                unified=None if r.unified is None else _folder(r.unified, path),
            )
        return folders

    def read(self, path: str, *, psi: bool = True, oom: bool = True) -> CgroupSample | None:
        f, read = self._folders(path), self.files.read
        usage = read(f.cpuacct, "cpuacct.usage")
        if usage is None:
            return None
        cpu_stat = read(f.cpu, "cpu.stat")
        oom_text = None if f.memory is None or not oom else read(f.memory, "memory.oom_control")
        return CgroupSample(
            parse.parse_single_int(usage, "cpuacct.usage"),
            _NO_THROTTLING if cpu_stat is None else parse.parse_cpu_stat_v1(cpu_stat),
            None if f.memory is None else self._memory(f.memory),
            None if oom_text is None else parse.parse_oom_control(oom_text).oom_kill,
            None if f.blkio is None else self._io(f.blkio),
            _NO_PSI if f.unified is None or not psi else _psi(self.files, f.unified),
        )

    def _memory(self, folder: str) -> MemorySample | None:
        usage_text = self.files.read(folder, "memory.usage_in_bytes")
        stat_text = self.files.read(folder, "memory.stat")
        if usage_text is None or stat_text is None:
            return None
        usage = parse.parse_single_int(usage_text, "memory.usage_in_bytes")
        ms = parse.parse_memory_stat_v1(stat_text)
        return MemorySample(usage, parse.working_set(usage, ms.inactive_file), ms.anon, ms.file)

    def read_peak(self, path: str) -> int | None:
        if self.roots.memory is None:
            return None
        text = read_text(_join(self.roots.memory, path, "memory.max_usage_in_bytes"))
        return None if text is None else parse.parse_single_int(text, "memory.max_usage")

    def _io(self, folder: str) -> parse.IoStat | None:
        # Bytes only: the op counts (``blkio.throttle.io_serviced``) feed nothing downstream
        # (windows carry bytes) and the file costs as much to generate as the bytes one.
        done = self.files.read(folder, "blkio.throttle.io_service_bytes")
        return None if done is None else parse.parse_blkio_throttle(done)

    def forget(self, path: str) -> None:
        for folder in self._folders(path):
            if folder is not None:
                self.files.forget(folder)
        del self._paths[path]

    def read_pids(self, path: str) -> list[int]:
        """The processes in the container's cgroup (empty if gone)."""
        text = read_text(_join(self.roots.cpuacct, path, "cgroup.procs"))
        return [] if text is None else parse.parse_pids(text)

    def read_memory_stat(self, path: str) -> tuple[tuple[str, int], ...] | None:
        """The whole ``memory.stat``, for diagnostics; ``None`` if gone or no memory controller."""
        if self.roots.memory is None:
            return None
        text = read_text(_join(self.roots.memory, path, "memory.stat"))
        return None if text is None else parse.parse_flat_keyed(text, "memory.stat")

    def io_folder(self, path: str) -> str | None:
        """Where the container's I/O limits (``blkio.throttle.*``) are written."""
        return None if self.roots.blkio is None else _folder(self.roots.blkio, path)

    def read_limits(self, path: str) -> Limits | None:
        r = self.roots
        quota = read_text(_join(r.cpu, path, "cpu.cfs_quota_us"))
        period = read_text(_join(r.cpu, path, "cpu.cfs_period_us"))
        if quota is None or period is None:
            return None
        limit = (
            None if r.memory is None else read_text(_join(r.memory, path, "memory.limit_in_bytes"))
        )
        return Limits(
            cpu_cores=parse.parse_cfs(quota, period).cores,
            memory_bytes=None if limit is None else parse.parse_memory_limit_v1(limit),
        )


def _dir(path: str) -> str | None:
    return path if os.path.isdir(path) else None


def open_reader(root: str = "/sys/fs/cgroup") -> V1Reader | V2Reader:
    """The reader for the hierarchy mounted at ``root``: v2 if it is unified, else v1.

    Detected once at start; a node does not switch cgroup versions without a reboot.
    """
    root = root.rstrip("/")
    if os.path.exists(f"{root}/cgroup.controllers"):
        return V2Reader(root)
    cpuacct = _dir(f"{root}/cpuacct") or _dir(f"{root}/cpu,cpuacct")
    cpu = _dir(f"{root}/cpu") or _dir(f"{root}/cpu,cpuacct")
    if cpuacct is None or cpu is None:
        raise AgentError(f"{root}: neither a cgroup v2 mount nor v1 cpu/cpuacct controllers")
    unified = f"{root}/unified"
    return V1Reader(
        V1Roots(
            cpu=cpu,
            cpuacct=cpuacct,
            memory=_dir(f"{root}/memory"),
            blkio=_dir(f"{root}/blkio"),
            unified=unified if os.path.exists(f"{unified}/cgroup.controllers") else None,
        )
    )
