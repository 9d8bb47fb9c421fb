"""Network bytes of a pod from the real ``/proc`` of this machine: a process in a real scratch
cgroup, in a network namespace of its own with a veth pair of its own (no traffic leaves the
machine), sends a known amount; the meter finds the process through ``cgroup.procs`` and sees
the bytes on the non-loopback interface."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from cgroup_scratch import Scratch

from agent.cgroups.reader import V1Reader, open_reader
from agent.netdev import NetMeter

pytestmark = pytest.mark.cgroups

SENDER = (
    "ip link add v0 type veth peer name v1 && ip link set v1 up && ip link set v0 up && "
    "ip addr add 10.254.0.1/24 dev v0 && "
    "ip neigh add 10.254.0.2 lladdr 02:00:00:00:00:02 dev v0 && "
    "while [ ! -e {go} ]; do sleep 0.05; done && "
    'python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
    "[s.sendto(b'x' * 1000, ('10.254.0.2', 9)) for _ in range(100)]\" && "
    "touch {done} && exec sleep 60"
)


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="needs unshare and ip")  # fmt: skip
def test_meter_reads_a_real_pods_namespace(scratch: type[Scratch], tmp_path: Path) -> None:
    cg = scratch("net")
    go, done = tmp_path / "go", tmp_path / "done"
    cg.start(["unshare", "-n", "sh", "-c", SENDER.format(go=go, done=done)])
    reader = open_reader()
    assert isinstance(reader, V1Reader)
    meter = NetMeter(reader.read_pids, proc_root="/proc")
    deadline = time.monotonic() + 10
    while meter.read("pod", [cg.path]) is None:
        assert time.monotonic() < deadline, "no process found in the cgroup"
        time.sleep(0.05)
    time.sleep(0.5)  # the interfaces are set up before the sender waits
    before = meter.read("pod", [cg.path])
    assert before is not None
    go.touch()
    while not done.exists():
        assert time.monotonic() < deadline, "the sender never finished"
        time.sleep(0.05)
    after = meter.read("pod", [cg.path])
    assert after is not None
    assert after[1] == before[1]
    sent = after[0].tx_bytes - before[0].tx_bytes
    assert 100 * 1000 <= sent <= 100 * 1100, sent  # payload + UDP/IP headers, nothing else
    host = Path("/proc/self/ns/net").stat().st_ino
    assert after[1] != host, "measured the host's namespace, not the pod's"
