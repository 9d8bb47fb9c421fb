"""``presize`` command line: ``presize replay`` today; the agent, controller and webhook
subcommands are the composition roots of their packages and arrive with them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from presize.errors import PresizeError


def _trace_folders(root: Path) -> list[Path]:
    """``root`` itself when it is a trace folder, else its trace subfolders (sorted)."""
    def is_trace(p: Path) -> bool:
        return (
            (p / "jobs_5min.csv.gz").exists()
            or (p / "instances_5min_long.csv.gz").exists()
            or any(p.glob("*/*.csv.gz"))
        )

    if not root.is_dir():
        raise PresizeError(f"{root}: not a folder")
    if is_trace(root) and not any(is_trace(c) for c in root.iterdir() if c.is_dir()):
        return [root]
    found = [c for c in sorted(root.iterdir()) if c.is_dir() and is_trace(c)]
    if not found:
        raise PresizeError(f"{root}: no trace folders found")
    return found


def curve_variants() -> dict[str, object]:
    """presize's settings swept along one knob (the buffer) for the slack-vs-risk curve."""
    from presize.replay.presize_policy import PresizeReplaySettings

    base = PresizeReplaySettings()
    return {
        f"presize@buffer={b}": replace(base, policy=replace(base.policy, buffer=b))
        for b in (1.0, 1.05, 1.2, 1.35)
    }


def cmd_replay(args: argparse.Namespace) -> int:
    from presize.replay.loaders import load_traces
    from presize.replay.report import floor_checks, html_report, table, to_json
    from presize.replay.runner import KNOWN_POLICIES, run_replay

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in KNOWN_POLICIES]
    if unknown:
        print(f"presize replay: unknown policies {unknown}; known: {KNOWN_POLICIES}",
              file=sys.stderr)
        return 2
    variants = curve_variants() if args.curve else None
    results = []
    for folder in _trace_folders(Path(args.traces)):
        trace = load_traces(folder, limit=args.limit)
        if not trace.series:
            raise PresizeError(f"{folder}: no series long enough to replay")
        print(f"{trace.name}: {len(trace.series)} series loaded", file=sys.stderr, flush=True)
        result = run_replay(
            trace, policies, presize_variants=variants,  # type: ignore[arg-type]
            workers=args.workers,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
        print(table(result), flush=True)
        print(flush=True)
        results.append(result)
    payloads = [to_json(r) for r in results]
    total = sum(r.seconds for r in results)
    doc: dict[str, object]
    if len(payloads) == 1:
        doc = payloads[0]
    else:
        doc = {"traces": {p["trace"]: p for p in payloads}, "seconds": round(total, 1)}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if args.report:
        Path(args.report).write_text(html_report(results))
        print(f"report written to {args.report}", file=sys.stderr)
    print(f"replayed {len(results)} trace folder(s) in {total:.0f} s", file=sys.stderr)
    failed = [c for r in results for c in floor_checks(r) if not c.passed]
    if args.strict and failed:
        return 1
    return 0


def run_component(name: str, argv: Sequence[str]) -> int:
    """Run a deployable (agent, controller, webhook) found through its entry point.

    The core must not import the components (an import-linter contract), so each component
    registers ``main(argv) -> int`` under the ``presize.components`` entry-point group in
    pyproject.toml and the CLI finds it at run time.
    """
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="presize.components") if ep.name == name]
    if not found:
        print(f"presize {name}: this component is not installed in this build", file=sys.stderr)
        return 2
    try:
        main_fn = found[0].load()
    except ImportError as exc:
        print(f"presize {name}: cannot load ({exc}); install presize[{name}]", file=sys.stderr)
        return 2
    return int(main_fn(list(argv)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="presize", description="Predictive right-sizing for Kubernetes containers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="replay sizing policies over real usage traces")
    rp.add_argument("--traces", required=True,
                    help="a trace folder, or a folder of them (../shared/traces layout)")
    rp.add_argument("--policies",
                    default="static,vpa,autopilot,reactive,presize,oracle-1h,oracle-24h")
    rp.add_argument("--limit", type=int, default=None, help="at most N series per trace")
    rp.add_argument("--json", help="write the results as JSON to this file")
    rp.add_argument("--report", help="write an HTML report with plots to this file")
    rp.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    rp.add_argument("--curve", action="store_true",
                    help="also replay presize at several buffers (slack-vs-risk curve)")
    rp.add_argument("--strict", action="store_true",
                    help="exit 1 when presize misses the floor against VPA or reactive")
    rp.set_defaults(func=cmd_replay)
    for name in COMPONENTS:
        p = sub.add_parser(name, help=f"run the {name}; flags after it go to the {name}",
                           add_help=False)
        p.set_defaults(component=name)
    return parser


COMPONENTS = ("agent", "controller", "webhook")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMPONENTS:
        return run_component(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PresizeError as exc:
        print(f"presize: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
