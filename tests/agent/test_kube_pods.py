"""Pure parts of the API-server pod directory: pod JSON → PodInfo, watch events, backoff.

The watch itself runs against a real kube-apiserver in ``test_kube_directory.py``; here each
event shape (including the malformed and error ones) is pinned without a network.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from agent.kube import KubePods, ResourceGoneError, backoff_s, container_id, pod_info
from presize.errors import SettingsError
from presize.model import OwnerKind, WorkloadKey

CID = "a" * 64


def pod(uid: str = "u1", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {"uid": uid, "name": "web-7d9f8b6c5d-x2x2x", "namespace": "shop",
                     "labels": {"pod-template-hash": "7d9f8b6c5d"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f8b6c5d",
                                          "controller": True, "uid": "rs"}]},
        "status": {"containerStatuses": [{"name": "app", "containerID": f"containerd://{CID}"},
                                         {"name": "waiting"}],
                   "initContainerStatuses": [{"name": "init",
                                              "containerID": f"cri-o://{'b' * 64}"}]},
    }  # fmt: skip
    base.update(extra)
    return base


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"containerd://{CID}", CID),
        (f"docker://{CID}", CID),
        (CID, CID),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_container_id(raw: object, expected: str | None) -> None:
    assert container_id(raw) == expected


def test_pod_info_names_containers_and_the_top_owner() -> None:
    parsed = pod_info(pod(), node="n1")
    assert parsed is not None
    uid, info = parsed
    assert uid == "u1"
    assert (info.ref.namespace, info.ref.name, info.ref.node) == (
        "shop",
        "web-7d9f8b6c5d-x2x2x",
        "n1",
    )
    assert info.container_names == {CID: "app", "b" * 64: "init"}
    assert info.owner == WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web")


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"metadata": "x"},
        {"metadata": {"name": "a", "namespace": "b"}},  # no uid
        {"metadata": {"uid": "u", "namespace": "b"}},  # no name
        {"metadata": {"uid": "u", "name": "a"}},  # no namespace
    ],
)
def test_pod_info_refuses_what_names_nothing(broken: dict[str, Any]) -> None:
    assert pod_info(broken) is None


def test_pod_info_tolerates_odd_statuses() -> None:
    odd = pod(status={"containerStatuses": ["x", {"name": 3}, {"name": "ok", "containerID": ""}]})
    parsed = pod_info(odd)
    assert parsed is not None
    assert parsed[1].container_names == {}
    bare = pod_info({"metadata": {"uid": "u", "name": "solo", "namespace": "ns"}})
    assert bare is not None
    assert bare[1].owner == WorkloadKey("ns", OwnerKind.POD, "solo")


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()


@pytest.fixture
def pods() -> KubePods:
    return KubePods(client.ApiClient(), "n1")  # never started: no network


def test_events_add_modify_delete(pods: KubePods) -> None:
    first = pod()
    first["metadata"]["resourceVersion"] = "10"
    assert pods.apply(event("ADDED", first)) == "10"
    assert pods.lookup("u1") is not None
    renamed = pod(status={})
    renamed["metadata"]["resourceVersion"] = "11"
    assert pods.apply(event("MODIFIED", renamed)) == "11"
    info = pods.lookup("u1")
    assert info is not None
    assert info.container_names == {}
    assert pods.apply(event("DELETED", pod())) is None
    assert pods.lookup("u1") is None
    assert pods.stats.events == 3


def test_bookmarks_advance_the_version_only(pods: KubePods) -> None:
    assert pods.apply(event("BOOKMARK", {"metadata": {"resourceVersion": "99"}})) == "99"
    assert pods.pods() == []


def test_410_means_list_again_and_other_errors_raise(pods: KubePods) -> None:
    with pytest.raises(ResourceGoneError):
        pods.apply(event("ERROR", {"code": 410, "message": "too old resource version"}))
    with pytest.raises(RuntimeError, match="watch error"):
        pods.apply(event("ERROR", {"code": 500}))


@pytest.mark.parametrize("line", [b"{not json", b'{"type": "ADDED"}', b"[]", b'"x"'])
def test_malformed_events_are_counted_not_fatal(pods: KubePods, line: bytes) -> None:
    assert pods.apply(line) is None
    assert pods.stats.malformed == 1


def test_malformed_object_is_skipped(pods: KubePods) -> None:
    assert pods.apply(event("ADDED", {"metadata": {"resourceVersion": "5"}})) == "5"
    assert pods.stats.malformed == 1
    assert pods.pods() == []


def test_node_name_is_required() -> None:
    with pytest.raises(SettingsError):
        KubePods(client.ApiClient(), "")


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0.0), (1, 0.5), (2, 1.0), (4, 4.0), (30, 30.0)]
)
def test_backoff(failures: int, delay: float) -> None:
    assert backoff_s(failures) == delay


def test_api_server_down_keeps_retrying_without_blocking_lookups() -> None:
    """Nothing listens on the port: the thread fails, backs off and retries; lookups return."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{port}"
    pods = KubePods(client.ApiClient(cfg), "n1", backoff_max_s=0.05)
    pods.start()
    try:
        import time

        deadline = time.monotonic() + 10
        while pods.stats.failures < 3 and time.monotonic() < deadline:
            assert pods.lookup("anything") is None
            time.sleep(0.01)
        assert pods.stats.failures >= 3
        assert not pods.synced.is_set()
    finally:
        pods.stop()
