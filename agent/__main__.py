"""``presize agent``: the composition root of the node agent.

Everything is wired here and nowhere else: the cgroup reader (v1 or v2, detected once), the
discovery walk, the collector, and the loop that ticks it at a fixed rate. The loop schedules
by deadline (``start + n / hz``) rather than by ``sleep(1 / hz)`` after each tick, so the
rate does not drift by the time a tick takes; a tick that overruns skips the deadlines it
missed instead of bursting to catch up.

What exists so far: sampling, windows, and window batches printed as JSON lines
(``--print-windows``). Publishing to the controller, the spool and ``/metrics`` come next.
On SIGTERM/SIGINT the agent finishes its tick and prints one JSON line of counters to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from agent.cgroups.reader import V1Reader, open_reader
from agent.collector import Collector, CollectorSettings

log = logging.getLogger("agent")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="presize agent", description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/sys/fs/cgroup", help="cgroup mount (v2) or v1 parent")
    p.add_argument("--base", default="", help="only discover under this cgroup subtree")
    p.add_argument("--hz", type=float, default=1.0, help="container reads per second")
    p.add_argument("--batch", type=float, default=60.0, help="seconds per window batch")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: never)")
    p.add_argument("--print-windows", action="store_true", help="print batches as JSON lines")
    p.add_argument("--log-level", default="INFO")
    return p


class _Stop:
    """Set by SIGTERM/SIGINT; the loop checks it between ticks."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def run(
    collector: Collector,
    *,
    hz: float,
    batch_s: float,
    seconds: float,
    stop: _Stop,
    emit: Callable[[Collector, float], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Tick ``collector`` at ``hz`` until ``stop`` or ``seconds``; ``emit`` every ``batch_s``."""
    start = clock()
    period = 1.0 / hz
    n = 0
    next_batch = start + batch_s
    while not stop.requested and (seconds <= 0 or clock() - start < seconds):
        collector.tick()
        now = clock()
        if now >= next_batch:
            emit(collector, now)
            next_batch += batch_s * max(1, math.floor((now - next_batch) / batch_s) + 1)
        n = max(n + 1, math.ceil((now - start) / period))
        delay = start + n * period - clock()
        if delay > 0:
            sleep(delay)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(message)s")
    reader = open_reader(args.root)
    scan_root = reader.roots.cpuacct if isinstance(reader, V1Reader) else reader.root
    collector = Collector(
        reader,
        scan_root=scan_root,
        clock=time.monotonic,
        settings=CollectorSettings(hz=args.hz, window_s=(10.0, args.batch), base=args.base),
    )
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def emit(c: Collector, now: float) -> None:
        windows = c.windows(args.batch, now=now, epoch_offset=time.time() - time.monotonic())
        if args.print_windows:
            for w in windows:
                print(json.dumps(dataclasses.asdict(w)), flush=True)
        log.info("batch of %d windows", len(windows))

    log.info("agent: cgroup v%d at %s, %.2f Hz", reader.version, args.root, args.hz)
    run(collector, hz=args.hz, batch_s=args.batch, seconds=args.seconds, stop=stop, emit=emit)
    stats = dataclasses.asdict(collector.stats)
    stats["containers"] = len(collector.containers)
    stats["resets"] = collector.resets()
    print(json.dumps(stats), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
