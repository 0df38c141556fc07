"""The CLI as an operator installs it: a wheel of this tree in a fresh virtualenv, no editable install.

The editable install the other tests use sees every folder of the checkout, so a package missing from the
wheel only shows here. The wheel is built from a copy of the tree (setuptools writes build/ and
*.egg-info next to the sources) and installed with its ``cli`` extra, as ``pipx install``/``uv tool
install`` would; its console script then analyses a capture real tcpdump wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.cli import CLI_COMMANDS, CLI_GROUPS
from tests.fixtures.traffic import Captures

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: What the wheel is built from: pyproject's package roots and the files its metadata names.
SOURCES = ("pyproject.toml", "README.md", "layers", "cli", "capture-image", "localcloud")
#: The importable roots and the folders that hold them (pyproject's packages.find).
PACKAGE_ROOTS = {
    "eks_capture": ROOT / "layers" / "eks_capture",
    "eks_capture_cli": ROOT / "cli" / "eks_capture_cli",
    "eks_capture_agent": ROOT / "capture-image" / "eks_capture_agent",
    "localcloud": ROOT / "localcloud",
}


def _uv() -> str:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (make env installs it)"
    return uv


def _run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=cwd, env=env)
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``uv build --wheel`` of a copy of this tree."""
    tree = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "*.so")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=ignore)
        else:
            shutil.copy2(source, tree / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--wheel", "--out-dir", str(dist), str(tree)])
    (built,) = dist.glob("eks_capture-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its ``cli`` extra; its bin directory."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)])
    _run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), f"{wheel}[cli]"])
    return venv / "bin"


def _outside_the_checkout(bin_dir: Path) -> dict[str, str]:
    """An environment in which only the virtualenv's packages can be imported (no PYTHONPATH, no checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _packages_in(folder: Path, name: str) -> set[str]:
    return {
        ".".join([name, *init.parent.relative_to(folder).parts])
        for init in folder.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_the_wheel_holds_every_package_of_the_tree_and_the_cli_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = {n.rpartition("/")[2]: archive.read(n).decode() for n in names if ".dist-info/" in n}
    in_wheel = {n.removesuffix("/__init__.py").replace("/", ".") for n in names if n.endswith("/__init__.py")}
    in_tree = set().union(*(_packages_in(folder, name) for name, folder in PACKAGE_ROOTS.items()))
    assert in_wheel == in_tree
    # The C merge, built against 3.11's stable ABI (requires-python): one wheel for every CPython from
    # 3.11 on, whichever Python built it; compiled, so for this platform only (not py3-none-any).
    assert [n for n in names if n.endswith(".so")] == ["eks_capture_cli/_merge_core.abi3.so"]
    python_tag, abi_tag, platform_tag = wheel.name.removesuffix(".whl").split("-")[-3:]
    assert (python_tag, abi_tag) == ("cp311", "abi3")
    assert platform_tag != "any"
    assert f"Tag: cp311-abi3-{platform_tag}\n" in info["WHEEL"]
    assert "Provides-Extra: cli" in info["METADATA"]
    assert "eks-capture = eks_capture_cli:main" in info["entry_points.txt"]


def test_the_installed_command_shows_its_help_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    done = _run(
        [str(installed / "eks-capture"), "--help"], cwd=tmp_path, env=_outside_the_checkout(installed)
    )

    for command in sorted(CLI_COMMANDS | CLI_GROUPS):
        assert f" {command} " in done.stdout


def test_the_installed_command_analyses_and_merges_a_real_capture_as_tshark_counts_it(
    installed: Path, faulty_captures: Captures, tmp_path: Path
) -> None:
    pcap = faulty_captures["ethernet.pcap"]
    env = _outside_the_checkout(installed)

    done = _run([str(installed / "eks-capture"), "analyze", str(pcap), "--json"], cwd=tmp_path, env=env)

    summary = json.loads(done.stdout)
    frames = _run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.number"]).stdout.split()
    resets = _run(
        ["tshark", "-r", str(pcap), "-Y", "tcp.flags.reset == 1", "-T", "fields", "-e", "frame.number"]
    )
    assert summary["packets"] == len(frames) > 0
    assert summary["tcp"]["resets"] == len(resets.stdout.split()) > 0
    assert summary["findings"], "the faulty traffic has findings"
    nodes = [str(shutil.copy(pcap, tmp_path / f"{node}.pcap")) for node in ("node-a", "node-b")]
    _run([str(installed / "eks-capture"), "merge", *nodes, "-o", "merged.pcapng"], cwd=tmp_path, env=env)
    merged = _run(["tshark", "-r", str(tmp_path / "merged.pcapng"), "-T", "fields", "-e", "frame.number"])
    assert len(merged.stdout.split()) == 2 * len(frames)
    where = _run(
        [str(installed / "python"), "-c", "import eks_capture_cli._merge_core as m; print(m.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    assert not Path(where.stdout.strip()).is_relative_to(ROOT)
