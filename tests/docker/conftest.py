"""Fixtures for tests against a real Docker Engine (Debian's docker.io), started privately.

``docker_engine`` (session): a dockerd of our own, with its socket, data root, exec root and
pidfile under one scratch folder, no bridge and no iptables rules (containers get
``--network none`` or the host's loopback only), stopped at the end by the pid in its pidfile.
Skipped when ``dockerd`` is not installed (``apt-get install -y docker.io``); set
``PRESIZE_REQUIRE_DOCKER=1`` to turn that skip into a failure. ``PRESIZE_DOCKER_DATA_ROOT``
keeps the image store somewhere persistent, so a second run reuses the built layers.

``base_image`` (session): the local Python base image from ``hack/docker/make-base-image.sh``
(debootstrap from Debian's mirror, cached as a tarball under ``$PRESIZE_CACHE/images``).
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


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        _unavailable("Docker Engine not installed (apt-get install -y docker.io)")
    if os.geteuid() != 0:
        _unavailable("a private dockerd needs root")
    # A short path: the socket's path must fit in sockaddr_un (108 bytes).
    workdir = Path(tempfile.mkdtemp(prefix="presize-dk-", dir="/tmp"))
    sock = workdir / "docker.sock"
    pidfile = workdir / "docker.pid"
    data_root = Path(os.environ.get("PRESIZE_DOCKER_DATA_ROOT") or workdir / "root")
    log = (workdir / "dockerd.log").open("wb")
    popen = subprocess.Popen(
        [
            "dockerd",
            f"--host=unix://{sock}",
            f"--data-root={data_root}",
            f"--exec-root={workdir / 'exec'}",
            f"--pidfile={pidfile}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    engine = Engine(socket=sock, workdir=workdir)
    try:
        deadline = time.monotonic() + 60
        while True:
            if popen.poll() is not None:
                tail = (workdir / "dockerd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"dockerd exited {popen.returncode}:\n{tail}")
            if sock.exists() and engine.run("version", check=False, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail("dockerd did not answer within 60 s")
            time.sleep(0.3)
        yield engine
    finally:
        _stop_by_pidfile(pidfile, popen)
        log.close()
        _unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def extra_ca_certs() -> str:
    """PEM text of the CAs this machine adds to the system store (e.g. an egress proxy's),
    handed to the image builds so pip can reach PyPI; empty when there are none."""
    if not EXTRA_CA_DIR.is_dir():
        return ""
    pems = [p.read_text() for p in sorted(EXTRA_CA_DIR.glob("*.crt"))]
    return "\n".join(pem.strip() for pem in pems if "BEGIN CERTIFICATE" in pem)


@pytest.fixture(scope="session")
def base_image(docker_engine: Engine) -> str:
    proc = subprocess.run(
        [str(MAKE_BASE)],
        env=docker_engine.env,
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
