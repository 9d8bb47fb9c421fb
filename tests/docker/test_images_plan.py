"""hack/docker/images.py without an engine: which files an image's hash covers, the tags and
archive names, and a run whose archives all exist. Pure (a tarball-free cache hit)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hack.docker.engine import REPO, base_image_tag
from hack.docker.images import (
    COMPONENTS,
    app_version,
    build_images,
    dockerfile_sources,
    input_hash,
    plan,
)

COMMON = ["pyproject.toml", "README.md", "hack/docker/requirements.py", "presize"]


def test_each_dockerfile_copies_the_core_and_its_own_component() -> None:
    for component in COMPONENTS:
        assert dockerfile_sources(REPO / f"Dockerfile.{component}") == [*COMMON, component]


def test_copy_forms_flags_and_other_stages(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM base AS build\n"
        "COPY --chown=1:1 a b \\\n  dest/\n"
        'COPY ["c d", "e"]\n'
        "add f /g\n"
        "COPY --from=build /opt /opt\n"
        "RUN echo COPY x y\n"
    )
    assert dockerfile_sources(dockerfile) == ["a", "b", "c d", "f"]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "presize").mkdir(parents=True)
    (repo / "agent").mkdir()
    (repo / "controller").mkdir()
    (repo / "Dockerfile.agent").write_text("FROM x\nCOPY pyproject.toml ./\nCOPY presize presize\n")
    (repo / "pyproject.toml").write_text("[project]\n")
    (repo / "presize" / "core.py").write_text("A = 1\n")
    (repo / "agent" / "main.py").write_text("B = 1\n")
    return repo


def test_the_hash_follows_copied_files_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path)

    def digest(base: str = "local/base:1") -> str:
        return input_hash("Dockerfile.agent", "presize/agent:1", base, repo)

    first = digest()
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    (repo / "agent" / "main.py").write_text("B = 2\n")  # not copied by this Dockerfile
    (repo / "presize" / "__pycache__").mkdir()
    (repo / "presize" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\0")
    assert digest() == first
    assert digest("local/base:2") != first
    (repo / "presize" / "core.py").write_text("A = 2\n")
    second = digest()
    assert second != first
    (repo / "presize" / "new.py").write_text("")
    assert digest() != second
    (repo / "presize" / "new.py").unlink()
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert digest() != second


def test_tags_are_the_charts_default_images(tmp_path: Path) -> None:
    version = app_version()
    values = (REPO / "charts" / "presize" / "values.yaml").read_text()
    images = plan(tmp_path, "local/base:1")
    assert [image.component for image in images] == list(COMPONENTS)
    for image in images:
        repository = f"presize/{image.component}"
        assert f"repository: {repository}\n" in values
        assert image.tag == f"{repository}:{version}"
        assert image.dockerfile == f"Dockerfile.{image.component}"
        pattern = rf"presize-{image.component}-{re.escape(version)}-[0-9a-f]{{12}}\.tar"
        assert re.fullmatch(pattern, image.archive.name)
        assert image.archive.parent == tmp_path


def test_existing_archives_need_no_engine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for image in plan(out, base_image_tag()):
        image.archive.write_bytes(b"not really an image")
    start = time.monotonic()
    result = build_images(
        out=out, docker_host="unix:///nonexistent/docker.sock", cache=tmp_path, log=print
    )
    assert time.monotonic() - start < 10
    assert result["cached"] is True
    version = app_version()
    assert result["images"] == {c: f"presize/{c}:{version}" for c in COMPONENTS}
    paths = (result["agent"], result["controller"], result["webhook"])
    assert [Path(p) for p in paths] == [image.archive for image in plan(out, base_image_tag())]
