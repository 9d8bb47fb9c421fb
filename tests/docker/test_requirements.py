"""hack/docker/requirements.py: what each image installs, read from pyproject.toml. Pure; runs
without a Docker Engine."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hack.docker.requirements import requirement_name, requirements

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def names(specs: list[str]) -> set[str]:
    return {requirement_name(s) for s in specs}


def test_webhook_image_requirements_have_no_forecasting_stack() -> None:
    got = names(requirements(PYPROJECT, ["webhook"], {"numpy"}))
    assert {"aiohttp", "cryptography", "msgpack"} <= got
    assert not {"numpy", "statsmodels", "scipy", "pandas", "matplotlib"} & got


def test_agent_and_controller_requirements() -> None:
    assert {"psutil", "numpy", "msgpack"} <= names(requirements(PYPROJECT, ["agent"], set()))
    assert "statsmodels" in names(requirements(PYPROJECT, ["controller"], set()))


def test_self_references_expand_and_names_normalise() -> None:
    project = {
        "project": {
            "name": "presize",
            "dependencies": ["Foo_Bar>=1"],
            "optional-dependencies": {"a": ["x"], "b": ["presize[a]", "y"]},
        }
    }
    assert requirements(project, ["b"], {"foo-bar"}) == ["y", "x"]
    assert requirement_name("Foo_Bar.baz[extra]>=1; python_version>'3'") == "foo-bar-baz"
