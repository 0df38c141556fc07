"""A function's cold start loads only what its events need first: alarms are rare, so most trigger starts
are cold, and what its handler module loads comes before the first tcpdump starts on the nodes.

The handler module is imported in a fresh interpreter as Lambda imports it (LAMBDA_TASK_ROOT set: the
X-Ray SDK samples locally and Powertools' Tracer patches), then the modules it loaded and the AWS clients
it made are read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from localcloud.template import PROJECT_ROOT

#: Modules other functions, other paths or none need: the trigger's handler module loads without them.
NOT_AT_TRIGGER_COLD_START = (
    "kubernetes.client.api",  # the generated API classes and their models, ~1.8 s: kube/calls.py does without
    "eks_capture.captures.reaper",  # the teardown's
    "eks_capture.pcap",  # the indexer's
    "zstandard",
    "eks_capture.report",  # the report function's
    "matplotlib",
    "eks_capture_cli",
)
ENVIRONMENT = {
    "CAPTURE_BUCKET": "captures",
    "CAPTURE_TABLE": "capture-index",
    "CAPTURE_IMAGE": "example.com/eks-capture@sha256:" + "0" * 64,
    "AWS_DEFAULT_REGION": "us-west-2",
}
_IMPORT_THE_HANDLER = """
import json, runpy, sys
handler = runpy.run_path(sys.argv[1])
print(json.dumps({"modules": sorted(sys.modules), "clients": sorted(vars(handler["deps"].aws))}))
"""


def _cold_start(function: str) -> dict[str, list[str]]:
    folder = PROJECT_ROOT / "functions" / function
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_THE_HANDLER, str(folder / "app.py")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **ENVIRONMENT, "LAMBDA_TASK_ROOT": str(folder)},
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    result: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return result


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The ``names`` loaded, each as itself or through one of its submodules."""
    return [name for name in names if any(m == name or m.startswith(f"{name}.") for m in modules)]


@pytest.fixture(scope="module")
def trigger_cold_start() -> dict[str, list[str]]:
    return _cold_start("trigger")


def test_the_trigger_loads_without_other_functions_modules(trigger_cold_start: dict[str, list[str]]) -> None:
    assert "eks_capture.captures.trigger" in trigger_cold_start["modules"]
    assert _loaded(trigger_cold_start["modules"], NOT_AT_TRIGGER_COLD_START) == []


def test_the_trigger_makes_only_the_index_client_at_cold_start(
    trigger_cold_start: dict[str, list[str]],
) -> None:
    assert trigger_cold_start["clients"] == ["dynamodb"]
