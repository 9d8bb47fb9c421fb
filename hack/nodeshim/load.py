"""The load program the node shim runs in each container cgroup (stdlib only).

    python -m hack.nodeshim.load SPEC_JSON STARTED_AT

``SPEC_JSON`` is :meth:`~hack.nodeshim.patterns.LoadSpec.to_json` output; ``STARTED_AT`` is the
container's start as a Unix time, so the pattern clock matches the ``startedAt`` the shim
reports even though the interpreter needs a moment to start.

Why it is built this way:

* **Real CPU, self-correcting.** Each burner keeps an account of CPU it owes: the pattern's
  target times the wall time that passed, minus the CPU the process really got
  (``time.process_time``). It spins while it owes and sleeps otherwise, in 50 ms ticks. On a busy
  2-core machine this holds the average to the target far better than a fixed duty cycle. The
  debt is capped (0.2 core-seconds) so that a throttled container wants "full speed" but does
  not bank an unbounded burst for when its quota is raised.
* **One process per core of peak demand.** The GIL keeps a Python process to one core, so a
  pattern peaking above one core forks helpers, each burning its share. Helpers ask the kernel
  to kill them when the main process dies (``PR_SET_PDEATHSIG``), and the shim also kills every
  pid left in the cgroup, so nothing outlives its container.
* **Real memory.** Memory is held in 1 MiB ``bytearray`` chunks with one byte written per
  page, so every page is resident and charged to the cgroup. glibc serves chunks this large
  with ``mmap``, so freeing a chunk returns it to the kernel at once and a falling pattern
  really falls.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import sys
import time
from typing import Final

from hack.nodeshim.patterns import LoadSpec, Pattern

TICK_S: Final = 0.05
MAX_DEBT_S: Final = 0.2
MEMORY_EVERY_S: Final = 0.25
CHUNK: Final = 1024 * 1024
PAGE: Final = 4096
_PR_SET_PDEATHSIG: Final = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Memory:
    """Holds ``target`` MiB in touched 1 MiB chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytearray] = []

    def set_mib(self, target: float) -> None:
        want = max(int(target), 0)
        while len(self.chunks) > want:
            self.chunks.pop()
        while len(self.chunks) < want:
            chunk = bytearray(CHUNK)
            chunk[::PAGE] = b"\x01" * (CHUNK // PAGE)  # touch every page
            self.chunks.append(chunk)


def _spin_until(cpu_target: float, wall_deadline: float) -> None:
    x = 0
    while time.process_time() < cpu_target and time.time() < wall_deadline:
        for i in range(2000):
            x ^= i


def run(spec: LoadSpec, started_at: float, share: float, memory: Memory | None) -> None:
    """Burn ``share`` of the CPU pattern (and keep the memory pattern if given), forever."""
    cpu: Pattern | None = spec.cpu
    owed = 0.0
    last_wall = time.time()
    last_cpu = time.process_time()
    next_memory = 0.0
    while True:
        now = time.time()
        t = now - started_at
        if memory is not None and spec.memory is not None and now >= next_memory:
            memory.set_mib(spec.memory.at(t))
            next_memory = now + MEMORY_EVERY_S
        cpu_now = time.process_time()
        target = cpu.at(t) * share if cpu is not None else 0.0
        owed += target * (now - last_wall) - (cpu_now - last_cpu)
        owed = max(-MAX_DEBT_S, min(owed, MAX_DEBT_S))
        last_wall, last_cpu = now, cpu_now
        if owed > 0.0:
            _spin_until(cpu_now + owed, now + TICK_S)
        else:
            time.sleep(TICK_S)


def main(argv: list[str]) -> int:
    spec = LoadSpec.from_canonical(argv[0])
    started_at = float(argv[1]) if len(argv) > 1 else time.time()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    workers = 1
    if spec.cpu is not None:
        workers = max(1, min(math.ceil(spec.cpu.peak()), os.cpu_count() or 1, 16))
    for _ in range(workers - 1):
        if os.fork() == 0:
            _die_with_parent()
            run(spec, started_at, 1.0 / workers, None)
    run(spec, started_at, 1.0 / workers, Memory())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
