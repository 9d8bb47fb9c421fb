"""A load program for the docker tier's images: CPU at a scheduled rate, and memory held.

    presize-load --cpu 0.2:30,0.9:600 --mem-mb 40

``--cpu`` is a schedule of ``cores:seconds`` steps (the last step lasts forever; cores up to
the number of worker processes, one per whole core), burnt as a duty cycle in 10 ms slices so
the rate is what the schedule says rather than "all it can get": a service whose load *rises*
at a known time is what the end-to-end test needs. ``--cpu-file PATH`` instead reads the cores
from a file (rereading it every second), so a test can raise the load from outside, and a
Swarm task that replaces another (a service resize) carries on at the same load rather than
restarting its schedule. ``--mem-mb`` allocates and touches that much memory and holds it.
Stdlib only: it runs in the bare base image.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time

SLICE_S = 0.01


def parse_schedule(text: str) -> list[tuple[float, float]]:
    steps = []
    for part in text.split(","):
        cores, _, seconds = part.partition(":")
        steps.append((float(cores), float(seconds or "inf")))
    return steps


def share_at(steps: list[tuple[float, float]], elapsed: float, worker: int) -> float:
    """This worker's busy share at ``elapsed`` seconds (worker k burns the k-th core)."""
    for cores, seconds in steps:
        if elapsed < seconds:
            return min(max(cores - worker, 0.0), 1.0)
        elapsed -= seconds
    return min(max(steps[-1][0] - worker, 0.0), 1.0)


def cores_from(path: str, default: float) -> float:
    try:
        with open(path) as f:
            return float(f.read().strip() or default)
    except (OSError, ValueError):
        return default


def burn(steps: list[tuple[float, float]], worker: int, cpu_file: str | None = None) -> None:
    start = time.monotonic()
    read_at, cores = float("-inf"), 0.0
    while True:
        t0 = time.monotonic()
        if cpu_file is not None:
            if t0 - read_at >= 1.0:
                read_at, cores = t0, cores_from(cpu_file, cores)
            share = min(max(cores - worker, 0.0), 1.0)
        else:
            share = share_at(steps, t0 - start, worker)
        while time.monotonic() - t0 < SLICE_S * share:
            pass
        time.sleep(max(SLICE_S * (1.0 - share), 0.0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", default="0")
    parser.add_argument("--cpu-file", default=None)
    parser.add_argument("--workers", type=int, default=0, help="default: the schedule's peak")
    parser.add_argument("--mem-mb", type=int, default=0)
    args = parser.parse_args()
    steps = parse_schedule(args.cpu)
    held = bytearray(args.mem_mb << 20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    workers = args.workers or max(1, math.ceil(max(c for c, _ in steps)))
    procs = [
        multiprocessing.Process(target=burn, args=(steps, w, args.cpu_file), daemon=True)
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
