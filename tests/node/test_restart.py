"""The controller pod is deleted mid-run: its replacement restores the profiles from the API,
and the agent delivers what it spooled meanwhile. A count shows that no report was lost."""

from __future__ import annotations

import re
import time

import pytest
from kubernetes import client

from tests.node.conftest import (
    NAMESPACE,
    Presize,
    all_ready,
    metric,
    profile,
    wait_for,
    wait_profile,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]


def test_a_replaced_controller_restores_profiles_and_no_report_is_lost(presize: Presize) -> None:
    ns = presize.fleet["auto"]
    wait_profile(presize.api, ns, "steady")
    core = client.CoreV1Api(presize.api)
    old = presize.pods("controller")[0]
    core.delete_namespaced_pod(old.metadata.name, NAMESPACE, grace_period_seconds=0)
    wait_for(
        "the old controller pod gone",
        lambda: all(p.metadata.uid != old.metadata.uid for p in presize.pods("controller")),
        60,
    )
    # From here on every report the agent delivers goes to the replacement.
    delivered_before = metric(presize, "agent", "presize_agent_reports_delivered")
    wait_for("the replacement Ready", lambda: all_ready(presize.pods("controller")), 120)
    new = presize.pods("controller")[0]
    restored = wait_for(
        "the replacement restoring profiles",
        lambda: re.search(r"restored (\d+) container profiles", presize.logs("controller")),
        60,
    )
    assert int(restored.group(1)) > 0, presize.logs("controller")[-2000:]
    assert profile(presize.api, ns, "deployment-steady"), "the profile is gone"

    def drained() -> bool:
        return (
            metric(presize, "agent", "presize_agent_spool_reports") == 0
            and metric(presize, "agent", "presize_agent_reports_delivered") > delivered_before
        )

    wait_for("the agent's spool delivered to the replacement", drained, 150)
    time.sleep(2)
    delivered = metric(presize, "agent", "presize_agent_reports_delivered") - delivered_before
    accepted = metric(presize, "controller", 'presize_controller_reports_total{result="accepted"}')
    for lost in ("rejected", "auth_failures"):
        assert metric(presize, "agent", f"presize_agent_reports_{lost}") == 0, lost
    for lost in ("dropped", "quarantined"):
        assert metric(presize, "agent", f"presize_agent_spool_{lost}") == 0, lost
    print(f"controller {old.metadata.name} -> {new.metadata.name}: restored "
          f"{restored.group(1)} profiles; agent delivered {delivered:.0f}, replacement "
          f"accepted {accepted:.0f}")  # fmt: skip
    assert delivered == accepted, "a report delivered was not counted, or one was counted twice"
