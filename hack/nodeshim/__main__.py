"""``python -m hack.nodeshim --kubeconfig K --node NAME [--node NAME2] [--cgroup-root DIR]``.

Runs the shim in the foreground until Ctrl-C or SIGTERM, then kills its load processes (by
pid), removes its cgroups and, unless ``--keep-nodes``, deletes the nodes it registered.
Needs root (it creates cgroups). Example with the local cluster::

    python -m hack.cluster.localcluster up --dir /tmp/c1 --no-resize-stage &
    sudo python -m hack.nodeshim --kubeconfig /tmp/c1/admin.kubeconfig --node shim-0
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from hack.nodeshim.cgroupfs import CgroupError
from hack.nodeshim.kube import KubeError
from hack.nodeshim.node import NodeSpec
from hack.nodeshim.shim import NodeShim, ShimConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.nodeshim", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--node", action="append", required=True, help="repeat for more nodes")
    parser.add_argument("--cgroup-root", type=Path, default=Path("/sys/fs/cgroup"))
    parser.add_argument("--node-cpu", default="4", help="capacity = allocatable (default 4)")
    parser.add_argument("--node-memory", default="8Gi")
    parser.add_argument("--node-pods", default="110")
    parser.add_argument("--no-taint", action="store_true", help="leave the nodes schedulable")
    parser.add_argument("--keep-nodes", action="store_true", help="do not delete them on exit")
    parser.add_argument("--restart-backoff", type=float, default=1.0, help="seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    config = ShimConfig(
        node=NodeSpec(
            cpu=args.node_cpu, memory=args.node_memory, pods=args.node_pods, taint=not args.no_taint
        ),
        cgroup_root=args.cgroup_root,
        delete_nodes_on_stop=not args.keep_nodes,
        restart_backoff_s=args.restart_backoff,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        shim = NodeShim(args.kubeconfig, args.node, config)
        with shim:
            for name in args.node:
                print(f"node {name}: cgroups under {shim.cgroup_base(name)}", flush=True)
            while not done.wait(1.0):
                pass
    except (CgroupError, KubeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("node shim stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
