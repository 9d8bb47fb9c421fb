"""``python -m hack.demo``: run the demo (see :mod:`hack.demo`), or clean up after a killed one.

    python -m hack.demo [--minutes 6] [--report out/demo.html] [--results out/demo.json]
                        [--workdir DIR] [--time-scale 288] [--nodes 2] [--real-node]
    python -m hack.demo --down --workdir DIR     # stop what a SIGKILLed demo left running

Needs root (the node shim creates cgroups) and the cluster binaries (built on first use by
``hack/cluster/build.sh``, about ten minutes). ``--real-node`` runs the same scenario on one
real kubelet node (``hack/cluster/realnode.py``) with presize installed by its Helm chart
(:mod:`hack.demo.realstack`); it also needs the Debian packages of ``hack/prereqs.sh`` and
builds presize's images on first use. ``--nodes`` and ``--node-prefix`` apply to the shim only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hack.demo.procs import STATE_FILE, down


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hack.demo", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=6.0, help="how long to watch (default 6)")
    p.add_argument("--report", type=Path, default=Path("out/demo.html"))
    p.add_argument("--results", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--workdir", type=Path, default=None, help="default: a new temporary dir")
    p.add_argument(
        "--time-scale",
        type=float,
        default=288.0,
        help="the controller's time compression (288: a virtual day lasts 5 minutes)",
    )
    p.add_argument("--nodes", type=int, default=2, choices=(1, 2, 3), help="shim nodes")
    p.add_argument(
        "--node-prefix",
        default="demo-shim-",
        help="shim node names (cgroups go under /sys/fs/cgroup/*/presize-shim/<node>)",
    )
    p.add_argument(
        "--real-node",
        action="store_true",
        help="run on a real kubelet node with presize installed by its Helm chart "
        "(instead of the node shim)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also print applied resizes")
    p.add_argument("--down", action="store_true", help="stop a killed demo's processes")
    args = p.parse_args(argv)
    if args.down:
        if args.workdir is None:
            p.error("--down needs --workdir")
        stopped = down(args.workdir / STATE_FILE)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.minutes <= 0 or args.time_scale < 1:
        p.error("--minutes must be > 0 and --time-scale >= 1")
    from hack.demo.run import run  # the heavy imports only when running

    return run(
        minutes=args.minutes,
        time_scale=args.time_scale,
        nodes=args.nodes,
        node_prefix=args.node_prefix,
        workdir=args.workdir,
        report=args.report,
        results=args.results,
        verbose=args.verbose,
        real_node=args.real_node,
    )


if __name__ == "__main__":
    sys.exit(main())
