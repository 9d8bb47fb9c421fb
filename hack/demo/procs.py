"""The demo's own child processes (controller, agents, webhook): started, recorded, stopped by pid.

Why a state file: the demo starts a dozen processes (the local cluster's five, presize's three
kinds, the node shim's load programs). If the demo itself is killed with SIGKILL, nothing in it
can clean up, so every pid is written to ``<workdir>/demo-state.json`` together with its start
time (field 22 of ``/proc/PID/stat``) as soon as it exists. ``python -m hack.demo --down
--workdir DIR`` and the end-to-end test read that file: a pid is signalled (or reported as
left over) only while its start time still matches, so a recycled pid is never hit. Nothing is
ever looked up or killed by name.

Children run in their own sessions (``start_new_session``): a Ctrl-C in the terminal reaches
the demo only, which then stops them in order (agents, webhook, controller) instead of having
them all die at once mid-request.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hack.cluster.localcluster import pid_alive, stop_pid

REPO: Final = Path(__file__).resolve().parents[2]
STATE_FILE: Final = "demo-state.json"


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or ``None`` if it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (released before use: a small race, fine for a demo)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without proxies (everything is on loopback) and with the repo importable."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "KUBECONFIG"}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Child:
    name: str
    pid: int
    start_time: int | None
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid, self.start_time)


@dataclass
class Supervisor:
    """Starts children, keeps ``demo-state.json`` current, and stops them in reverse order."""

    workdir: Path
    children: dict[str, Child] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # cluster pids, nodes, cgroup paths

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        log_dir = self.workdir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"==> {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                list(argv),
                cwd=REPO,
                env=dict(env) if env is not None else child_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, popen.pid, start_time(popen.pid), log, popen)
        self.children[name] = child
        self.save()
        return child

    def record(self, key: str, value: Any) -> None:
        """Something else worth finding after a crash (the cluster's pids, the shim's nodes)."""
        self.extra[key] = value
        self.save()

    def save(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = {
            "demo_pid": os.getpid(),
            "demo_start_time": start_time(os.getpid()),
            "processes": {
                c.name: {"pid": c.pid, "start_time": c.start_time, "log": str(c.log)}
                for c in self.children.values()
            },
            **self.extra,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.state_file)

    def check_alive(self) -> list[str]:
        """Names of children that exited on their own (with their exit codes)."""
        dead = []
        for c in self.children.values():
            if c.popen is not None and c.popen.poll() is not None:
                dead.append(f"{c.name} (exit {c.popen.returncode}, log {c.log})")
        return dead

    def stop(self, name: str, timeout: float = 15.0) -> None:
        child = self.children.get(name)
        if child is None:
            return
        if child.popen is not None:
            if child.popen.poll() is None:
                child.popen.terminate()
                try:
                    child.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    child.popen.kill()
                    child.popen.wait(10)
        else:
            stop_pid(child.pid, child.start_time, timeout)

    def stop_all(self) -> None:
        for name in reversed(list(self.children)):
            self.stop(name)
        self.save()


def _groups(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The recorded process groups, in the order they are stopped: the demo's own children,
    the real node's (kubelet, containerd...; real-node mode only), then the control plane's."""
    return [
        state.get("processes") or {},
        (state.get("node") or {}).get("processes") or {},
        (state.get("cluster") or {}).get("processes") or {},
    ]


def leftover_pids(state_file: Path) -> dict[str, int]:
    """Processes recorded in a demo state file that still run (same pid, same start time)."""
    state = json.loads(state_file.read_text(encoding="utf-8"))
    alive: dict[str, int] = {}
    for group in _groups(state):
        for name, p in group.items():
            if pid_alive(int(p["pid"]), p.get("start_time")):
                alive[name] = int(p["pid"])
    demo_pid = state.get("demo_pid")
    if demo_pid and pid_alive(int(demo_pid), state.get("demo_start_time")):
        alive["demo"] = int(demo_pid)
    return alive


def down(state_file: Path) -> list[str]:
    """Stop whatever a killed demo left running, by the recorded pids; returns their names."""
    state = json.loads(state_file.read_text(encoding="utf-8"))
    stopped: list[str] = []
    for group in _groups(state):
        for name, p in reversed(list(group.items())):
            if stop_pid(int(p["pid"]), p.get("start_time")):
                stopped.append(name)
    return stopped


def wait_until(what: str, probe: Callable[[], bool], timeout: float, alive: Child | None) -> None:
    """Poll ``probe`` until true; fail early when the process that should answer has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if probe():
                return
        if alive is not None and not alive.alive():
            tail = alive.log.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{alive.name} exited while waiting for {what}:\n" + "\n".join(tail))
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """GET ``url`` on loopback without any proxy; True on a 2xx answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def http_get(url: str, timeout: float = 3.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data
