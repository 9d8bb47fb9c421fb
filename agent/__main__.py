"""``presize agent``: the composition root of the node agent.

Everything is wired here and nowhere else: the cgroup reader (v1 or v2, detected once), the
collector, the urgency watcher, the spool and publisher (when a controller URL is given), and
the ``/metrics`` + ``/healthz`` server (when a port is given). Settings come from flags, each
defaulting to an environment variable (``PRESIZE_*``, as a DaemonSet sets them).

One asyncio loop, one thread: the sampling tick (a few milliseconds of file reads) runs in the
loop between awaits, so the spool, the publisher and the metrics see the collector's state
without locks. The loop schedules by deadline (``start + n / hz``) rather than by
``sleep(1 / hz)`` after each tick, so the rate does not drift by the time a tick takes; a
tick that overruns skips the deadlines it missed instead of bursting to catch up. Periodic
work (the batch every ``--batch`` seconds, the urgent check every 10 s) rides on the ticks.

Pods are named by a directory chosen with ``--directory``: ``kube`` (the API-server watch of
:mod:`agent.kube`, in a thread; in-cluster credentials unless ``--kubeconfig`` is given),
``docker`` (the Engine API, :mod:`agent.docker_directory`), ``none`` (UIDs and IDs only), or
``auto``: ``kube`` with a kubeconfig or inside a pod (``KUBERNETES_SERVICE_HOST`` set), else
``none``. Container logs (``--log-root``) and pods' network namespaces (through
``--proc-root``) are read on their own slower cadences by the collector. The controller's
answer to each report (a ``ReportAck``) may ask for diagnostics snapshots, taken over the
following ticks and attached to the next report, and for I/O limits, applied at once
(:mod:`agent.iothrottle`).

On SIGTERM/SIGINT the agent finishes its tick, stops the publisher (unsent reports stay in the
spool for the next start) and prints one JSON line of counters to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from agent.cgroups.reader import V1Reader, open_reader
from agent.collector import Collector, CollectorSettings, Discover
from agent.diagnostics import Diagnoser, DiagnosticsSources
from agent.discovery import PodDirectory
from agent.errors import AgentError
from agent.iothrottle import IoThrottle
from agent.logs import DEFAULT_PATTERNS, LogCounter, LogSettings
from agent.metrics import AgentMetrics, make_app
from agent.netdev import NetMeter
from agent.node import read_node, read_processes, set_proc_root
from agent.publisher import Publisher, PublisherSettings
from agent.reports import build_reports
from agent.spool import Spool
from agent.urgent import UrgencyWatcher, UrgentSettings
from presize.model import UsageWindow
from presize.wire import ReportAck

log = logging.getLogger("agent")

Periodic = tuple[float, Callable[[float], None]]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PRESIZE_{name}", default)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="presize agent", description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--root", default=_env("CGROUP_ROOT", "/sys/fs/cgroup"), help="v2 mount or v1 parent")
    add("--base", default=_env("CGROUP_BASE", ""), help="only discover under this cgroup subtree")
    add("--hz", type=float, default=float(_env("HZ", "1")), help="container reads per second")
    add("--batch", type=float, default=float(_env("BATCH_SECONDS", "60")), help="seconds per batch")
    add(
        "--node",
        default=_env("NODE_NAME", os.environ.get("NODE_NAME", socket.gethostname())),
        help="this node's name (the pod directory watches its pods only)",
    )
    add(
        "--directory",
        choices=("auto", "kube", "docker", "none"),
        default=_env("DIRECTORY", "auto"),
        help="who names pods and containers (see above)",
    )
    add(
        "--kubeconfig",
        default=_env("KUBECONFIG", os.environ.get("KUBECONFIG", "")),
        help="kubeconfig for --directory kube (empty: the pod's ServiceAccount)",
    )
    add("--docker-socket", default=_env("DOCKER_SOCKET", "/var/run/docker.sock"))
    add("--log-root", default=_env("LOG_ROOT", "/var/log/pods"), help="the kubelet's pod logs")
    add(
        "--log-patterns",
        default=_env("LOG_PATTERNS", ",".join(DEFAULT_PATTERNS)),
        help="comma-separated substrings counted in container logs (empty: logs not read)",
    )
    add(
        "--proc-root",
        default=_env("PROC_ROOT", "/proc"),
        help="the host's /proc (e.g. /host/proc in a DaemonSet) for network bytes and processes",
    )
    add(
        "--controller-url",
        default=_env("CONTROLLER_URL", ""),
        help="the controller's POST /v1/reports URL (empty: do not publish)",
    )
    add(
        "--token-path",
        default=_env("TOKEN_PATH", "/var/run/secrets/presize/token"),
        help="bearer token file (a projected ServiceAccount token; reread when it changes)",
    )
    add("--ca-file", default=_env("CA_FILE", "") or None, help="CA bundle of the controller")
    add(
        "--io-throttle",
        action=argparse.BooleanOptionalAction,
        default=_env("IO_THROTTLE", "1").lower() in ("1", "true", "yes"),
        help="apply the I/O limits the controller asks for (writes io.max or blkio.throttle.*, "
        "so the cgroup tree must be writable); --no-io-throttle ignores them",
    )
    add("--spool-dir", default=_env("SPOOL_DIR", "/var/lib/presize/spool"))
    add("--spool-max-bytes", type=int, default=int(_env("SPOOL_MAX_BYTES", str(64 << 20))))
    add(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", "0")),
        help="port of /metrics and /healthz (0: no server)",
    )
    add("--metrics-host", default=_env("METRICS_HOST", "0.0.0.0"))
    add("--seconds", type=float, default=0.0, help="stop after this long (0: never)")
    add("--print-windows", action="store_true", help="print batches as JSON lines")
    add("--log-level", default=_env("LOG_LEVEL", "INFO"))
    return p  # fmt: skip


async def run(
    collector: Collector,
    *,
    hz: float,
    seconds: float,
    stop: asyncio.Event,
    every: Sequence[Periodic] = (),
    on_tick: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> None:
    """Tick ``collector`` at ``hz`` until ``stop`` or ``seconds``; call each ``(period, fn)``
    of ``every`` with the time once per ``period`` (never twice for one period)."""
    start = clock()
    period = 1.0 / hz
    n = 0
    due = [start + p for p, _ in every]

    async def wait(delay: float) -> None:
        if sleep is not None:
            await sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    while not stop.is_set() and (seconds <= 0 or clock() - start < seconds):
        t0 = clock()
        collector.tick()
        now = clock()
        if on_tick is not None:
            on_tick(now - t0)
        for i, (p, fn) in enumerate(every):
            if now >= due[i]:
                fn(now)
                due[i] += p * max(1, math.floor((now - due[i]) / p) + 1)
        n = max(n + 1, math.ceil((now - start) / period))
        delay = start + n * period - clock()
        if seconds > 0:
            delay = min(delay, start + seconds - clock())
        if delay > 0:
            await wait(delay)


class Agent:
    """The wired agent: what happens each batch and each urgent step."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        reader = open_reader(args.root)
        scan_root = reader.roots.cpuacct if isinstance(reader, V1Reader) else reader.root
        if args.proc_root.rstrip("/") != "/proc":
            set_proc_root(args.proc_root)
        self.kube: Any = None  # agent.kube.KubePods, imported only when used
        self.docker: Any = None  # agent.docker_directory.DockerDirectory, likewise
        directory, discover = self._directory(args)
        patterns = tuple(p for p in args.log_patterns.split(",") if p)
        self.logs = None
        if patterns:
            log_settings = LogSettings(
                root=args.log_root, patterns=patterns, retention_s=args.batch + 10.0
            )
            self.logs = LogCounter(log_settings)
        extra: dict[str, Any] = {} if discover is None else {"discover": discover}
        self.collector = Collector(
            reader,
            scan_root=scan_root,
            clock=time.monotonic,
            settings=CollectorSettings(hz=args.hz, window_s=(10.0, args.batch), base=args.base),
            directory=directory,
            logs=self.logs,
            net=NetMeter(reader.read_pids, proc_root=args.proc_root),
            **extra,
        )
        self.throttle = IoThrottle(reader.version, reader.io_folder)
        self.io_limits_ignored = False  # logged once under --no-io-throttle
        logs = self.logs
        self.diagnoser = Diagnoser(
            DiagnosticsSources(
                find=self.collector.find,
                pids=reader.read_pids,
                processes=read_processes,
                memory_stat=reader.read_memory_stat,
                log_lines=(lambda path: ()) if logs is None else logs.recent_lines,
            )
        )
        self.watcher = UrgencyWatcher(UrgentSettings())
        self.spool: Spool | None = None
        self.publisher: Publisher | None = None
        if args.controller_url:
            self.spool = Spool(args.spool_dir, max_bytes=args.spool_max_bytes)
            settings = PublisherSettings(
                url=args.controller_url, token_path=args.token_path or None, ca_file=args.ca_file
            )
            self.publisher = Publisher(self.spool, settings, on_ack=self.on_ack)
        self.metrics = AgentMetrics(
            self.collector,
            self.watcher,
            spool=self.spool,
            publisher=None if self.publisher is None else self.publisher.stats,
            node=read_node,
        )
        self.last_tick = time.monotonic()
        self.urgent_sent = 0
        self.spool_failures = 0

    def _directory(self, args: argparse.Namespace) -> tuple[PodDirectory | None, Discover | None]:
        """The pod directory ``--directory`` asks for (module docstring), and Docker's
        discovery when containers are named by the Engine."""
        mode = args.directory
        if mode == "auto":
            in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
            mode = "kube" if args.kubeconfig or in_pod else "none"
        if mode == "kube":
            from agent.kube import start_directory  # the kubernetes client only when used

            self.kube = start_directory(args.kubeconfig or None, args.node)
            return self.kube, None
        if mode == "docker":
            from agent.docker_directory import DockerDirectory, discover_docker

            self.docker = DockerDirectory(args.docker_socket)
            return self.docker, discover_docker
        return None, None

    def on_ack(self, ack: ReportAck) -> None:
        """The controller's instructions, repeated on every ack: snapshots and I/O limits."""
        self.diagnoser.request(ack.diagnose, time.monotonic())
        if not self.args.io_throttle:
            if ack.io_limits and not self.io_limits_ignored:
                self.io_limits_ignored = True
                log.info("the controller asks for I/O limits; ignored (--no-io-throttle)")
            return
        self.throttle.apply(
            ack.io_limits, lambda uid, name: (f := self.collector.find(uid, name)) and f[0]
        )

    def healthy(self) -> bool:
        """Ticks keep coming: the last one within five periods (at least 10 s)."""
        stale_s = max(5.0 / float(self.args.hz), 10.0)
        return time.monotonic() - self.last_tick < stale_s

    def on_tick(self, took_s: float) -> None:
        self.metrics.tick_seconds.observe(took_s)
        self.last_tick = time.monotonic()
        self.diagnoser.step(self.last_tick, self._epoch_offset())

    def _epoch_offset(self) -> float:
        return time.time() - time.monotonic()

    def _send(self, windows: Sequence[UsageWindow], now: float, reasons: tuple[str, ...]) -> None:
        """Spool and send; a spool that cannot write (disk full, read-only) costs this batch,
        loudly, but never the sampling loop."""
        if self.publisher is None or self.spool is None:
            return
        diagnostics = self.diagnoser.take()
        try:
            for report in build_reports(
                windows,
                node=self.args.node,
                agent_id=self.spool.agent_id,
                sent_at=now + self._epoch_offset(),
                sequence=self.spool.next_sequence,
                urgent_reasons=reasons,
                diagnostics=diagnostics,
            ):
                self.publisher.submit(report)
                diagnostics = ()
        except (AgentError, OSError) as exc:
            self.diagnoser.put_back(diagnostics)
            self.spool_failures += 1
            log.error("could not spool a report of %d windows: %s", len(windows), exc)

    def on_batch(self, now: float) -> None:
        offset = self._epoch_offset()
        windows = self.collector.windows(self.args.batch, now=now, epoch_offset=offset)
        if self.args.print_windows:
            for w in windows:
                print(json.dumps(dataclasses.asdict(w)), flush=True)
        self._send(windows, now, ())
        log.info("batch of %d windows", len(windows))

    def on_step(self, now: float) -> None:
        step = self.watcher.s.step_s
        windows = self.collector.windows(step, now=now, epoch_offset=self._epoch_offset())
        triggers = self.watcher.step(now, windows)
        if triggers:
            reasons = tuple(r for t in triggers for r in t.reasons)
            log.warning("urgent: %s", "; ".join(reasons))
            self._send([t.window for t in triggers], now, reasons)
            self.urgent_sent += 1

    async def serve(self, stop: asyncio.Event) -> None:
        runner: web.AppRunner | None = None
        if self.args.metrics_port:
            runner = web.AppRunner(make_app(self.metrics, self.healthy), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, self.args.metrics_host, self.args.metrics_port).start()
        sender = None
        if self.publisher is not None:
            sender = asyncio.create_task(self.publisher.run(stop))
        docker = None
        if self.docker is not None:
            docker = asyncio.create_task(self.docker.run(stop))
        try:
            await run(
                self.collector,
                hz=self.args.hz,
                seconds=self.args.seconds,
                stop=stop,
                every=[(self.args.batch, self.on_batch), (self.watcher.s.step_s, self.on_step)],
                on_tick=self.on_tick,
            )
        finally:
            stop.set()
            if sender is not None:
                await sender
            if docker is not None:
                await docker
                await self.docker.close()
            if runner is not None:
                await runner.cleanup()
            if self.kube is not None:
                self.kube.stop()


async def _main(agent: Agent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.serve(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(message)s")
    agent = Agent(args)
    log.info("agent: cgroup v%d at %s, %.2f Hz, controller %s", agent.collector.reader.version,
             args.root, args.hz, args.controller_url or "(none)")  # fmt: skip
    asyncio.run(_main(agent))
    c = agent.collector
    stats = dataclasses.asdict(c.stats)
    stats["containers"] = len(c.containers)
    stats["resets"] = c.resets()
    stats["urgent"] = agent.urgent_sent
    if agent.spool is not None:
        stats["spooled"] = len(agent.spool)
    print(json.dumps(stats), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
