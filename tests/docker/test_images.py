"""The component images, built for real from a locally made base image and run on a private
Docker Engine (tests/docker/conftest.py). Only loopback traffic: the webhook and the agent run
in the host's network namespace with their servers bound to 127.0.0.1; everything else runs with
``--network none``.

Checked: each image starts its component under the chart's security settings (read-only root
file system, every capability dropped, no privilege escalation); the webhook answers
``/healthz`` and ``/metrics`` over TLS with a certificate it generated, runs as a non-root
user, stops cleanly on SIGTERM and carries no numpy or statsmodels; the agent reads the
host's cgroup tree through read-only mounts, answers ``/healthz`` and ``/metrics`` and prints
its counters when stopped. ``python -m hack.docker.images`` builds the same Dockerfiles and
saves them as archives tagged as the chart expects, and its second run is a cache hit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.docker.images import COMPONENTS, app_version, build_images, dockerfile_sources
from tests.docker.conftest import REPO, Engine, build_image

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WEBHOOK = "presize/webhook:test"
AGENT = "presize/agent:test"
CONTROLLER = "presize/controller:test"
HARDENED = ("--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges")
# Upper bounds that catch a fat dependency sneaking in (measured: see BENCHMARKS.md).
MAX_WEBHOOK_MB = 250
MAX_AGENT_MB = 320


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def images(docker_engine: Engine, base_image: str) -> dict[str, float]:
    seconds = {
        WEBHOOK: build_image(docker_engine, "Dockerfile.webhook", WEBHOOK, base_image),
        AGENT: build_image(docker_engine, "Dockerfile.agent", AGENT, base_image),
        CONTROLLER: build_image(docker_engine, "Dockerfile.controller", CONTROLLER, base_image),
    }
    for tag, took in seconds.items():
        size = int(docker_engine.inspect_image(tag)["Size"]) / 1e6  # type: ignore[call-overload]
        print(f"built {tag} in {took:.0f}s: {size:.0f} MB")
    return seconds


def _wait_healthy(engine: Engine, cid: str, port: int, what: str, timeout: float = 60) -> None:
    """Until the container answers 200 on http://127.0.0.1:<port>/healthz; fails with its logs
    if it exits first, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline and status != 200:
        state = json.loads(engine.run("inspect", cid).stdout)[0]["State"]
        if not state["Running"]:
            logs = engine.run("logs", cid, check=False)
            pytest.fail(f"{what} exited {state['ExitCode']}:\n{logs.stderr[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                status = resp.status
        except OSError:
            time.sleep(0.3)
    assert status == 200, f"no /healthz answer from the {what} within {timeout:.0f} s"


def _python_in(engine: Engine, image: str, code: str) -> tuple[int, str]:
    proc = engine.run(
        "run",
        "--rm",
        "--network=none",
        *HARDENED,
        "--entrypoint",
        "python3",
        image,
        "-c",
        code,
        check=False,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_webhook_image_carries_no_numpy_or_statsmodels(
    docker_engine: Engine, images: dict[str, float]
) -> None:
    for module in ("numpy", "statsmodels"):
        rc, out = _python_in(docker_engine, WEBHOOK, f"import {module}")
        assert rc != 0, f"{module} is importable in the webhook image"
        assert f"No module named '{module}'" in out
    code = "import webhook.__main__, webhook.kube, kubernetes.client; print('ok')"
    rc, out = _python_in(docker_engine, WEBHOOK, code)
    assert rc == 0, out
    assert out.strip().endswith("ok")


def test_images_users_and_sizes(docker_engine: Engine, images: dict[str, float]) -> None:
    webhook = docker_engine.inspect_image(WEBHOOK)
    agent = docker_engine.inspect_image(AGENT)
    assert webhook["Config"]["User"] == "65532:65532"  # type: ignore[index]
    assert webhook["Config"]["Entrypoint"] == ["presize"]  # type: ignore[index]
    # The agent runs as root on purpose (Dockerfile.agent says why); the chart drops every
    # capability and mounts the host read-only.
    assert agent["Config"]["User"] in ("0:0", "0", "root")  # type: ignore[index]
    assert int(webhook["Size"]) / 1e6 < MAX_WEBHOOK_MB  # type: ignore[call-overload]
    assert int(agent["Size"]) / 1e6 < MAX_AGENT_MB  # type: ignore[call-overload]


@pytest.fixture
def webhook_container(
    docker_engine: Engine, images: dict[str, float], tmp_path: Path
) -> Iterator[tuple[str, int, Path]]:
    certs = tmp_path / "certs"
    certs.mkdir()
    os.chmod(certs, 0o777)  # the webhook runs as uid 65532 and writes its CA and certificate here
    port = _free_port()
    closed = _free_port()  # nothing listens: the snapshot source fails, admissions still answer
    cid = docker_engine.run(
        "run",
        "-d",
        "--network=host",
        *HARDENED,
        "--tmpfs=/tmp",
        "-v",
        f"{certs}:/certs",
        WEBHOOK,
        "webhook",
        "--host=127.0.0.1",
        f"--port={port}",
        "--generate-certs=/certs",
        "--cert-hosts=127.0.0.1,localhost",
        f"--snapshot-url=http://127.0.0.1:{closed}/v1/snapshot",
    ).stdout.strip()
    try:
        yield cid, port, certs
    finally:
        docker_engine.run("rm", "-f", cid, check=False)


def test_webhook_image_serves_healthz_over_tls(
    docker_engine: Engine, webhook_container: tuple[str, int, Path]
) -> None:
    cid, port, certs = webhook_container
    deadline = time.monotonic() + 60
    body = ""
    while time.monotonic() < deadline:
        state = json.loads(docker_engine.run("inspect", cid).stdout)[0]["State"]
        if not state["Running"]:
            logs = docker_engine.run("logs", cid, check=False)
            pytest.fail(f"webhook container exited {state['ExitCode']}:\n{logs.stderr[-3000:]}")
        if (certs / "ca.crt").exists():
            ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2
                ) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                pass
        time.sleep(0.3)
    assert body.strip() == "ok", "no /healthz answer within 60 s"
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx, timeout=2) as r:
        assert "presize_webhook" in r.read().decode()
    # A clean stop on SIGTERM (what the kubelet sends), exit code 0.
    docker_engine.run("stop", "-t", "20", cid)
    state = json.loads(docker_engine.run("inspect", cid).stdout)[0]["State"]
    assert state["ExitCode"] == 0, docker_engine.run("logs", cid, check=False).stderr[-2000:]


def test_agent_image_reads_host_cgroups(docker_engine: Engine, images: dict[str, float]) -> None:
    """The agent samples the host's cgroups through read-only mounts, answers /healthz on
    127.0.0.1 (host network, bound to loopback only) and prints its counters on stop."""
    port = _free_port()
    cid = docker_engine.run(
        "run", "-d", "--network=host", *HARDENED, "--tmpfs=/tmp",
        "-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro", "-v", "/proc:/host/proc:ro",
        AGENT, "agent", "--root=/host/sys/fs/cgroup", "--hz=4", "--seconds=60",
        "--spool-dir=/tmp/spool", "--metrics-host=127.0.0.1", f"--metrics-port={port}",
    ).stdout.strip()  # fmt: skip
    try:
        _wait_healthy(docker_engine, cid, port, "agent")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            assert "presize_agent" in resp.read().decode()
        time.sleep(2)  # a few more ticks
        docker_engine.run("stop", "-t", "20", cid)
        logs = docker_engine.run("logs", cid).stderr
        state = json.loads(docker_engine.run("inspect", cid).stdout)[0]["State"]
        assert state["ExitCode"] == 0, logs[-2000:]
    finally:
        docker_engine.run("rm", "-f", cid, check=False)
    counters = json.loads(logs.strip().splitlines()[-1])
    assert counters["ticks"] >= 8, counters
    assert counters["scans"] >= 1, counters
    assert "containers" in counters
    assert "cgroup v" in logs


def test_controller_image_runs_the_controller_and_stops_cleanly(
    docker_engine: Engine, images: dict[str, float]
) -> None:
    """The controller image carries the forecasting stack (numpy, statsmodels), serves
    /healthz and /metrics, keeps running while its orchestrator is unreachable (here: the
    Docker orchestrator with no engine socket mounted) and exits 0 on SIGTERM."""
    code, out = _python_in(
        docker_engine, CONTROLLER, "import statsmodels, numpy, controller.loop; print('ok')"
    )
    assert code == 0, out
    port = _free_port()
    cid = docker_engine.run(
        "run", "-d", "--network=host", *HARDENED, "--tmpfs=/tmp",
        CONTROLLER, "controller", "--orchestrator=docker", "--insecure-no-auth",
        "--docker-socket=/tmp/no-engine.sock", "--store-dir=/tmp/profiles",
        "--host=127.0.0.1", f"--port={port}",
    ).stdout.strip()  # fmt: skip
    try:
        _wait_healthy(docker_engine, cid, port, "controller")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            assert "presize_controller_reports" in resp.read().decode()
        docker_engine.run("stop", "-t", "20", cid)
        state = json.loads(docker_engine.run("inspect", cid).stdout)[0]["State"]
        logs = docker_engine.run("logs", cid, check=False).stderr
        assert state["ExitCode"] == 0, logs[-2000:]
    finally:
        docker_engine.run("rm", "-f", cid, check=False)


def _snapshot(dest: Path) -> Path:
    """A copy of the build context's inputs (Dockerfiles, what they copy, the chart's
    Chart.yaml, .dockerignore) in ``dest``."""
    keep = {".dockerignore", "charts/presize/Chart.yaml"}
    for component in COMPONENTS:
        keep |= {f"Dockerfile.{component}", *dockerfile_sources(REPO / f"Dockerfile.{component}")}
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
    for rel in sorted(keep):
        source, target = REPO / rel, dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=skip)
        else:
            shutil.copy2(source, target)
    return dest


def test_build_images_saves_archives_tagged_for_the_chart(
    docker_engine: Engine, images: dict[str, float], tmp_path: Path
) -> None:
    """``hack.docker.images.build_images`` on this engine (its layers are already built by
    ``images``): one ``docker save`` archive per component, named for the chart's appVersion,
    carrying the tag the chart's default values resolve to, loadable again; a second call
    finds them and builds nothing. Built from a copy of what the Dockerfiles copy, so that
    sources edited while this runs do not change its inputs."""
    out = tmp_path / "archives"
    repo = _snapshot(tmp_path / "repo")
    try:
        result = build_images(out=out, docker_host=str(docker_engine.socket), repo=repo, log=print)
        version = app_version(repo / "charts" / "presize" / "Chart.yaml")
        assert result["cached"] is False
        assert result["images"] == {c: f"presize/{c}:{version}" for c in COMPONENTS}
        paths = {
            "agent": result["agent"],
            "controller": result["controller"],
            "webhook": result["webhook"],
        }
        for component, path in paths.items():
            archive = Path(path)
            assert archive.parent == out
            assert archive.name.startswith(f"presize-{component}-{version}-")
            with tarfile.open(archive) as tar:
                member = tar.extractfile("manifest.json")
                assert member is not None
                manifest = json.loads(member.read())
            assert manifest[0]["RepoTags"] == [f"presize/{component}:{version}"]
        # Loadable again; and what a Kubernetes node does with it: ctr images import, here into
        # the engine's own containerd (a namespace of its own), as docker.io/presize/...
        tag = result["images"]["webhook"]
        image_id = docker_engine.inspect_image(tag)["Id"]
        docker_engine.run("image", "rm", tag)
        docker_engine.run("load", "-i", paths["webhook"])
        assert docker_engine.inspect_image(tag)["Id"] == image_id
        assert docker_engine.workdir is not None
        containerd = docker_engine.workdir / "exec" / "containerd" / "containerd.sock"
        if shutil.which("ctr") and containerd.exists():
            ctr = ["ctr", "--address", str(containerd), "--namespace", "presize-test", "images"]
            imported = subprocess.run(
                [*ctr, "import", paths["webhook"]],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert imported.returncode == 0, imported.stderr[-2000:]
            names = subprocess.run(
                [*ctr, "ls", "-q"], capture_output=True, text=True, timeout=60, check=True
            ).stdout
            assert f"docker.io/{tag}" in names.split()

        again = build_images(out=out, docker_host="unix:///nonexistent.sock", repo=repo, log=print)
        assert again["cached"] is True
        assert again["seconds"] < 10
        assert again["images"] == result["images"]
        assert [again["agent"], again["controller"], again["webhook"]] == list(paths.values())
    finally:
        shutil.rmtree(out, ignore_errors=True)  # about 900 MB
