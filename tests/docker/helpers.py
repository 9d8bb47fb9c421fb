"""Small helpers of the docker tier's tests: waiting, inspecting, reading a container's cgroup."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.docker.conftest import Engine

T = TypeVar("T")
CGROUP = Path("/sys/fs/cgroup")
MI = 1 << 20


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 60, every: float = 0.3
) -> T:
    """The first truthy answer of ``probe`` within ``timeout`` seconds; fails otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing within {timeout} s (last: {got!r})")
        await asyncio.sleep(every)


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    data = json.loads(engine.run("inspect", ref).stdout)
    assert isinstance(data, list)
    first = data[0]
    assert isinstance(first, dict)
    return first


def _load_command(cpu: str, load: LoadFile | None) -> tuple[str, ...]:
    if load is None:
        return ("python3", "/usr/local/bin/presize-load", "--cpu", cpu)
    return ("python3", "/usr/local/bin/presize-load", "--cpu-file", LoadFile.INSIDE)


def run_container(
    engine: Engine,
    image: str,
    name: str,
    *args: str,
    cpu: str = "0.05",
    load: LoadFile | None = None,
) -> str:
    """A detached container on no network running the load program (at ``cpu``, or at what
    ``load`` says, bind-mounted read-only); its id."""
    mount = () if load is None else ("-v", f"{load.folder}:{LoadFile.MOUNT}:ro")
    return engine.run(
        "run", "-d", "--network=none", "--name", name, *mount, *args, image,
        *_load_command(cpu, load),
    ).stdout.strip()  # fmt: skip


def create_service(
    engine: Engine,
    image: str,
    name: str,
    *args: str,
    cpu: str = "0.05",
    load: LoadFile | None = None,
) -> str:
    """A Swarm service running the load program (no registry lookups); its id. With ``load``
    every task reads its cores from that file, so a replacement task carries on at the load."""
    mount = (
        ()
        if load is None
        else ("--mount", f"type=bind,src={load.folder},dst={LoadFile.MOUNT},readonly")
    )
    return engine.run(
        "service", "create", "-d", "--no-resolve-image", "--name", name, *mount, *args, image,
        *_load_command(cpu, load),
    ).stdout.strip()  # fmt: skip


class LoadFile:
    """The cores a ``--cpu-file`` load program burns, set from outside while it runs.

    The file lives in its own folder, which is bind-mounted (a rename inside a mounted folder
    is seen by the container; a rename over a mounted single file is not), and is replaced
    atomically, so the program never reads half a number. It rereads the file every second.
    """

    MOUNT = "/load"
    INSIDE = "/load/cores"

    def __init__(self, folder: Path, cores: float) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.history: list[tuple[float, float]] = []  # (wall time, cores) of each write
        self.set(cores)

    @property
    def cores(self) -> float:
        return self.history[-1][1]

    def set(self, cores: float) -> float:
        """Write ``cores``; returns the wall time of the write."""
        tmp = self.folder / ".cores.tmp"
        tmp.write_text(f"{cores}\n")
        os.replace(tmp, self.folder / "cores")
        at = time.time()
        self.history.append((at, cores))
        return at


def cgroup_limits(container_id: str) -> dict[str, int]:
    """CPU quota/period, shares and memory limit/soft limit from the container's own cgroup
    files (cgroupfs driver; v1 or v2), as the kernel enforces them."""
    v1 = CGROUP / "cpu" / "docker" / container_id
    if v1.is_dir():
        mem = CGROUP / "memory" / "docker" / container_id
        return {
            "quota": int((v1 / "cpu.cfs_quota_us").read_text()),
            "period": int((v1 / "cpu.cfs_period_us").read_text()),
            "shares": int((v1 / "cpu.shares").read_text()),
            "memory": int((mem / "memory.limit_in_bytes").read_text()),
            "memory_soft": int((mem / "memory.soft_limit_in_bytes").read_text()),
        }
    v2 = CGROUP / "docker" / container_id
    quota, period = (v2 / "cpu.max").read_text().split()
    return {
        "quota": -1 if quota == "max" else int(quota),
        "period": int(period),
        "shares": int((v2 / "cpu.weight").read_text()),  # a weight on v2, not shares
        "memory": int((v2 / "memory.max").read_text()),
        "memory_soft": int((v2 / "memory.low").read_text()),
    }


def cpu_stat(container_id: str) -> dict[str, int] | None:
    """The container's CFS counters (``nr_periods``, ``nr_throttled``, and the throttled time
    in ``throttled_usec``) from its cgroup's ``cpu.stat`` (cgroupfs driver, v1 or v2);
    ``None`` once the cgroup is gone."""
    v1 = CGROUP / "cpu" / "docker" / container_id / "cpu.stat"
    path = v1 if v1.parent.is_dir() else CGROUP / "docker" / container_id / "cpu.stat"
    try:
        text = path.read_text()
    except OSError:
        return None
    values = {k: int(v) for k, v in (line.split() for line in text.splitlines() if line)}
    if "throttled_time" in values:  # v1 counts nanoseconds
        values["throttled_usec"] = values.pop("throttled_time") // 1000
    return values
