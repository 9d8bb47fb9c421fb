"""Wire formats: exact round-trips, strict decoding, size caps and versions.

msgpack is imported here only to craft hostile payloads; production code reaches it only
through presize.wire.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any, cast

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presize.errors import WireError, WireSizeError, WireVersionError
from presize.model import (
    ContainerKey,
    Mode,
    OwnerKind,
    PodRef,
    Pressure,
    Recommendation,
    ResourceRecommendation,
    UsageWindow,
    WorkloadClass,
    WorkloadKey,
)
from presize.wire import (
    DiagnoseRequest,
    Diagnostics,
    IoLimit,
    PolicyBounds,
    ProcessSample,
    Report,
    ReportAck,
    Snapshot,
    decode_ack,
    decode_report,
    decode_snapshot,
    decode_snapshot_json,
    encode_ack,
    encode_report,
    encode_snapshot,
    encode_snapshot_json,
    snapshot_from_json_dict,
    snapshot_to_json_dict,
)

CAP = 1 << 20
POD = PodRef(namespace="shop", name="cart-7d9f-x2", uid="u-1", node="node-a")
WINDOW = UsageWindow(
    pod=POD, container="app", start=1_700_000_000.0, seconds=60.0, samples=60,
    cpu_mean=0.12, cpu_max=0.4, cpu_p50=0.1, cpu_p90=0.3, cpu_p99=0.39,
    cpu_throttled_fraction=0.05, mem_mean=2.1e8, mem_max=2.5e8, oom_kills=1,
    pressure=Pressure(cpu=0.01, memory=0.0, io=0.2), io_read_bytes=1e6, io_write_bytes=2e6,
    net_rx_bytes=3e6, net_tx_bytes=4e6, cpu_limit=0.5, mem_limit=None,
    log_matches=(("OutOfMemory", 2),),
)  # fmt: skip
DIAGNOSTICS = Diagnostics(
    pod=POD, container="app", taken_at=1_700_000_059.0,
    processes=(ProcessSample(1, "java", 0.39, 2.4e8), ProcessSample(42, "sh", 0.0, 1e6)),
    memory_stat=(("anon", 240_000_000), ("file", 1_000_000)),
    log_lines=("java.lang.OutOfMemoryError: Java heap space",),
)  # fmt: skip
REPORT = Report(
    node="node-a", agent_id="agent-node-a", sent_at=1_700_000_060.0, sequence=17,
    windows=(WINDOW,), urgent=True, urgent_reasons=("memory limit in ~3 min",),
    diagnostics=(DIAGNOSTICS,),
)  # fmt: skip
RECOMMENDATION = Recommendation(
    key=ContainerKey(WorkloadKey("shop", OwnerKind.DEPLOYMENT, "cart"), "app"),
    cpu=ResourceRecommendation(target=0.25, lower=0.1, upper=math.inf),
    memory=ResourceRecommendation(target=3e8, lower=2e8, upper=4e8),
    workload_class=WorkloadClass.PERIODIC, confidence=0.8, generation=4, mem_peak=2.5e8,
    net_egress_bps=1e5, net_ingress_bps=None,
)  # fmt: skip
SNAPSHOT = Snapshot(
    generation=9, generated_at=1_700_000_100.0, recommendations=(RECOMMENDATION,),
    namespace_modes=(("shop", Mode.AUTO), ("batch", Mode.OFF)),
    policy_bounds=(
        PolicyBounds(namespace="shop", cpu_min=0.05, memory_max=math.inf),
        PolicyBounds(namespace="shop", container="app", cpu_max=2.0, memory_min=6.4e7),
    ),
)  # fmt: skip
SNAPSHOT_WITHOUT_BOUNDS = Snapshot(
    generation=9, generated_at=1_700_000_100.0, recommendations=(RECOMMENDATION,),
    namespace_modes=(("shop", Mode.AUTO),),
)  # fmt: skip

# ------------------------------------------------------------------------------ round-trips


def test_report_round_trips_exactly() -> None:
    assert decode_report(encode_report(REPORT), max_bytes=CAP) == REPORT


def test_snapshot_round_trips_exactly_as_msgpack_and_as_json() -> None:
    assert decode_snapshot(encode_snapshot(SNAPSHOT), max_bytes=CAP) == SNAPSHOT
    assert decode_snapshot_json(encode_snapshot_json(SNAPSHOT), max_bytes=CAP) == SNAPSHOT
    assert snapshot_from_json_dict(snapshot_to_json_dict(SNAPSHOT)) == SNAPSHOT


def test_snapshot_without_policy_bounds_round_trips_and_omits_the_key() -> None:
    payload = encode_snapshot(SNAPSHOT_WITHOUT_BOUNDS)
    assert "policy_bounds" not in _tree(payload)
    assert "policy_bounds" not in snapshot_to_json_dict(SNAPSHOT_WITHOUT_BOUNDS)
    assert decode_snapshot(payload, max_bytes=CAP) == SNAPSHOT_WITHOUT_BOUNDS
    json_payload = encode_snapshot_json(SNAPSHOT_WITHOUT_BOUNDS)
    assert decode_snapshot_json(json_payload, max_bytes=CAP) == SNAPSHOT_WITHOUT_BOUNDS


def test_a_snapshot_from_before_policy_bounds_decodes_with_none() -> None:
    tree = _tree(encode_snapshot(SNAPSHOT))
    del tree["policy_bounds"]
    decoded = decode_snapshot(_pack(tree), max_bytes=CAP)
    assert decoded.policy_bounds == ()
    assert decoded.recommendations == SNAPSHOT.recommendations


def test_policy_bounds_travel_with_their_infinities_and_nones() -> None:
    data = snapshot_to_json_dict(SNAPSHOT)
    bounds = cast(list[dict[str, Any]], data["policy_bounds"])
    assert bounds[0] == {
        "namespace": "shop", "container": None, "cpu_min": 0.05, "cpu_max": None,
        "memory_min": None, "memory_max": "Infinity",
    }  # fmt: skip
    assert bounds[1]["container"] == "app"


def test_snapshot_json_is_standard_json_with_infinity_as_a_string() -> None:
    text = encode_snapshot_json(SNAPSHOT).decode("utf-8")
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard {name}"))
    assert data["recommendations"][0]["cpu"]["upper"] == "Infinity"


def test_snapshot_json_reads_the_documented_format() -> None:
    text = """{
      "version": 1, "generation": 2, "generated_at": 100,
      "recommendations": [{
        "key": {"workload": {"namespace": "ns", "kind": "StatefulSet", "name": "db"},
                "container": "pg"},
        "cpu": {"target": 0.5, "lower": 0.25, "upper": "Infinity"},
        "memory": {"target": 1073741824, "lower": 536870912, "upper": 2147483648},
        "workload_class": "steady", "confidence": 1, "generation": 7, "mem_peak": 0,
        "net_egress_bps": null, "net_ingress_bps": 12.5
      }],
      "namespace_modes": [["ns", "initial"]]
    }"""
    expected = Snapshot(
        generation=2,
        generated_at=100.0,
        recommendations=(
            Recommendation(
                key=ContainerKey(WorkloadKey("ns", OwnerKind.STATEFULSET, "db"), "pg"),
                cpu=ResourceRecommendation(0.5, 0.25, math.inf),
                memory=ResourceRecommendation(float(2**30), float(2**29), float(2**31)),
                workload_class=WorkloadClass.STEADY,
                confidence=1.0,
                generation=7,
                net_ingress_bps=12.5,
            ),
        ),
        namespace_modes=(("ns", Mode.INITIAL),),
    )
    assert decode_snapshot_json(text.encode(), max_bytes=CAP) == expected


def test_report_map_keys_are_the_field_names() -> None:
    raw = msgpack.unpackb(encode_report(REPORT))
    assert list(raw) == [
        "version", "node", "agent_id", "sent_at", "sequence", "windows", "urgent",
        "urgent_reasons", "diagnostics",
    ]  # fmt: skip
    assert raw["version"] == 1
    assert raw["windows"][0]["pressure"] == {"cpu": 0.01, "memory": 0.0, "io": 0.2}
    assert raw["diagnostics"][0]["processes"][0] == [1, "java", 0.39, 2.4e8]


# ------------------------------------------------------------------------------ versions


def _tree(payload: bytes) -> dict[str, Any]:
    tree = msgpack.unpackb(payload)
    assert isinstance(tree, dict)
    return tree


def _pack(tree: object) -> bytes:
    packed = msgpack.packb(tree)
    assert isinstance(packed, bytes)
    return packed


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_versions_raise_wire_version_error(version: int) -> None:
    report = _tree(encode_report(REPORT)) | {"version": version}
    snapshot = _tree(encode_snapshot(SNAPSHOT)) | {"version": version}
    snapshot_json = snapshot_to_json_dict(SNAPSHOT) | {"version": version}
    with pytest.raises(WireVersionError):
        decode_report(_pack(report), max_bytes=CAP)
    with pytest.raises(WireVersionError):
        decode_snapshot(_pack(snapshot), max_bytes=CAP)
    with pytest.raises(WireVersionError):
        decode_snapshot_json(json.dumps(snapshot_json).encode(), max_bytes=CAP)
    with pytest.raises(WireVersionError):
        snapshot_from_json_dict(snapshot_json)


def test_a_newer_version_is_refused_before_its_fields_are_read() -> None:
    with pytest.raises(WireVersionError):
        decode_snapshot(_pack({"version": 2, "entirely": ["different"]}), max_bytes=CAP)


def test_encoding_an_unknown_version_is_refused() -> None:
    with pytest.raises(WireVersionError):
        encode_report(Report(version=2, node="n", agent_id="a", sent_at=0.0, sequence=0))
    with pytest.raises(WireVersionError):
        encode_snapshot(Snapshot(version=2, generation=0, generated_at=0.0))


# ------------------------------------------------------------------------------ size


def test_payload_over_the_cap_raises_wire_size_error_before_decoding() -> None:
    payload = encode_report(REPORT)
    assert decode_report(payload, max_bytes=len(payload)) == REPORT
    with pytest.raises(WireSizeError, match=str(len(payload))):
        decode_report(payload, max_bytes=len(payload) - 1)
    with pytest.raises(WireSizeError):
        decode_report(b"\xff" * 100, max_bytes=99)  # garbage, but the size is checked first
    with pytest.raises(WireSizeError):
        decode_snapshot(encode_snapshot(SNAPSHOT), max_bytes=10)
    with pytest.raises(WireSizeError):
        decode_snapshot_json(encode_snapshot_json(SNAPSHOT), max_bytes=10)


# ------------------------------------------------------------------------------ malformed


def _set(path: tuple[str | int, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(tree: dict[str, Any]) -> None:
        node: Any = tree
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return mutate


def _delete(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(tree: dict[str, Any]) -> None:
        node: Any = tree
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]

    return mutate


REPORT_MUTATIONS = [
    (_set(("version",), "1"), "report.version"),
    (_set(("version",), True), "report.version"),
    (_delete(("node",)), "missing fields \\['node'\\]"),
    (_set(("zzz",), 1), "unexpected fields \\['zzz'\\]"),
    (_set(("sequence",), 1.0), "report.sequence: expected an integer"),
    (_set(("sequence",), True), "report.sequence: expected an integer"),
    (_set(("sent_at",), "now"), "report.sent_at: expected a number"),
    (_set(("sent_at",), math.nan), "report.sent_at: NaN"),
    (_set(("urgent",), 1), "report.urgent: expected true or false"),
    (_set(("windows",), {}), "report.windows: expected an array"),
    (_set(("windows", 0), "w"), "report.windows\\[0\\]: expected a map"),
    (_set(("windows", 0, "cpu_mean"), "x"), "report.windows\\[0\\].cpu_mean"),
    (_set(("windows", 0, "samples"), 60.0), "report.windows\\[0\\].samples"),
    (_set(("windows", 0, "cpu_limit"), "1"), "report.windows\\[0\\].cpu_limit"),
    (_delete(("windows", 0, "pressure", "io")), "report.windows\\[0\\].pressure: missing"),
    (_set(("windows", 0, "pod", "uid"), None), "report.windows\\[0\\].pod.uid"),
    (_set(("windows", 0, "log_matches"), [[1, 2]]), "log_matches\\[0\\]\\[0\\]"),
    (_set(("windows", 0, "log_matches"), [["a"]]), "expected 2 elements"),
    (_set(("diagnostics", 0, "processes"), [[1, "x", 0.5]]), "expected 4 elements"),
    (_set(("diagnostics", 0, "processes"), [[1, "x", 0.5, "big"]]), "rss_bytes"),
    (_set(("diagnostics", 0, "memory_stat"), [["anon", 1.5]]), "memory_stat\\[0\\]\\[1\\]"),
    (_set(("diagnostics", 0, "log_lines"), [3]), "log_lines\\[0\\]"),
    (_set(("urgent_reasons",), "oom"), "report.urgent_reasons: expected an array"),
]


@pytest.mark.parametrize(("mutate", "message"), REPORT_MUTATIONS)
def test_malformed_report_raises_wire_error_naming_the_field(
    mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    tree = _tree(encode_report(REPORT))
    mutate(tree)
    with pytest.raises(WireError, match=message) as caught:
        decode_report(_pack(tree), max_bytes=CAP)
    assert not isinstance(caught.value, WireVersionError | WireSizeError)


SNAPSHOT_MUTATIONS = [
    (_set(("generation",), "9"), "snapshot.generation"),
    (_set(("recommendations", 0, "key", "workload", "kind"), "Rocket"), "not a known OwnerKind"),
    (_set(("recommendations", 0, "workload_class"), 3), "workload_class"),
    (_set(("recommendations", 0, "cpu", "upper"), "inf"), "cpu.upper"),
    (_set(("recommendations", 0, "cpu", "upper"), "NaN"), "cpu.upper"),
    (_delete(("recommendations", 0, "memory", "lower")), "memory: missing"),
    (_set(("namespace_modes",), [["shop", "sometimes"]]), "not a known Mode"),
    (_set(("namespace_modes",), [["shop"]]), "expected 2 elements"),
    (_set(("policy_bounds",), {}), "snapshot.policy_bounds: expected an array"),
    (_set(("policy_bounds", 0, "cpu_min"), "50m"), "policy_bounds\\[0\\].cpu_min"),
    (_set(("policy_bounds", 1, "container"), 3), "policy_bounds\\[1\\].container"),
    (_set(("policy_bounds", 0, "namespace"), None), "policy_bounds\\[0\\].namespace"),
    (_delete(("policy_bounds", 0, "memory_max")), "missing fields \\['memory_max'\\]"),
    (_set(("policy_bounds", 0, "zzz"), 1), "unexpected fields \\['zzz'\\]"),
    (_delete(("generation",)), "missing fields \\['generation'\\]"),
]


@pytest.mark.parametrize(("mutate", "message"), SNAPSHOT_MUTATIONS)
def test_malformed_snapshot_raises_wire_error_in_both_encodings(
    mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    msgpack_tree = _tree(encode_snapshot(SNAPSHOT))
    json_tree = snapshot_to_json_dict(SNAPSHOT)
    mutate(msgpack_tree)
    mutate(json_tree)
    with pytest.raises(WireError, match=message):
        decode_snapshot(_pack(msgpack_tree), max_bytes=CAP)
    with pytest.raises(WireError, match=message):
        decode_snapshot_json(json.dumps(json_tree).encode(), max_bytes=CAP)
    with pytest.raises(WireError, match=message):
        snapshot_from_json_dict(json_tree)


def test_infinity_strings_are_json_only() -> None:
    tree = json.loads(encode_snapshot_json(SNAPSHOT))  # holds "Infinity" for cpu.upper
    with pytest.raises(WireError, match=r"cpu\.upper: expected a number"):
        decode_snapshot(_pack(tree), max_bytes=CAP)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc0",  # nil
        b"\x90",  # empty array
        b"\x80",  # empty map: no version
        b"\xc1",  # never-used byte
        b"\xc4\x01a",  # bin type
        b"\xd4\x01\x00",  # ext type
        b"\x81\xa1\xff\x01",  # invalid UTF-8 key
        b"\x81\x01\x01",  # integer key
        b"\x91" * 100_000 + b"\xc0",  # nested far too deep
        b"\xdd\xff\xff\xff\xff",  # array claiming 4 billion items
        encode_report(REPORT) + b"\x00",  # trailing bytes
    ],
)
def test_hostile_bytes_raise_wire_error(payload: bytes) -> None:
    with pytest.raises(WireError):
        decode_report(payload, max_bytes=CAP)
    with pytest.raises(WireError):
        decode_snapshot(payload, max_bytes=CAP)


@pytest.mark.parametrize(
    "payload", [b"", b"{", b"NaN", b'{"version": NaN}', b"[1]", b"\xff\xfe", b"[" * 100_000]
)
def test_hostile_json_raises_wire_error(payload: bytes) -> None:
    with pytest.raises(WireError):
        decode_snapshot_json(payload, max_bytes=CAP)


@pytest.mark.parametrize("payload", ["text", None, bytearray(b"\x80")])
def test_non_bytes_payload_raises_wire_error(payload: object) -> None:
    with pytest.raises(WireError):
        decode_report(payload, max_bytes=CAP)  # type: ignore[arg-type]


def test_encoding_nan_is_refused() -> None:
    with pytest.raises(WireError, match="sent_at"):
        encode_report(Report(node="n", agent_id="a", sent_at=math.nan, sequence=0))


def test_wire_does_not_import_numpy() -> None:
    code = "import sys, presize.wire; print('numpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------------ properties

texts = st.text(max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
counts = st.integers(min_value=0, max_value=2**63 - 1)
numbers = st.floats(allow_nan=False)
optional_numbers = st.none() | numbers
pods = st.builds(PodRef, namespace=texts, name=texts, uid=texts, node=texts)
pairs = st.lists(st.tuples(texts, counts), max_size=3).map(tuple)

windows = st.builds(
    UsageWindow,
    pod=pods, container=texts, start=numbers, seconds=numbers, samples=counts,
    cpu_mean=numbers, cpu_max=numbers, cpu_p50=numbers, cpu_p90=numbers, cpu_p99=numbers,
    cpu_throttled_fraction=numbers, mem_mean=numbers, mem_max=numbers, oom_kills=counts,
    pressure=st.builds(Pressure, cpu=numbers, memory=numbers, io=numbers),
    io_read_bytes=numbers, io_write_bytes=numbers, net_rx_bytes=numbers, net_tx_bytes=numbers,
    cpu_limit=optional_numbers, mem_limit=optional_numbers, log_matches=pairs,
)  # fmt: skip
diagnostics = st.builds(
    Diagnostics,
    pod=pods, container=texts, taken_at=numbers,
    processes=st.lists(st.builds(ProcessSample, ints, texts, numbers, numbers), max_size=3).map(
        tuple
    ),
    memory_stat=pairs, log_lines=st.lists(texts, max_size=3).map(tuple),
)  # fmt: skip
reports = st.builds(
    Report,
    node=texts, agent_id=texts, sent_at=numbers, sequence=counts,
    windows=st.lists(windows, max_size=3).map(tuple), urgent=st.booleans(),
    urgent_reasons=st.lists(texts, max_size=3).map(tuple),
    diagnostics=st.lists(diagnostics, max_size=2).map(tuple),
)  # fmt: skip
resources = st.builds(ResourceRecommendation, target=numbers, lower=numbers, upper=numbers)
recommendations = st.builds(
    Recommendation,
    key=st.builds(
        ContainerKey,
        workload=st.builds(WorkloadKey, namespace=texts, kind=st.sampled_from(OwnerKind),
                           name=texts),
        container=texts,
    ),
    cpu=resources, memory=resources, workload_class=st.sampled_from(WorkloadClass),
    confidence=numbers, generation=counts, mem_peak=numbers,
    net_egress_bps=optional_numbers, net_ingress_bps=optional_numbers,
)  # fmt: skip
policy_bounds = st.builds(
    PolicyBounds,
    namespace=texts, container=st.none() | texts, cpu_min=optional_numbers,
    cpu_max=optional_numbers, memory_min=optional_numbers, memory_max=optional_numbers,
)  # fmt: skip
snapshots = st.builds(
    Snapshot,
    generation=counts, generated_at=numbers,
    policy_bounds=st.lists(policy_bounds, max_size=3).map(tuple),
    recommendations=st.lists(recommendations, max_size=3).map(tuple),
    namespace_modes=st.lists(st.tuples(texts, st.sampled_from(Mode)), max_size=3).map(tuple),
)  # fmt: skip


@given(reports)
def test_any_report_round_trips_exactly(report: Report) -> None:
    assert decode_report(encode_report(report), max_bytes=CAP) == report


@given(snapshots)
def test_any_snapshot_round_trips_exactly_in_both_encodings(snapshot: Snapshot) -> None:
    assert decode_snapshot(encode_snapshot(snapshot), max_bytes=CAP) == snapshot
    assert decode_snapshot_json(encode_snapshot_json(snapshot), max_bytes=CAP) == snapshot
    assert snapshot_from_json_dict(json.loads(json.dumps(snapshot_to_json_dict(snapshot)))) == (
        snapshot
    )


@settings(max_examples=300)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_only_ever_raise_wire_error(payload: bytes) -> None:
    for decode in (decode_report, decode_snapshot, decode_snapshot_json):
        with contextlib.suppress(WireError):
            decode(payload, max_bytes=CAP)


@given(reports, st.data())
def test_truncated_reports_raise_wire_error(report: Report, data: st.DataObject) -> None:
    payload = encode_report(report)
    cut = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    with pytest.raises(WireError):
        decode_report(payload[:cut], max_bytes=CAP)


@given(snapshots, st.data())
def test_truncated_snapshots_raise_wire_error(snapshot: Snapshot, data: st.DataObject) -> None:
    for payload in (encode_snapshot(snapshot), encode_snapshot_json(snapshot)):
        cut = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        with pytest.raises(WireError):
            decode_snapshot(payload[:cut], max_bytes=CAP)
        with pytest.raises(WireError):
            decode_snapshot_json(payload[:cut], max_bytes=CAP)


@settings(max_examples=300)
@given(reports, st.data())
def test_corrupted_reports_decode_or_raise_wire_error(report: Report, data: st.DataObject) -> None:
    payload = bytearray(encode_report(report))
    position = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    payload[position] = data.draw(st.integers(min_value=0, max_value=255))
    with contextlib.suppress(WireError):
        assert isinstance(decode_report(bytes(payload), max_bytes=CAP), Report)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(json_values)
def test_arbitrary_json_data_only_ever_raises_wire_error(data: object) -> None:
    with contextlib.suppress(WireError):
        snapshot_from_json_dict(data)


@given(st.dictionaries(st.sampled_from(list(snapshot_to_json_dict(SNAPSHOT))), json_values))
def test_snapshot_shaped_json_data_only_ever_raises_wire_error(data: dict[str, object]) -> None:
    with contextlib.suppress(WireError):
        snapshot_from_json_dict(snapshot_to_json_dict(SNAPSHOT) | data | {"version": 1})


@given(reports, st.integers(min_value=1, max_value=64))
def test_oversized_reports_raise_wire_size_error(report: Report, short_by: int) -> None:
    payload = encode_report(report)
    with pytest.raises(WireSizeError):
        decode_report(payload, max_bytes=max(len(payload) - short_by, 0))


def test_bytes_like_payloads_are_accepted() -> None:
    payload = encode_snapshot_json(SNAPSHOT)
    assert decode_snapshot_json(memoryview(payload), max_bytes=CAP) == SNAPSHOT  # type: ignore[arg-type]
    assert decode_report(bytearray(encode_report(REPORT)), max_bytes=CAP) == REPORT  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- report acks


def test_ack_round_trips_exactly() -> None:
    ack = ReportAck(
        sequence=41,
        duplicate=True,
        diagnose=(DiagnoseRequest("uid-1", "app"),),
        io_limits=(IoLimit("uid-2", "db", 1e7, None, None, 500.0),),
    )
    assert decode_ack(encode_ack(ack), max_bytes=1 << 16) == ack


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"version": 1, "sequence": "x", "duplicate": False, "diagnose": [], "io_limits": []},
            "ack.sequence",
        ),
        (
            {"version": 1, "sequence": 1, "duplicate": False, "diagnose": [["u"]], "io_limits": []},
            "ack.diagnose[0]",
        ),
        (
            {
                "version": 1,
                "sequence": 1,
                "duplicate": False,
                "diagnose": [],
                "io_limits": [["u", "c", 0.0, None, None, None]],
            },
            "must be > 0",
        ),
        ({"version": 2, "sequence": 1}, "ack version 2"),
    ],
)
def test_malformed_ack_raises_wire_error_naming_the_field(
    tree: dict[str, object], message: str
) -> None:
    with pytest.raises(WireError, match=re.escape(message)):
        decode_ack(msgpack.packb(tree), max_bytes=1 << 16)
