"""What SAM builds into the layer is what the lock file pins, so Lambda runs what the tests ran."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_requirements_are_the_locked_runtime_dependencies() -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is installed by the Makefile's set-up"
    exported = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-default-groups",
            "--no-hashes",
            "--no-emit-project",
            "--no-header",
            "-q",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    committed = (ROOT / "layers" / "requirements.txt").read_text()
    assert committed == exported, (
        "run: uv export --frozen --no-default-groups --no-hashes --no-emit-project "
        "--no-header -o layers/requirements.txt"
    )


def test_layer_carries_no_cli_or_test_dependencies() -> None:
    pinned = {
        line.split("==")[0]
        for line in (ROOT / "layers" / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert not pinned & {"typer", "rich", "pytest", "moto", "mypy", "ruff"}
