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

The engine, the base image and the image builds are ``hack/docker/engine.py``'s, shared with
``python -m hack.docker.images`` (the images users get); this module turns their errors into
skips (a prerequisite is missing) and failures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import pytest

from hack.docker import engine as shared
from hack.docker.engine import REPO, DockerError, DockerUnavailableError, Engine, build_image

__all__ = ["REPO", "Dockerd", "Engine", "Swarm", "build_image", "import_base_image", "new_dockerd"]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("PRESIZE_REQUIRE_DOCKER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class Dockerd(shared.Dockerd):
    """The shared private dockerd (``hack/docker/engine.py``), failing the test when it does not
    start (also on :meth:`Swarm.restart`)."""

    def start(self, timeout: float = 60) -> None:
        try:
            super().start(timeout)
        except DockerError as exc:
            pytest.fail(str(exc))


def new_dockerd(prefix: str, data_root: str | None = None) -> Dockerd:
    """A started private dockerd in a new scratch folder (a short path: the socket's path
    must fit in sockaddr_un, 108 bytes); skipped (or failed) without dockerd or root."""
    try:
        return shared.new_dockerd(prefix, data_root, Dockerd)
    except DockerUnavailableError as exc:
        _unavailable(str(exc))


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
    try:
        return shared.import_base_image(engine)
    except DockerUnavailableError as exc:
        _unavailable(str(exc))
    except DockerError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def base_image(docker_engine: Engine) -> str:
    return import_base_image(docker_engine)


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
