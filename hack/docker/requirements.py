"""Print the requirements of one image, one per line, read from pyproject.toml.

    python3 hack/docker/requirements.py --extra webhook --exclude numpy

The core dependencies plus those of the named extras, minus the excluded distributions. The
webhook image passes ``--exclude numpy`` as a guard: the webhook imports no forecaster
(DESIGN.md, rule 5), and numpy comes only with the forecasting extras, so nothing should need
excluding; if an extra ever pulls numpy back in, the image still stays without it. The image
then installs presize itself with ``--no-deps``.
Stdlib only (runs in the bare base image before anything is installed).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path
from typing import Any


def requirement_name(spec: str) -> str:
    """The normalised distribution name of a requirement string ("presize[x]>=1" -> "presize")."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not match:
        raise ValueError(f"not a requirement: {spec!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: dict[str, Any], extras: list[str], exclude: set[str]) -> list[str]:
    project = pyproject["project"]
    own = requirement_name(project["name"])
    optional = project.get("optional-dependencies", {})
    out: list[str] = []
    pending = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; known: {sorted(optional)}")
        pending.extend(optional[extra])
    while pending:
        spec = pending.pop(0)
        name = requirement_name(spec)
        if name == own:  # a self-reference like "presize[agent]": expand its extras
            inner = re.search(r"\[([^\]]*)\]", spec)
            for extra in (inner.group(1).split(",") if inner else []):
                pending.extend(optional.get(extra.strip(), []))
            continue
        if name not in exclude and spec not in out:
            out.append(spec)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", default="pyproject.toml")
    parser.add_argument("--extra", action="append", default=[], help="repeatable")
    parser.add_argument("--exclude", action="append", default=[], help="repeatable")
    args = parser.parse_args(argv)
    data = tomllib.loads(Path(args.pyproject).read_text(encoding="utf-8"))
    exclude = {requirement_name(e) for e in args.exclude}
    for line in requirements(data, args.extra, exclude):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
