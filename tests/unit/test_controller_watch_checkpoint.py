"""A change under rollback watch survives a checkpoint: its JSON form and the way back.

The loop-level half (a restarted controller still rolls back) is in test_controller_loop.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from controller_fakes import deployment
from hypothesis import given
from hypothesis import strategies as st

from controller.orchestrator import ContainerResize, ContainerResources
from controller.rollback import Change, Health, change_from_json, change_to_json

WEB = deployment("shop", "web")


def change(**kw: Any) -> Change:
    base: dict[str, Any] = {
        "pod_uid": "uid-1", "pod_name": "web-1", "namespace": "shop", "at": 1_700_000_000.5,
        "before": (ContainerResources("app", 0.5, 1.0, 256.0 * 2**20, None, cpu_restart=True,
                                      restarts=3),),
        "after": (ContainerResize("app", cpu_request=0.4, cpu_limit=0.8),),
        "baseline": Health(throttled=0.02, cpu_psi=math.nan, mem_psi=0.1, oom_kills=1,
                           restarts=2, latency_s=None, samples=30),
        "grew_cpu": False, "grew_memory": False, "shrank_cpu": True, "shrank_memory": False,
        "reason": "predicted-over-allocation", "window_s": 300.0, "workload": WEB,
    }  # fmt: skip
    base.update(kw)
    return Change(**base)


def through_json(c: Change) -> Change:
    text = json.dumps(change_to_json(c), allow_nan=False)  # strict JSON: no NaN on the wire
    return change_from_json(json.loads(text), WEB)


def same(a: Change, b: Change) -> bool:
    """Equal, counting NaN baselines as equal (NaN is 'nothing observed')."""
    def health(h: Health) -> tuple[object, ...]:
        return tuple("nan" if isinstance(v, float) and math.isnan(v) else v
                     for v in (h.throttled, h.cpu_psi, h.mem_psi, h.oom_kills, h.restarts,
                               h.latency_s, h.samples))  # fmt: skip

    return replace(a, baseline=Health()) == replace(b, baseline=Health()) and health(
        a.baseline
    ) == health(b.baseline)


def test_a_watched_change_comes_back_as_it_was() -> None:
    c = change()
    back = through_json(c)
    assert same(back, c)
    assert math.isnan(back.baseline.cpu_psi)
    assert back.before[0].cpu_restart
    assert back.before[0].restarts == 3
    assert back.workload == WEB


finite = st.floats(min_value=0, max_value=1e12, allow_nan=False)
maybe = st.one_of(st.none(), finite)


@given(
    at=finite,
    throttled=st.one_of(st.just(math.nan), finite),
    latency=maybe,
    memory=maybe,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    name=st.text(min_size=1, max_size=20),
)
def test_any_watched_change_round_trips(
    *,
    at: float,
    throttled: float,
    latency: float | None,
    memory: float | None,
    flags: tuple[bool, bool, bool, bool],
    name: str,
) -> None:
    c = change(
        at=at,
        before=(ContainerResources(name, memory_limit=memory),),
        after=(ContainerResize(name, memory_limit=memory),),
        baseline=Health(throttled=throttled, latency_s=latency),
        grew_cpu=flags[0], grew_memory=flags[1], shrank_cpu=flags[2], shrank_memory=flags[3],
    )  # fmt: skip
    assert same(through_json(c), c)


def _broken(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(json.dumps(change_to_json(change()), allow_nan=False))
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("podUid",), 7, "'podUid' is not a string"),
        (("at",), "yesterday", "'at' is not a number"),
        (("at",), True, "'at' is not a number"),
        (("baseline",), KeyError, "no baseline"),
        (("baseline", "samples"), None, "'samples' is not a number"),
        (("grew",), [True], "'grew' is not two booleans"),
        (("before",), {"name": "app"}, "'before' is not a list"),
        (("before", 0, "name"), KeyError, "a container in 'before' has no name"),
        (("after", 0, "cpu_limit"), "800m", "cpu_limit='800m'"),
        (("before", 0, "restarts"), 1.5, "restarts=1.5"),
        (("before", 0, "cpu_restart"), "yes", "cpu_restart='yes'"),
    ],
)
def test_a_malformed_watch_is_a_clear_error(
    path: tuple[str | int, ...], value: object, message: str
) -> None:
    with pytest.raises(ValueError, match="watched change") as err:
        change_from_json(_broken(path, value), WEB)
    assert message in str(err.value)


def test_a_watch_that_is_not_an_object_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an object"):
        change_from_json(["uid-1"], WEB)


def test_unknown_container_fields_from_a_newer_controller_are_ignored() -> None:
    raw = _broken(("before", 0, "gpu"), 1)
    assert change_from_json(raw, WEB).before == change().before
