"""Fixtures for tests against a real Docker Engine (Debian's docker.io), started privately.

``docker_engine`` (session): a dockerd of our own, with its socket, data root, exec root and
pidfile under one scratch folder, no bridge and no iptables rules (containers get
``--network none`` or the host's loopback only), stopped at the end by the pid in its pidfile.
Skipped when ``dockerd`` is not installed (``apt-get install -y docker.io``); set
``PRESIZE_REQUIRE_DOCKER=1`` to turn that skip into a failure. ``PRESIZE_DOCKER_DATA_ROOT``
keeps the image store somewhere persistent, so a second run reuses the built layers.

``base_image`` (session): the local Python base image from ``hack/docker/make-base-image.sh``
(debootstrap from Debian's mirror, cached as a tarball under ``$PRESIZE_CACHE/images``).

``docker_swarm`` (session): a second private engine, a one-node Swarm manager on 127.0.0.1,
with the base image and ``presize/load:test`` (the base image plus ``loadgen.py``); tests may
stop and start it (:meth:`Swarm.restart`, by pid). Kept apart from ``docker_engine`` so Swarm
state and engine restarts never touch the image tests. Both engines run with
``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1``: Swarm never asks a registry for a local image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE_BASE = REPO / "hack" / "docker" / "make-base-image.sh"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")


def _unavailable(reason: str) -> None:
    if os.environ.get("PRESIZE_REQUIRE_DOCKER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Engine:
    """A running private dockerd and the environment its client needs."""

    socket: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        env["DOCKER_CONFIG"] = str(self.workdir / "client-config")
        env["DOCKER_BUILDKIT"] = "0"  # the engine's classic builder; no buildx plugin needed
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args[:3])} ... exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def inspect_image(self, tag: str) -> dict[str, object]:
        data = json.loads(self.run("image", "inspect", tag).stdout)
        assert isinstance(data, list)
        first = data[0]
        assert isinstance(first, dict)
        return first


def _stop_by_pidfile(pidfile: Path, popen: subprocess.Popen[bytes], timeout: float = 30) -> None:
    pid = popen.pid
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
    if pid != popen.pid:  # the pidfile must name the process we started; never signal others
        pid = popen.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        popen.wait(timeout=10)


def _unmount_under(root: Path) -> None:
    """Unmount what dockerd left mounted under ``root`` (e.g. ``exec/netns/default``)."""
    prefix = str(root) + "/"
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


class Dockerd:
    """A private dockerd under ``workdir`` that a test may stop and start again (by the pid it
    started, never by name); ``engine`` is the client side, valid across restarts."""

    def __init__(self, workdir: Path, data_root: Path) -> None:
        self.workdir = workdir
        self.data_root = data_root
        self.engine = Engine(socket=workdir / "docker.sock", workdir=workdir)
        self.pidfile = workdir / "docker.pid"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def start(self, timeout: float = 60) -> None:
        log = (self.workdir / "dockerd.log").open("ab")
        # Swarm would otherwise ask a registry for every task's image; images here are local.
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        self.popen = subprocess.Popen(
            [
                "dockerd",
                f"--host=unix://{self.engine.socket}",
                f"--data-root={self.data_root}",
                f"--exec-root={self.workdir / 'exec'}",
                f"--pidfile={self.pidfile}",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                tail = (self.workdir / "dockerd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"dockerd exited {self.popen.returncode}:\n{tail}")
            sock = self.engine.socket
            if (
                sock.exists()
                and self.engine.run("version", check=False, timeout=10).returncode == 0
            ):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"dockerd did not answer within {timeout:.0f} s")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.popen is not None:
            _stop_by_pidfile(self.pidfile, self.popen)
            self.popen = None

    def cleanup(self) -> None:
        self.stop()
        _unmount_under(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _check_can_run_dockerd() -> None:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        _unavailable("Docker Engine not installed (apt-get install -y docker.io)")
    if os.geteuid() != 0:
        _unavailable("a private dockerd needs root")


def new_dockerd(prefix: str, data_root: str | None = None) -> Dockerd:
    """A started private dockerd in a new scratch folder (a short path: the socket's path
    must fit in sockaddr_un, 108 bytes)."""
    _check_can_run_dockerd()
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    daemon = Dockerd(workdir, Path(data_root) if data_root else workdir / "root")
    try:
        daemon.start()
    except BaseException:
        daemon.cleanup()
        raise
    return daemon


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    daemon = new_dockerd("presize-dk-", os.environ.get("PRESIZE_DOCKER_DATA_ROOT"))
    try:
        yield daemon.engine
    finally:
        daemon.cleanup()


def import_base_image(engine: Engine) -> str:
    """The base image in ``engine`` (imported from the cached tarball: seconds, after the first
    debootstrap); its tag."""
    proc = subprocess.run(
        [str(MAKE_BASE)],
        env=engine.env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0:
        if shutil.which("debootstrap") is None:
            _unavailable("debootstrap not installed (apt-get install -y debootstrap)")
        pytest.fail(f"make-base-image.sh failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def extra_ca_certs() -> str:
    """PEM text of the CAs this machine adds to the system store (e.g. an egress proxy's),
    handed to the image builds so pip can reach PyPI; empty when there are none."""
    if not EXTRA_CA_DIR.is_dir():
        return ""
    pems = [p.read_text() for p in sorted(EXTRA_CA_DIR.glob("*.crt"))]
    return "\n".join(pem.strip() for pem in pems if "BEGIN CERTIFICATE" in pem)


@pytest.fixture(scope="session")
def base_image(docker_engine: Engine) -> str:
    return import_base_image(docker_engine)


def build_image(engine: Engine, dockerfile: str, tag: str, base: str) -> float:
    """Build ``dockerfile`` from the repository as ``tag``; returns the seconds it took."""
    args: Sequence[str] = (
        "build",
        "--network=host",  # pip reaches PyPI from the build stage; nothing else is built on it
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"EXTRA_CA_CERTS={extra_ca_certs()}",
        "-f",
        str(REPO / dockerfile),
        "-t",
        tag,
        str(REPO),
    )
    start = time.monotonic()
    engine.run(*args, timeout=1800)
    return time.monotonic() - start


LOAD_IMAGE = "presize/load:test"


@dataclass
class Swarm:
    """A private engine that is a one-node Swarm manager on 127.0.0.1, with the load image;
    ``restart()`` stops the engine by its pid and starts it again."""

    daemon: Dockerd
    image: str

    @property
    def engine(self) -> Engine:
        return self.daemon.engine

    @property
    def socket(self) -> str:
        return str(self.daemon.engine.socket)

    def wait_manager(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.engine.run("node", "ls", check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                pytest.fail("the swarm manager did not come back")
            time.sleep(0.3)

    def restart(self) -> None:
        self.daemon.stop()
        self.daemon.start()
        self.wait_manager()


@pytest.fixture(scope="session")
def docker_swarm() -> Iterator[Swarm]:
    """Its own engine (not ``docker_engine``): Swarm state and engine restarts stay out of the
    image tests. Images are local; the engine runs with ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE``
    and services are created with ``--no-resolve-image``, so no registry is ever asked."""
    daemon = new_dockerd("presize-sw-")
    try:
        base = import_base_image(daemon.engine)
        daemon.engine.run(
            "build", "--network=none", "--build-arg", f"BASE_IMAGE={base}",
            "-f", str(REPO / "tests/docker/Dockerfile.load"), "-t", LOAD_IMAGE,
            str(REPO / "tests/docker"),
        )  # fmt: skip
        daemon.engine.run("swarm", "init", "--advertise-addr", "127.0.0.1")
        swarm = Swarm(daemon, LOAD_IMAGE)
        swarm.wait_manager()
        yield swarm
    finally:
        if daemon.popen is not None:
            daemon.engine.run("swarm", "leave", "--force", check=False, timeout=60)
        daemon.cleanup()
