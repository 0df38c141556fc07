"""Each function imports only what its own layers ship, so the split layers stay under Lambda's 250 MB.

The handler module is imported in a fresh interpreter that can see the standard library, the function's
code and the packages of the layers the template gives it (Globals plus its own) — nothing else of this
virtualenv. A module that reaches for the Kubernetes client or matplotlib without the layer fails here,
not at its first cold start in AWS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

from localcloud.template import PROJECT_ROOT, load_template

TEMPLATE = load_template()
FUNCTIONS = [
    logical_id
    for logical_id, resource in TEMPLATE["Resources"].items()
    if isinstance(resource, dict) and resource["Type"] == "AWS::Serverless::Function"
]
ENVIRONMENT = {
    "CAPTURE_BUCKET": "captures",
    "CAPTURE_TABLE": "capture-index",
    "CAPTURE_IMAGE": "example.com/eks-capture@sha256:" + "0" * 64,
    "DEFAULT_CLUSTER": "shop-prod",
    "AWS_DEFAULT_REGION": "us-west-2",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
_IMPORT_WITH_ONLY_THE_LAYERS = """
import importlib, importlib.abc, importlib.machinery, json, os, sys, sysconfig

allowed = set(json.loads(sys.argv[1]))
stdlib = sysconfig.get_path("stdlib")
stdlib_dirs = [stdlib, os.path.join(stdlib, "lib-dynload")]

class OnlyTheLayers(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in allowed or top in sys.stdlib_module_names or top != name:
            return None
        if importlib.machinery.PathFinder.find_spec(name, stdlib_dirs) is not None:
            return None
        raise ModuleNotFoundError(f"No module named {name!r} in this function's layers", name=name)

sys.meta_path.insert(0, OnlyTheLayers())
sys.path.insert(0, sys.argv[2])
importlib.import_module(sys.argv[3])
"""


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _modules_of(requirements: Path) -> set[str]:
    """Top-level module names of the distributions a requirements file pins."""
    pinned = {
        _normalized(line.split("==")[0]) for line in requirements.read_text().splitlines() if "==" in line
    }
    return {
        module
        for module, distributions in packages_distributions().items()
        if any(_normalized(d) in pinned for d in distributions)
    }


def _own_modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.iterdir() if (p / "__init__.py").is_file() or p.suffix == ".py"}


def _layer_modules(layer_id: str) -> set[str]:
    """What a layer puts on the path: its source folder's packages and its requirements' modules."""
    folder = PROJECT_ROOT / TEMPLATE["Resources"][layer_id]["Properties"]["ContentUri"]
    return _own_modules(folder) | _modules_of(folder / "requirements.txt")


def _layers_of(function_id: str) -> list[str]:
    refs: list[dict[str, Any]] = [
        *TEMPLATE["Globals"]["Function"].get("Layers", []),
        *TEMPLATE["Resources"][function_id]["Properties"].get("Layers", []),
    ]
    return [ref["Ref"] for ref in refs]


def _import_with_only_the_layers(function_id: str, layers: list[str]) -> subprocess.CompletedProcess[str]:
    props = TEMPLATE["Resources"][function_id]["Properties"]
    code = PROJECT_ROOT / props["CodeUri"]
    allowed = _own_modules(code).union(*(_layer_modules(layer) for layer in layers))
    return subprocess.run(
        [
            sys.executable,
            "-c",
            _IMPORT_WITH_ONLY_THE_LAYERS,
            json.dumps(sorted(allowed)),
            str(code),
            props["Handler"].rsplit(".", 1)[0],
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **ENVIRONMENT},
        cwd=code,
        timeout=120,
    )


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_each_handler_loads_from_its_own_layers_alone(function_id: str) -> None:
    result = _import_with_only_the_layers(function_id, _layers_of(function_id))

    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("function_id", "missing"),
    [("TeardownFunction", "KubernetesLayer"), ("ReportFunction", "ReportLayer")],
)
def test_a_handler_without_its_dependency_layer_fails_to_load(function_id: str, missing: str) -> None:
    layers = [layer for layer in _layers_of(function_id) if layer != missing]

    result = _import_with_only_the_layers(function_id, layers)

    assert result.returncode != 0
    assert "in this function's layers" in result.stderr


def test_the_shared_layer_holds_the_domain_package_and_no_cli_code() -> None:
    folder = PROJECT_ROOT / TEMPLATE["Resources"]["SharedLayer"]["Properties"]["ContentUri"]
    sources = [path.relative_to(folder).as_posix() for path in folder.rglob("*.py")]

    assert _own_modules(folder) == {"eks_capture"}
    assert [source for source in sources if "cli" in source.split("/")] == []
    assert not (PROJECT_ROOT / "cli" / "eks_capture_cli").is_relative_to(folder)
