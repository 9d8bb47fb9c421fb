"""Build presize's three images the way users get them, saved as archives for a node to import.

    python -m hack.docker.images build [--out DIR] [--docker-host unix:///path/docker.sock]
    bash hack/images.sh                      # the same, after creating .venv if needed

Why: no registry can be reached here, so a Kubernetes node (``hack/cluster/realnode.py``) gets
presize's images from files, with ``ctr images import``. This builds ``Dockerfile.agent``,
``Dockerfile.controller`` and ``Dockerfile.webhook`` on the local base image
(``hack/docker/make-base-image.sh``: Debian minbase by debootstrap, no registry) exactly as the
docker tier's tests do (``hack/docker/engine.py``), tags them ``presize/<component>:<appVersion>``
with the ``appVersion`` of ``charts/presize/Chart.yaml`` (what the chart's default image values
resolve to, so an install needs no image override), and ``docker save``s each to
``$PRESIZE_CACHE/images/presize-<component>-<appVersion>-<hash>.tar`` (``PRESIZE_CACHE``
defaults to ``/var/cache/presize``; ``--out`` picks another folder). ``ctr -n k8s.io images
import <archive>`` names the image ``docker.io/presize/<component>:<appVersion>``, which is
what the kubelet resolves the chart's ``presize/<component>:<appVersion>`` to (the chart's
``pullPolicy: IfNotPresent`` then runs it without a pull); ``docker load -i`` works as well.

Why the hash: it covers everything the image is made of - the Dockerfile, each file it
``COPY``s from the repository (pyproject.toml, README.md, hack/docker/requirements.py, and the
source trees ``presize/`` plus the component's own), the base image's tag (a hash of its recipe)
and the image's tag - so an archive that exists is current, and a second run returns at once
without starting an engine. Older archives of a component are deleted when a new one is written.

The engine: a private dockerd (socket, exec root and pidfile in a short ``/tmp`` folder, no
bridge, no iptables) started only when something must be built and stopped by its pid, or the
engine ``--docker-host`` names. The private engine's data root is kept in
``$PRESIZE_CACHE/docker-root``, so a rebuild after a source change reuses the base image and the
layers that pip installed (they depend only on pyproject.toml, README.md and
hack/docker/requirements.py); the image a rebuild replaces is removed from it.

The last line printed (stdout) is one JSON object: ``{"agent": archive, "controller": archive,
"webhook": archive, "images": {component: tag}, "seconds": s, "cached": bool}``; progress goes to
stderr. :func:`build_images` returns the same object. Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn, TypedDict

from hack.docker.engine import (
    REPO,
    Dockerd,
    DockerError,
    Engine,
    base_image_tag,
    build_image,
    engine_at,
    import_base_image,
    new_dockerd,
)

COMPONENTS: Final = ("agent", "controller", "webhook")
CHART: Final = REPO / "charts" / "presize" / "Chart.yaml"
# Bump when the way an image is built or saved changes, so that older archives are not reused.
RECIPE: Final = "1"
SKIP_DIRS: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})


class BuildResult(TypedDict):
    agent: str
    controller: str
    webhook: str
    images: dict[str, str]
    seconds: float
    cached: bool


@dataclass(frozen=True)
class Image:
    """One component's image: its Dockerfile, tag and archive."""

    component: str
    dockerfile: str
    tag: str
    archive: Path


def default_cache() -> Path:
    return Path(os.environ.get("PRESIZE_CACHE") or "/var/cache/presize")


def app_version(chart: Path = CHART) -> str:
    """``appVersion`` of the chart (the chart's default image tag)."""
    for line in chart.read_text(encoding="utf-8").splitlines():
        match = re.match(r"""appVersion:\s*["']?([^"'\s#]+)""", line)
        if match:
            return match.group(1)
    raise DockerError(f"no appVersion in {chart}")


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The build-context paths ``dockerfile`` copies (``COPY``/``ADD`` without ``--from``)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    sources: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1]
        flags: list[str] = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.lstrip()
        if any(flag.startswith("--from") for flag in flags):
            continue
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        sources.extend(str(arg) for arg in args[:-1])
    return sources


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".pyc"):
                yield Path(dirpath) / name


def input_hash(dockerfile: str, tag: str, base_tag: str, repo: Path = REPO) -> str:
    """12 hex digits of a SHA-256 over the recipe, the tags, the Dockerfile and every file it
    copies from ``repo`` (path, executable bit, content)."""
    digest = hashlib.sha256()
    digest.update(f"recipe {RECIPE}\ntag {tag}\nbase {base_tag}\n".encode())
    path = repo / dockerfile
    files = [path]
    for source in dockerfile_sources(path):
        if not (repo / source).exists():
            raise DockerError(f"{dockerfile} copies {source}, which does not exist in {repo}")
        files.extend(_files(repo / source))
    for file in files:
        rel = file.relative_to(repo).as_posix()
        executable = "x" if os.access(file, os.X_OK) else "-"
        content = hashlib.sha256(file.read_bytes()).hexdigest()
        digest.update(f"{rel}\0{executable}\0{content}\n".encode())
    return digest.hexdigest()[:12]


def plan(out: Path, base_tag: str, version: str | None = None, repo: Path = REPO) -> list[Image]:
    """The three images and the archives that hold them for the current inputs."""
    version = version or app_version(repo / "charts" / "presize" / "Chart.yaml")
    images = []
    for component in COMPONENTS:
        dockerfile = f"Dockerfile.{component}"
        tag = f"presize/{component}:{version}"
        digest = input_hash(dockerfile, tag, base_tag, repo)
        archive = out / f"presize-{component}-{version}-{digest}.tar"
        images.append(Image(component, dockerfile, tag, archive))
    return images


def _result(images: list[Image], seconds: float, cached: bool) -> BuildResult:
    paths = {image.component: str(image.archive) for image in images}
    return BuildResult(
        agent=paths["agent"],
        controller=paths["controller"],
        webhook=paths["webhook"],
        images={image.component: image.tag for image in images},
        seconds=round(seconds, 1),
        cached=cached,
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build at a time per cache (archives and the private engine's data root)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _image_id(engine: Engine, tag: str) -> str | None:
    proc = engine.run("image", "inspect", "--format", "{{.Id}}", tag, check=False, timeout=60)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _digest(image: Image) -> str:
    return image.archive.name.removesuffix(".tar").rsplit("-", 1)[1]


def _drop_older_archives(image: Image) -> None:
    """Delete the component's other archives (and what an interrupted save left)."""
    pattern = re.compile(rf"presize-{image.component}-.+-[0-9a-f]{{12}}\.tar(\.partial)?")
    for old in image.archive.parent.glob(f"presize-{image.component}-*.tar*"):
        if old != image.archive and pattern.fullmatch(old.name):
            old.unlink(missing_ok=True)


def _save(
    engine: Engine,
    image: Image,
    *,
    base: str,
    repo: Path,
    private: bool,
    log: Callable[[str], None],
) -> None:
    """Build ``image`` on ``base`` from ``repo`` and write its archive (through a temporary
    name, so an archive that exists is complete)."""
    old_id = _image_id(engine, image.tag)
    log(f"building {image.tag} from {image.dockerfile}")
    took = build_image(engine, image.dockerfile, image.tag, base, repo)
    new_id = _image_id(engine, image.tag)
    size = int(str(engine.inspect_image(image.tag)["Size"])) / 1e6
    log(f"built {image.tag} in {took:.0f} s ({size:.0f} MB); saving {image.archive}")
    image.archive.parent.mkdir(parents=True, exist_ok=True)
    partial = image.archive.with_name(image.archive.name + ".partial")
    engine.run("save", "-o", str(partial), image.tag, timeout=600)
    partial.chmod(0o644)  # docker save writes 0600; the archives are no secret
    partial.replace(image.archive)
    _drop_older_archives(image)
    if input_hash(image.dockerfile, image.tag, base, repo) != _digest(image):
        # Named for the sources as they were when the build began; the next run sees another
        # hash and builds again.
        log(f"warning: {image.dockerfile}'s inputs changed during its build; run again")
    if private and old_id and old_id != new_id:
        # The replaced image would only fill the kept data root; the pip layers it shares with
        # the new one stay.
        engine.run("image", "rm", old_id, check=False, timeout=120)


def _stderr(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def build_images(
    *,
    out: Path | None = None,
    docker_host: str | None = None,
    cache: Path | None = None,
    repo: Path = REPO,
    log: Callable[[str], None] = _stderr,
) -> BuildResult:
    """Make sure the archives of the three images exist for the current sources; build and
    save those that do not (see the module's docstring). ``out``: the archives' folder
    (default ``<cache>/images``); ``docker_host``: an engine's unix socket to use instead of a
    private dockerd; ``cache``: default ``$PRESIZE_CACHE`` or ``/var/cache/presize``;
    ``repo``: the build context, whose Dockerfiles, sources and chart are used (default this
    checkout; the base image always comes from this checkout's make-base-image.sh).
    Raises :class:`~hack.docker.engine.DockerError` (or its subclass
    ``DockerUnavailableError`` when dockerd, root or debootstrap is missing)."""
    start = time.monotonic()
    cache = cache or default_cache()
    out = out or cache / "images"
    env = {**os.environ, "PRESIZE_CACHE": str(cache)}
    base_tag = base_image_tag(env)
    with _locked(cache / "images.lock"):
        images = plan(out, base_tag, repo=repo)
        missing = [image for image in images if not image.archive.is_file()]
        if not missing:
            log(f"all three archives are current in {out}")
            return _result(images, time.monotonic() - start, cached=True)
        daemon: Dockerd | None = None
        try:
            if docker_host:
                engine = engine_at(docker_host)
            else:
                log(f"starting a private dockerd (data root {cache / 'docker-root'})")
                daemon = new_dockerd("presize-img-", cache / "docker-root")
                engine = daemon.engine
            log("base image (make-base-image.sh; debootstrap when its tarball is not cached)")
            base = import_base_image(engine, cache)
            if base != base_tag:
                raise DockerError(f"make-base-image.sh made {base}, announced {base_tag}")
            for image in missing:
                _save(engine, image, base=base, repo=repo, private=daemon is not None, log=log)
        finally:
            if daemon is not None:
                log(f"stopping the private dockerd (pid {daemon.pid})")
                daemon.cleanup()
        return _result(images, time.monotonic() - start, cached=False)


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds, so the private engine is stopped by its pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hack.docker.images", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build and save the images whose archive is missing")
    build.add_argument(
        "--out", type=Path, help="folder of the archives (default $PRESIZE_CACHE/images)"
    )
    build.add_argument(
        "--docker-host",
        help="use this engine (unix:///path or a socket path) instead of a private dockerd",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = build_images(out=args.out, docker_host=args.docker_host)
    except (DockerError, subprocess.TimeoutExpired) as exc:
        _stderr(f"failed: {exc}")
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
