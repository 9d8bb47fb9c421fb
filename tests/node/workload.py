"""A load for real pods on the real node, run by the pod's own Python (presize's images carry
one): ``python3 workload.py '<json>'``. Standard library only; it is mounted from a ConfigMap.

JSON keys, all optional:
- ``cpu``: ``{"start": cores, "end": cores, "at_s": s, "duration_s": s}`` — a linear ramp of
  CPU use from ``start`` to ``end`` beginning ``at_s`` after start and lasting ``duration_s``,
  then held at ``end``; or ``{"value": cores}`` for a constant use. Done as a busy/sleep duty
  cycle in 100 ms slices, so the cgroup's usage follows the schedule closely.
- ``memory_mb``: hold this many MiB, touched page by page so they count as the cgroup's usage.
- ``then_mb`` and ``then_at_s``: at ``then_at_s`` seconds, hold ``then_mb`` MiB instead (a step
  up; under a smaller memory limit it ends in a kernel OOM kill, and so does every restart).
- ``grow_mb_s``: grow by this many MiB a second, forever (a leak).
It prints one line a second: seconds since start, target cores, MiB held.
"""

from __future__ import annotations

import json
import sys
import time

SLICE_S = 0.1
PAGE = 4096


def target_cores(spec: dict[str, float], t: float) -> float:
    if "value" in spec:
        return float(spec["value"])
    start, end = float(spec.get("start", 0.0)), float(spec.get("end", 0.0))
    at, duration = float(spec.get("at_s", 0.0)), max(float(spec.get("duration_s", 1.0)), 1e-9)
    if t < at:
        return start
    return start + (end - start) * min(1.0, (t - at) / duration)


def touch(block: bytearray) -> None:
    for i in range(0, len(block), PAGE):
        block[i] = 1


def main() -> None:
    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    cpu = spec.get("cpu") or {"value": 0.0}
    held: list[bytearray] = []
    if spec.get("memory_mb"):
        block = bytearray(int(spec["memory_mb"]) * 1024 * 1024)
        touch(block)
        held.append(block)
    grow = float(spec.get("grow_mb_s", 0.0))
    then_mb, then_at = int(spec.get("then_mb", 0)), float(spec.get("then_at_s", 0.0))
    t0 = time.monotonic()
    next_print = 0.0
    while True:
        now = time.monotonic() - t0
        busy = min(1.0, max(0.0, target_cores(cpu, now))) * SLICE_S
        end = time.monotonic() + busy
        while time.monotonic() < end:
            pass
        time.sleep(max(0.0, SLICE_S - busy))
        if then_mb and now >= then_at:
            block = bytearray(then_mb * 1024 * 1024)
            touch(block)
            held[:] = [block]
            then_mb = 0
        if grow > 0:
            block = bytearray(int(grow * SLICE_S * 1024 * 1024))
            touch(block)
            held.append(block)
        if now >= next_print:
            mb = sum(len(b) for b in held) / 2**20
            print(f"{now:.0f}s cpu={target_cores(cpu, now):.3f} mem={mb:.0f}MiB", flush=True)
            next_print += 1.0


if __name__ == "__main__":
    main()
