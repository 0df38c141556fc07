"""What SAM builds into each layer is what the lock file pins, so Lambda runs what the tests ran."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ["export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header", "-q"]
# Each layer's requirements file and the `uv export` selection it is written from.
LAYERS = {
    "layers/requirements.txt": ["--no-default-groups"],
    "dependency-layers/kubernetes/requirements.txt": ["--only-group", "kubernetes-layer"],
    "dependency-layers/report/requirements.txt": ["--only-group", "report-layer"],
}


def _pinned(path: str) -> set[str]:
    return {line.split("==")[0] for line in (ROOT / path).read_text().splitlines() if "==" in line}


@pytest.mark.parametrize(("path", "selection"), LAYERS.items())
def test_layer_requirements_are_the_locked_dependencies_of_the_layer(path: str, selection: list[str]) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is installed by the Makefile's set-up"
    exported = subprocess.run(
        [uv, *EXPORT, *selection], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout

    assert (ROOT / path).read_text() == exported, f"run: uv {' '.join(EXPORT + selection)} -o {path}"


@pytest.mark.parametrize("path", LAYERS)
def test_no_layer_carries_cli_or_test_dependencies(path: str) -> None:
    assert not _pinned(path) & {"typer", "rich", "pytest", "moto", "mypy", "ruff"}


def test_the_shared_layer_leaves_the_kubernetes_client_and_plotting_to_their_own_layers() -> None:
    shared = _pinned("layers/requirements.txt")

    assert "kubernetes" not in shared
    assert "kubernetes" in _pinned("dependency-layers/kubernetes/requirements.txt")
    assert not shared & {"matplotlib", "numpy", "pillow"}
    assert "matplotlib" in _pinned("dependency-layers/report/requirements.txt")
