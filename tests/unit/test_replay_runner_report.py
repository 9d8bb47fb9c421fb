"""run_replay, the report renderers and ``presize replay`` on tiny synthetic traces.

The TraceSet is three 2-day series at 300 s steps, built from fixed seeds; the CLI reads a
Google-2011-style folder written to ``tmp_path``. The replay runs once per worker count
(module-scoped fixture), so the whole file stays within a few seconds.
"""

from __future__ import annotations

import base64
import csv
import gzip
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from presize.cli import main
from presize.replay.metrics import Score
from presize.replay.report import Check, floor_checks, html_report, table, to_json
from presize.replay.runner import Coverage, PolicyResult, ReplayResult, run_replay
from presize.replay.series import REAL_UNITS, STEPS_PER_DAY, Series, TraceSet

GiB = 1024.0**3
POLICIES = ("vpa", "reactive", "presize", "oracle-1h")
STEPS = 2 * STEPS_PER_DAY
CONTRACT_POLICY_KEYS = {
    "cpu_slack", "mem_slack", "cpu_shortfall", "throttled_steps", "oom_events", "changes_per_day",
}
PNG = b"\x89PNG\r\n\x1a\n"


def tiny_trace() -> TraceSet:
    rng = np.random.default_rng(2024)
    series = []
    for i, (cpu, mem) in enumerate(((0.5, 1.0), (1.5, 2.0), (0.2, 0.5))):
        c = cpu * (1 + rng.normal(0, 0.05, STEPS))
        m = mem * GiB * (1 + rng.normal(0, 0.01, STEPS))
        if i == 1:
            m[400:] *= 1.5  # one memory step, so the OOM column has something to count
        series.append(Series(f"s{i}", cpu=c, mem=m, initial_cpu=cpu, initial_mem=mem * GiB))
    return TraceSet("tiny", REAL_UNITS, tuple(series))


@pytest.fixture(scope="module")
def trace() -> TraceSet:
    return tiny_trace()


@pytest.fixture(scope="module")
def results(trace: TraceSet) -> dict[int, ReplayResult]:
    return {w: run_replay(trace, POLICIES, workers=w) for w in (1, 2)}


@pytest.fixture(scope="module", params=[1, 2], ids=["workers-1", "workers-2"])
def result(request: pytest.FixtureRequest, results: dict[int, ReplayResult]) -> ReplayResult:
    return results[request.param]


def strict_json(text: str) -> object:
    def reject(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


# ------------------------------------------------------------------------------ run_replay
def test_run_replay_scores_every_policy(result: ReplayResult) -> None:
    assert list(result.policies) == list(POLICIES)
    for name, r in result.policies.items():
        assert r.name == name
        assert r.score.scored_steps == 3 * (STEPS - STEPS_PER_DAY)  # first day is warm-up
        assert r.seconds >= 0.0
        for value in r.score.as_dict().values():
            assert math.isfinite(value)
    assert result.plotted_series == (1, 0, 2)  # largest CPU users first
    assert set(result.policies["presize"].plotted) == {0, 1, 2}


def test_run_replay_gives_the_same_scores_with_one_or_two_workers(
    results: dict[int, ReplayResult],
) -> None:
    one, two = results[1], results[2]
    for name in POLICIES:
        assert one.policies[name].score == two.policies[name].score
        assert one.policies[name].coverage == two.policies[name].coverage


def test_run_replay_measures_interval_coverage_for_presize_only(result: ReplayResult) -> None:
    cov = result.policies["presize"].coverage
    assert cov is not None
    assert cov.total == {"cpu": 3 * STEPS_PER_DAY, "memory": 3 * STEPS_PER_DAY}
    assert 0.75 <= cov.ratio() <= 1.0
    for name in ("vpa", "reactive", "oracle-1h"):
        assert result.policies[name].coverage is None


def test_run_replay_oracle_is_never_short(result: ReplayResult) -> None:
    oracle = result.policies["oracle-1h"].score
    assert oracle.cpu_shortfall == 0.0
    assert oracle.oom_events == 0
    assert oracle.cpu_slack < result.policies["vpa"].score.cpu_slack


def test_run_replay_skips_static_without_provisioned_size(trace: TraceSet) -> None:
    said: list[str] = []
    res = run_replay(trace, ["static"], workers=1, progress=said.append)
    assert res.policies == {}
    assert any("skipping static" in m for m in said)


def test_run_replay_rejects_an_unknown_policy(trace: TraceSet) -> None:
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        run_replay(trace, ["nope"], workers=1)


# ------------------------------------------------------------------------------- to_json
def test_to_json_follows_the_contract(result: ReplayResult) -> None:
    doc = to_json(result)
    assert {"series", "steps", "policies", "presize_interval_coverage"} <= set(doc)
    assert doc["series"] == 3
    assert doc["steps"] == 3 * STEPS
    assert set(doc["policies"]) == set(POLICIES)
    for metrics in doc["policies"].values():
        assert set(metrics) >= CONTRACT_POLICY_KEYS
        for key in CONTRACT_POLICY_KEYS:
            assert isinstance(metrics[key], int | float)
            assert math.isfinite(metrics[key])
        assert isinstance(metrics["oom_events"], int)
    assert 0.0 <= doc["presize_interval_coverage"] <= 1.0
    assert strict_json(json.dumps(doc)) == doc


def test_to_json_has_no_coverage_without_presize(trace: TraceSet) -> None:
    res = run_replay(trace, ["reactive"], workers=1)
    doc = to_json(res)
    assert doc["presize_interval_coverage"] is None
    assert doc["floor"] == {}


# --------------------------------------------------------------------------------- table
def test_table_has_a_row_per_policy_and_the_floor_lines(result: ReplayResult) -> None:
    text = table(result)
    rows = {line.split()[0] for line in text.splitlines() if line.strip()}
    assert set(POLICIES) <= rows
    assert "presize 90% interval coverage" in text
    for check in floor_checks(result):
        mark = "[ok]" if check.passed else "[FAIL]"
        assert f"{mark} {check.name}: {check.detail}" in text


# --------------------------------------------------------------------------- floor_checks
def score(**kw: float) -> Score:
    base: dict[str, float] = {
        "cpu_slack": 0.3, "mem_slack": 0.3, "cpu_shortfall": 0.01, "mem_shortfall": 0.0,
        "throttled_steps": 0.01, "oom_events": 2, "oom_series": 1, "changes_per_day": 1.0,
        "scored_steps": 288,
    }
    base.update(kw)
    return Score(**base)  # type: ignore[arg-type]


def replayed(trace: TraceSet, **scores: Score) -> ReplayResult:
    policies = {n: PolicyResult(n, s, 0.0) for n, s in scores.items()}
    return ReplayResult(trace, policies, 0.0, ())


GOOD = score(cpu_slack=0.2, mem_slack=0.25, cpu_shortfall=0.005, oom_events=1)
VPA = score(cpu_slack=0.3, mem_slack=0.3, cpu_shortfall=0.01, oom_events=2)
REACTIVE = score(cpu_slack=0.25, mem_slack=0.2, cpu_shortfall=0.02, oom_events=3)
FIVE = [
    "cpu slack <= 0.8 x vpa", "cpu shortfall <= vpa", "mem slack <= vpa", "oom events <= vpa",
    "changes/day <= 48",
]


@pytest.mark.parametrize(
    ("scores", "failed"),
    [
        pytest.param({"presize": GOOD, "vpa": VPA, "reactive": REACTIVE}, set(), id="all-pass"),
        pytest.param({"presize": GOOD, "vpa": VPA}, set(), id="no-reactive"),
        pytest.param(
            {"presize": score(cpu_slack=0.24, mem_slack=0.3, cpu_shortfall=0.01, oom_events=2),
             "vpa": VPA},
            set(), id="ties-pass",
        ),
        pytest.param({"presize": score(cpu_slack=0.25, oom_events=1, mem_slack=0.2,
                                       cpu_shortfall=0.0), "vpa": VPA},
                     {"cpu slack <= 0.8 x vpa"}, id="cpu-slack"),
        pytest.param({"presize": score(cpu_slack=0.2, oom_events=5, mem_slack=0.2,
                                       cpu_shortfall=0.0), "vpa": VPA},
                     {"oom events <= vpa"}, id="ooms"),
        pytest.param({"presize": score(cpu_slack=0.2, oom_events=0, mem_slack=0.2,
                                       cpu_shortfall=0.0, changes_per_day=49.0), "vpa": VPA},
                     {"changes/day <= 48"}, id="flapping"),
        pytest.param(
            {"presize": GOOD, "vpa": VPA,
             "reactive": score(cpu_slack=0.1, mem_slack=0.1, cpu_shortfall=0.0, oom_events=0)},
            {"not dominated by reactive"}, id="dominated",
        ),
    ],
)
def test_floor_checks_pass_and_fail_on_each_rule(
    trace: TraceSet, scores: dict[str, Score], failed: set[str]
) -> None:
    checks = floor_checks(replayed(trace, **scores))
    names = [c.name for c in checks]
    assert names[:5] == FIVE
    assert ("not dominated by reactive" in names) == ("reactive" in scores)
    assert all(isinstance(c, Check) and isinstance(c.passed, bool) and c.detail for c in checks)
    assert {c.name for c in checks if not c.passed} == failed


@pytest.mark.parametrize("present", [("vpa",), ("presize",), ("reactive", "vpa"), ()])
def test_floor_checks_need_both_presize_and_vpa(trace: TraceSet, present: tuple[str, ...]) -> None:
    assert floor_checks(replayed(trace, **dict.fromkeys(present, VPA))) == []


def test_floor_checks_on_a_real_replay_are_pass_fail_lines(result: ReplayResult) -> None:
    checks = floor_checks(result)
    assert [c.name for c in checks] == [*FIVE, "not dominated by reactive"]


# ----------------------------------------------------------------------------------- HTML
def test_html_report_is_a_document_with_png_plots(results: dict[int, ReplayResult]) -> None:
    result = results[1]
    doc = html_report([result])
    assert doc.startswith("<!doctype html>")
    assert doc.rstrip().endswith("</html>")
    images = doc.split("<img src='data:image/png;base64,")[1:]
    assert len(images) == 1 + len(result.plotted_series)  # trade-off plot + one per series
    for img in images:
        assert base64.b64decode(img.split("'", 1)[0]).startswith(PNG)
    for name in POLICIES:
        assert f"<td>{name}</td>" in doc
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


# ------------------------------------------------------------------------------------ CLI
def write_google2011(folder: Path, *, jobs: int, days: int = 3, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    with gzip.open(folder / "jobs_5min.csv.gz", "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job_id", "day", "step", "minute_of_day", "cpu_util_pct", "mem_util_pct"])
        for job in range(1, jobs + 1):
            for day in range(days):
                for step in range(STEPS_PER_DAY):
                    cpu = job * (2.0 + 0.5 * math.sin(2 * math.pi * step / STEPS_PER_DAY))
                    w.writerow([job, day, step, step * 5,
                                round(cpu + rng.normal(0, 0.1), 4),
                                round(job * 1.0 + rng.normal(0, 0.01), 4)])
    return folder


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_replay_writes_json_and_html(tmp_path: Path, cli: Run) -> None:
    folder = write_google2011(tmp_path / "google2011", jobs=2)
    out_json, out_html = tmp_path / "out.json", tmp_path / "out.html"
    code, out, err = cli(
        "replay", "--traces", str(folder), "--limit", "2", "--workers", "1",
        "--json", str(out_json), "--report", str(out_html), "--policies", "vpa,reactive,presize",
    )
    assert code == 0, err
    doc = strict_json(out_json.read_text())
    assert isinstance(doc, dict)
    assert doc["series"] == 2
    assert doc["steps"] == 2 * 3 * STEPS_PER_DAY
    assert set(doc["policies"]) == {"vpa", "reactive", "presize"}
    for metrics in doc["policies"].values():
        assert set(metrics) >= CONTRACT_POLICY_KEYS
    assert 0.0 <= doc["presize_interval_coverage"] <= 1.0
    page = out_html.read_text()
    assert page.startswith("<!doctype html>")
    assert "<img src='data:image/png;base64," in page
    for name in ("vpa", "reactive", "presize"):
        assert name in out
    assert "2 series loaded" in err


def test_cli_replay_limits_series_and_accepts_a_parent_folder(tmp_path: Path, cli: Run) -> None:
    write_google2011(tmp_path / "traces" / "google2011", jobs=3)
    out_json = tmp_path / "out.json"
    code, _, err = cli(
        "replay", "--traces", str(tmp_path / "traces"), "--limit", "2", "--workers", "1",
        "--json", str(out_json), "--policies", "reactive",
    )
    assert code == 0, err
    doc = strict_json(out_json.read_text())
    assert isinstance(doc, dict)
    assert doc["trace"] == "google2011"
    assert doc["series"] == 2
    assert not (tmp_path / "out.html").exists()


def test_cli_replay_rejects_an_unknown_policy(tmp_path: Path, cli: Run) -> None:
    folder = write_google2011(tmp_path / "google2011", jobs=1)
    out_json = tmp_path / "out.json"
    code, out, err = cli(
        "replay", "--traces", str(folder), "--json", str(out_json), "--policies", "vpa,nope",
    )
    assert code == 2
    assert "nope" in err
    assert out == ""
    assert not out_json.exists()


def test_cli_replay_on_a_folder_without_traces_fails_with_a_message(
    tmp_path: Path, cli: Run
) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("nothing here\n")
    code, _, err = cli("replay", "--traces", str(tmp_path / "empty"), "--policies", "vpa")
    assert code == 2
    assert "no trace folders found" in err


def test_cli_replay_on_a_missing_folder_fails_with_a_message(tmp_path: Path, cli: Run) -> None:
    code, _, err = cli("replay", "--traces", str(tmp_path / "missing"), "--policies", "vpa")
    assert code == 2
    assert "missing" in err


def test_coverage_ratio_pools_resources() -> None:
    cov = Coverage(hits={"cpu": 9, "memory": 6}, total={"cpu": 10, "memory": 10})
    assert cov.ratio() == pytest.approx(0.75)
    assert cov.ratio("cpu") == pytest.approx(0.9)
    assert math.isnan(Coverage().ratio())
