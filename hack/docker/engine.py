"""A Docker Engine for presize's tools and tests: a private ``dockerd`` started and stopped by pid,
the base image, and the image builds.

Shared by ``hack/docker/images.py`` (the images users get) and ``tests/docker/conftest.py``
(the docker tier), so that both start the engine, make the base image and build the
Dockerfiles the same way. Stdlib only; no pytest here: problems are raised as
:class:`DockerUnavailableError` (a prerequisite is missing: no ``dockerd``, not root, no
``debootstrap``; the tests skip) or :class:`DockerError` (something failed; the tests fail).

The private engine (Debian's docker.io, see ``../shared/docs/real-containers.md``) has its
socket, exec root and pidfile in one short scratch folder under ``/tmp`` (a unix socket's path
must fit in 108 bytes), a data root there or wherever the caller keeps layers between runs, no
bridge and no iptables rules (containers get ``--network none`` or the host's loopback), and
is stopped by the pid it was started with, never by name. Builds use the engine's classic
builder (``DOCKER_BUILDKIT=0``: no buildx plugin needed) on the host network, so pip reaches
PyPI through the host's proxy, whose CAs are handed to the build as ``EXTRA_CA_CERTS``.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, overload

REPO = Path(__file__).resolve().parents[2]
MAKE_BASE = REPO / "hack" / "docker" / "make-base-image.sh"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")


class DockerError(RuntimeError):
    """The engine, a docker command or the base image failed."""


class DockerUnavailableError(DockerError):
    """A prerequisite is missing (the engine or debootstrap is not installed, or not root)."""


@dataclass(frozen=True)
class Engine:
    """The client side of a Docker Engine: ``socket`` is its unix socket. A private engine's
    client keeps its configuration in ``workdir/client-config`` and ignores the caller's
    ``DOCKER_*`` variables; with ``workdir=None`` (an engine the user named, e.g.
    ``--docker-host``) the caller's TLS and config variables are kept."""

    socket: Path
    workdir: Path | None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        if self.workdir is None:
            env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}
        else:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            env["DOCKER_CONFIG"] = str(self.workdir / "client-config")
        env["DOCKER_HOST"] = self.host
        env["DOCKER_BUILDKIT"] = "0"  # the engine's classic builder; no buildx plugin needed
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker <args>`` against this engine, output captured; with ``check`` a non-zero
        exit raises :class:`DockerError` with the output's tail."""
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
            raise DockerError(
                f"docker {' '.join(args[:3])} ... exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def inspect_image(self, tag: str) -> dict[str, object]:
        data = json.loads(self.run("image", "inspect", tag).stdout)
        if not isinstance(data, list) or not isinstance(data[0], dict):
            raise DockerError(f"unexpected answer of docker image inspect {tag}: {data!r}")
        return data[0]


def engine_at(docker_host: str) -> Engine:
    """The client of an engine the user runs, named by ``unix:///path`` or a socket path."""
    path = docker_host.removeprefix("unix://")
    if "://" in path:
        raise DockerError(f"only unix sockets are supported, not {docker_host!r}")
    return Engine(socket=Path(path), workdir=None)


def stop_by_pidfile(pidfile: Path, popen: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Stop the process ``popen`` started: SIGTERM, then SIGKILL after ``timeout``. The pidfile
    is read only to confirm; a pid other than the one started is never signalled."""
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


def unmount_under(root: Path) -> None:
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
    """A private dockerd under ``workdir`` that may be stopped and started again (by the pid it
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

    def argv(self) -> list[str]:
        return [
            "dockerd",
            f"--host={self.engine.host}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.workdir / 'exec'}",
            f"--pidfile={self.pidfile}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
        ]

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until it answers; :class:`DockerError` if it exits or stays
        silent for ``timeout`` seconds."""
        log = (self.workdir / "dockerd.log").open("ab")
        # Swarm would otherwise ask a registry for every task's image; images here are local.
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        self.popen = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                tail = (self.workdir / "dockerd.log").read_text(errors="replace")[-2000:]
                raise DockerError(f"dockerd exited {self.popen.returncode}:\n{tail}")
            sock = self.engine.socket
            if (
                sock.exists()
                and self.engine.run("version", check=False, timeout=10).returncode == 0
            ):
                return
            if time.monotonic() > deadline:
                raise DockerError(f"dockerd did not answer within {timeout:.0f} s")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.popen is not None:
            stop_by_pidfile(self.pidfile, self.popen)
            self.popen = None

    def cleanup(self) -> None:
        """Stop it, unmount what it left and delete the scratch folder (a data root elsewhere,
        kept for its layers, stays; only what it left mounted there is unmounted)."""
        self.stop()
        unmount_under(self.workdir)
        if not self.data_root.is_relative_to(self.workdir):
            unmount_under(self.data_root)
        shutil.rmtree(self.workdir, ignore_errors=True)


def check_can_run_dockerd() -> None:
    """:class:`DockerUnavailableError` unless ``dockerd`` and ``docker`` are installed and we
    are root."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        raise DockerUnavailableError("Docker Engine not installed (apt-get install -y docker.io)")
    if os.geteuid() != 0:
        raise DockerUnavailableError("a private dockerd needs root")


D = TypeVar("D", bound=Dockerd)


@overload
def new_dockerd(prefix: str, data_root: str | Path | None = None) -> Dockerd: ...
@overload
def new_dockerd(
    prefix: str, data_root: str | Path | None, factory: Callable[[Path, Path], D]
) -> D: ...
def new_dockerd(
    prefix: str,
    data_root: str | Path | None = None,
    factory: Callable[[Path, Path], Dockerd] = Dockerd,
) -> Dockerd:
    """A started private dockerd (made by ``factory(workdir, data_root)``) in a new scratch
    folder ``/tmp/<prefix>XXXXXXXX``; its data root is ``data_root`` or in that folder.
    :class:`DockerUnavailableError` without dockerd or root, :class:`DockerError` if it does
    not start."""
    check_can_run_dockerd()
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    daemon = factory(workdir, Path(data_root) if data_root else workdir / "root")
    try:
        daemon.start()
    except BaseException:
        daemon.cleanup()
        raise
    return daemon


def base_image_tag(env: Mapping[str, str] | None = None) -> str:
    """The tag ``make-base-image.sh`` gives the base image (a hash of its recipe), without an
    engine."""
    proc = subprocess.run(
        ["bash", str(MAKE_BASE), "--print-tag"],
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise DockerError(f"make-base-image.sh --print-tag failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def import_base_image(engine: Engine, cache: Path | None = None) -> str:
    """The base image in ``engine`` (imported from the cached tarball: seconds, after the first
    debootstrap); its tag. ``cache``: instead of ``$PRESIZE_CACHE``."""
    env = engine.env
    if cache is not None:
        env["PRESIZE_CACHE"] = str(cache)
    proc = subprocess.run(
        ["bash", str(MAKE_BASE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0:
        if shutil.which("debootstrap") is None:
            raise DockerUnavailableError(
                "debootstrap not installed (apt-get install -y debootstrap)"
            )
        raise DockerError(f"make-base-image.sh failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def extra_ca_certs() -> str:
    """PEM text of the CAs this machine adds to the system store (e.g. an egress proxy's),
    handed to the image builds so pip can reach PyPI; empty when there are none."""
    if not EXTRA_CA_DIR.is_dir():
        return ""
    pems = [p.read_text() for p in sorted(EXTRA_CA_DIR.glob("*.crt"))]
    return "\n".join(pem.strip() for pem in pems if "BEGIN CERTIFICATE" in pem)


def build_argv(dockerfile: str, tag: str, base: str, context: Path = REPO) -> list[str]:
    """``docker`` arguments that build ``dockerfile`` (relative to ``context``) as ``tag`` on
    the base image ``base``."""
    return [
        "build",
        "--network=host",  # pip reaches PyPI from the build stage; nothing else is built on it
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"EXTRA_CA_CERTS={extra_ca_certs()}",
        "-f",
        str(context / dockerfile),
        "-t",
        tag,
        str(context),
    ]


def build_image(
    engine: Engine, dockerfile: str, tag: str, base: str, context: Path = REPO
) -> float:
    """Build ``dockerfile`` from the repository (or ``context``) as ``tag``; returns the
    seconds it took."""
    start = time.monotonic()
    engine.run(*build_argv(dockerfile, tag, base, context), timeout=1800)
    return time.monotonic() - start
