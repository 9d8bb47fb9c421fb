"""The agent in Docker mode against a real engine: Docker's cgroups found, named as the
controller names them, and followed as containers come and go."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.cgroups.reader import V1Reader, open_reader
from agent.collector import Collector
from agent.discovery import PodInfo, identify
from agent.docker_directory import DockerDirectory, discover_docker
from controller.docker.engine import EngineClient
from controller.docker.orchestrator import DockerOrchestrator
from controller.orchestrator import PodView
from tests.docker.conftest import Swarm
from tests.docker.helpers import create_service, eventually, run_container

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _scan_root() -> str:
    reader = open_reader("/sys/fs/cgroup")
    return reader.roots.cpuacct if isinstance(reader, V1Reader) else reader.root


async def test_directory_names_real_cgroups_like_the_controller(docker_swarm: Swarm) -> None:
    engine, image = docker_swarm.engine, docker_swarm.image
    try:
        cid = run_container(engine, image, "pz-agent-c", "--cpus=0.5", cpu="0.3")
        create_service(engine, image, "pz-agent-s")
        orch = DockerOrchestrator(EngineClient(docker_swarm.socket))

        async def both() -> tuple[PodView, PodView] | None:
            orch.mark_stale()
            pods = (await orch.state()).pods
            task = next((p for p in pods if p.workload.name == "pz-agent-s"), None)
            own = next((p for p in pods if p.ref.uid == cid), None)
            return (own, task) if own and task else None

        own, task = await eventually(both)
        await orch.close()

        directory = DockerDirectory(docker_swarm.socket)
        assert await directory.refresh()
        found = {c.container_id: c for c in discover_docker(_scan_root())}
        for pod in (own, task):
            cgroup = found[pod.ref.uid]
            assert cgroup.path.endswith(pod.ref.uid)
            ref, container = identify(cgroup, directory)
            assert ref == pod.ref  # namespace, name, uid and node, as the controller has them
            assert container == pod.containers[0].name
        await directory.close()

        # The collector wired for Docker: its windows carry the controller's names.
        reader = open_reader("/sys/fs/cgroup")
        directory = DockerDirectory(docker_swarm.socket)
        await directory.refresh()
        collector = Collector(
            reader,
            scan_root=_scan_root(),
            clock=time.monotonic,
            directory=directory,
            discover=discover_docker,
        )
        for _ in range(3):
            collector.tick()
            await asyncio.sleep(0.5)
        windows = collector.windows(60, now=time.monotonic(), epoch_offset=0.0)
        mine = next(w for w in windows if w.pod.uid == cid)
        assert (mine.pod.name, mine.container) == ("pz-agent-c", "pz-agent-c")
        assert mine.cpu_limit == pytest.approx(0.5)
        await directory.close()
    finally:
        engine.run("rm", "-f", "pz-agent-c", check=False)
        engine.run("service", "rm", "pz-agent-s", check=False)


async def test_directory_follows_events(docker_swarm: Swarm) -> None:
    engine, image = docker_swarm.engine, docker_swarm.image
    directory = DockerDirectory(docker_swarm.socket, poll_s=300)  # events only, no polling
    stop = asyncio.Event()
    runner = asyncio.create_task(directory.run(stop))
    try:
        await eventually(lambda: _at_least(directory.refreshes, 1))
        cid = run_container(engine, image, "pz-agent-ev")
        info = await eventually(lambda: _lookup(directory, cid), timeout=20)
        assert info.ref.name == "pz-agent-ev"
        engine.run("rm", "-f", cid)
        await eventually(lambda: _missing(directory, cid), timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
        engine.run("rm", "-f", "pz-agent-ev", check=False)


async def _at_least(value: int, floor: int) -> bool:
    return value >= floor


async def _lookup(directory: DockerDirectory, cid: str) -> PodInfo | None:
    return directory.lookup(cid)


async def _missing(directory: DockerDirectory, cid: str) -> bool:
    return directory.lookup(cid) is None
