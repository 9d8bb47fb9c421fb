"""Discovery: cgroup paths to pods and containers, for both drivers and three runtimes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.discovery import (
    ContainerCgroup,
    Driver,
    PodInfo,
    QosClass,
    StaticPods,
    classify,
    identify,
    scan,
)
from presize.model import PodRef

TREES = Path(__file__).parent / "fixtures" / "trees"
UID1 = "0f6a1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a01"
UID2 = "1f6a1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a02"
UID3 = "2f6a1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a03"
A, B, C, D, E, F = ((ch * 64) for ch in "abcdef")


def slice_uid(uid: str) -> str:
    return uid.replace("-", "_")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            f"/kubepods.slice/kubepods-pod{slice_uid(UID1)}.slice/cri-containerd-{A}.scope",
            ("containerd", Driver.SYSTEMD, UID1, QosClass.GUARANTEED, A),
        ),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{slice_uid(UID2)}"
            f".slice/crio-{C}.scope",
            ("cri-o", Driver.SYSTEMD, UID2, QosClass.BURSTABLE, C),
        ),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{slice_uid(UID3)}"
            f".slice/docker-{D}.scope",
            ("docker", Driver.SYSTEMD, UID3, QosClass.BEST_EFFORT, D),
        ),
        (
            # kind and kubelet --cgroup-root put kubepods under another slice.
            f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
            f"kubelet-kubepods-burstable-pod{slice_uid(UID2)}.slice/cri-containerd-{C}.scope",
            ("containerd", Driver.SYSTEMD, UID2, QosClass.BURSTABLE, C),
        ),
        (
            f"/kubepods/pod{UID1}/{A}",
            ("containerd", Driver.CGROUPFS, UID1, QosClass.GUARANTEED, A),
        ),
        (
            f"/kubepods/burstable/pod{UID2}/{C}",
            ("containerd", Driver.CGROUPFS, UID2, QosClass.BURSTABLE, C),
        ),
        (
            f"/kubepods/besteffort/pod{UID3}/crio-{E}",
            ("cri-o", Driver.CGROUPFS, UID3, QosClass.BEST_EFFORT, E),
        ),
        (f"/docker/{D}", ("docker", Driver.CGROUPFS, None, None, D)),
        (f"/system.slice/docker-{D}.scope", ("docker", Driver.SYSTEMD, None, None, D)),
    ],
)
def test_classify_names_runtime_driver_pod_qos_and_id(
    path: str, expected: tuple[str, Driver, str | None, QosClass | None, str]
) -> None:
    found = classify(path)
    assert found is not None
    assert (found.runtime, found.driver, found.pod_uid, found.qos, found.container_id) == expected
    assert found.path == path


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/kubepods.slice",
        f"/kubepods.slice/kubepods-pod{slice_uid(UID1)}.slice",
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{slice_uid(UID2)}"
        f".slice/crio-conmon-{C}.scope",
        f"/kubepods/besteffort/pod{UID3}/crio-conmon-{E}",
        "/system.slice/containerd.service",
        f"/system.slice/cri-containerd-{A}.scope",  # a container scope outside any pod
        f"/kubepods/burstable/pod{UID2}/{A[:12]}",  # not a full container ID
    ],
)
def test_classify_rejects_what_is_not_a_container(path: str) -> None:
    assert classify(path) is None


def test_scan_systemd_tree_finds_every_container_and_skips_conmon() -> None:
    found = scan(str(TREES / "v2-systemd"))
    assert [(c.pod_uid, c.container_id[0], c.qos, c.runtime) for c in found] == [
        (UID3, "d", QosClass.BEST_EFFORT, "docker"),
        (UID2, "c", QosClass.BURSTABLE, "cri-o"),
        (UID1, "a", QosClass.GUARANTEED, "containerd"),
        (UID1, "b", QosClass.GUARANTEED, "containerd"),
    ]
    assert all(c.driver is Driver.SYSTEMD for c in found)


def test_scan_cgroupfs_tree_finds_every_container_and_skips_conmon() -> None:
    found = scan(str(TREES / "v2-cgroupfs"))
    assert [(c.pod_uid, c.container_id[0], c.qos, c.runtime) for c in found] == [
        (UID3, "e", QosClass.BEST_EFFORT, "cri-o"),
        (UID2, "c", QosClass.BURSTABLE, "containerd"),
        (UID1, "a", QosClass.GUARANTEED, "containerd"),
    ]


def test_scan_of_a_v1_controller_root_finds_the_container() -> None:
    found = scan(str(TREES / "v1-cgroupfs" / "cpuacct"))
    assert [c.path for c in found] == [f"/kubepods/burstable/pod{UID2}/{F}"]


def test_scan_under_a_base_keeps_paths_relative_to_the_root() -> None:
    found = scan(str(TREES / "v1-cgroupfs"), base="cpuacct")
    assert [c.path for c in found] == [f"/cpuacct/kubepods/burstable/pod{UID2}/{F}"]


def test_scan_of_a_missing_root_finds_nothing() -> None:
    assert scan(str(TREES / "no-such-tree")) == []


def test_identify_uses_the_directory_and_falls_back_to_ids() -> None:
    container = ContainerCgroup(
        path="/x", container_id=A, runtime="containerd", driver=Driver.CGROUPFS, pod_uid=UID1
    )
    ref = PodRef(namespace="shop", name="web-0", uid=UID1, node="n1")
    known = StaticPods({UID1: PodInfo(ref=ref, container_names={A: "app"})})
    assert identify(container, known) == (ref, "app")
    assert identify(container, StaticPods()) == (PodRef("", "", UID1), A[:12])
