"""Who may send reports: ``--agent-identity`` / ``PRESIZE_CONTROLLER_AGENT_IDENTITY`` and the
explicit ``--allow-any-agent`` opt-in. Without either the controller (kubernetes orchestrator,
TokenReview) refuses to start with one line on stderr, never a traceback and before any API
call; "any authenticated token" is never a silent default."""

from __future__ import annotations

import re

import pytest

from controller.__main__ import agent_identities, allowed_agents, build_parser, main
from presize.errors import PresizeError

AGENT = "system:serviceaccount:presize-system:ps-presize-agent"
OTHER = "system:serviceaccount:other:agent"


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (None, "", ()),
        (None, AGENT, (AGENT,)),
        (None, f" {AGENT} , ,{OTHER},", (AGENT, OTHER)),
        ([AGENT], "", (AGENT,)),
        ([OTHER], AGENT, (AGENT, OTHER)),  # a flag adds to the environment (the chart's agent)
        ([AGENT, AGENT], AGENT, (AGENT,)),
        (["", "  "], " ", ()),
    ],
)
def test_agent_identities_merge_environment_and_flags(
    flags: list[str] | None, env: str, expected: tuple[str, ...]
) -> None:
    assert agent_identities(flags, env) == expected


@pytest.mark.parametrize(
    ("identities", "allow_any", "expected"),
    [
        ((AGENT,), False, (AGENT,)),
        ((AGENT, OTHER), False, (AGENT, OTHER)),
        ((), True, None),  # None: any authenticated token, only when asked for
    ],
)
def test_allowed_agents(
    identities: tuple[str, ...], allow_any: bool, expected: tuple[str, ...] | None
) -> None:
    assert allowed_agents(identities, allow_any=allow_any) == expected


@pytest.mark.parametrize(
    ("identities", "allow_any", "message"),
    [
        ((), False, "--agent-identity system:serviceaccount:<namespace>:"),
        ((), False, "--allow-any-agent"),
        ((AGENT,), True, "contradicts"),
    ],
)
def test_allowed_agents_refuses_no_identity_and_contradictions(
    identities: tuple[str, ...], allow_any: bool, message: str
) -> None:
    with pytest.raises(PresizeError, match=re.escape(message)):
        allowed_agents(identities, allow_any=allow_any)


@pytest.mark.parametrize(
    ("argv", "env", "allow_any"),
    [
        ([], {}, False),
        (["--allow-any-agent"], {}, True),
        ([], {"PRESIZE_CONTROLLER_ALLOW_ANY_AGENT": "1"}, True),
        ([], {"PRESIZE_CONTROLLER_ALLOW_ANY_AGENT": "false"}, False),
    ],
)
def test_allow_any_agent_flag_and_environment(
    argv: list[str], env: dict[str, str], allow_any: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRESIZE_CONTROLLER_ALLOW_ANY_AGENT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert build_parser().parse_args(argv).allow_any_agent is allow_any


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "no agent identity"),
        (["--allow-any-agent", "--agent-identity", AGENT], {}, "contradicts"),
        (["--allow-any-agent"], {"PRESIZE_CONTROLLER_AGENT_IDENTITY": AGENT}, "contradicts"),
        ([], {"PRESIZE_CONTROLLER_AGENT_IDENTITY": " , "}, "no agent identity"),
    ],
)
def test_main_refuses_to_start_with_a_clear_message(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AGENT_IDENTITY", "ALLOW_ANY_AGENT", "INSECURE_NO_AUTH", "ORCHESTRATOR"):
        monkeypatch.delenv(f"PRESIZE_CONTROLLER_{name}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # A kubeconfig that does not exist: the check must come before any use of it.
    code = main(["--kubeconfig", "/nonexistent/kubeconfig", "--log-level", "ERROR", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("presize controller: ")
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
