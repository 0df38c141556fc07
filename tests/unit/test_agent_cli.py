"""The agent's command line: bad flags and environment fail at once, as one JSON line naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eks_capture_agent.identity import Identity, SettingError, identity_from_env

IDENTITY = {"CAPTURE_ID": "cap-20261125T120000Z-0a1b2c3d", "CLUSTER_NAME": "demo", "NODE_NAME": "node-1"}


def _agent(args: list[str], env: dict[str, str]) -> tuple[int, list[dict[str, object]]]:
    clean = {key: value for key, value in os.environ.items() if key not in {*IDENTITY, "INSTANCE_ID"}}
    done = subprocess.run(
        [sys.executable, "-m", "eks_capture_agent", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


CAPTURE = ["capture", "--spool", "{spool}", "--duration", "5"]
UPLOAD = ["upload", "--spool", "{spool}", "--bucket", "bucket1", "--prefix", "p/"]


@pytest.mark.parametrize(
    ("args", "env", "field", "mentions"),
    [
        (["capture", "--spool", "{spool}"], IDENTITY, "arguments", "--duration"),
        ([*CAPTURE, "--duration", "0"], IDENTITY, "arguments", "--duration"),
        ([*CAPTURE, "--snaplen", "300000"], IDENTITY, "arguments", "snaplen"),
        ([*CAPTURE, "--spool", "{spool}/missing"], IDENTITY, "--spool", "not a directory"),
        (
            [*CAPTURE, "--budget-bytes", "6000000", "--rotate-megabytes", "0"],
            IDENTITY,
            "--budget-bytes",
            "rotate",
        ),
        (
            [*CAPTURE, "--budget-bytes", "2000000", "--rotate-megabytes", "1"],
            IDENTITY,
            "--budget-bytes",
            "2072576",
        ),
        (CAPTURE, {}, "CAPTURE_ID", "not set"),
        (CAPTURE, IDENTITY | {"CAPTURE_ID": "x"}, "CAPTURE_ID", "'x'"),
        (CAPTURE, IDENTITY | {"INSTANCE_ID": "vm-1"}, "INSTANCE_ID", "vm-1"),
        ([*UPLOAD, "--prefix", "p"], IDENTITY, "--prefix", "end with '/'"),
        ([*UPLOAD, "--bucket", "Bad_Bucket"], IDENTITY, "--bucket", "Bad_Bucket"),
        (
            [*UPLOAD, "--compression", "gzip", "--compression-level", "12"],
            IDENTITY,
            "--compression-level",
            "12",
        ),
        ([*UPLOAD, "--compression", "lz4"], IDENTITY, "arguments", "lz4"),
    ],
)
def test_bad_settings_exit_2_with_one_structured_error_naming_the_field(
    tmp_path: Path, args: list[str], env: dict[str, str], field: str, mentions: str
) -> None:
    code, lines = _agent([arg.replace("{spool}", str(tmp_path)) for arg in args], env)
    assert code == 2
    [error] = lines
    assert error["level"] == "ERROR"
    assert error["field"] == field
    assert mentions in str(error["error"])
    assert list(tmp_path.iterdir()) == [], "nothing may start after a bad setting"


def test_help_lists_both_roles() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eks_capture_agent", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "capture" in done.stdout
    assert "upload" in done.stdout


def test_identity_comes_from_the_pod_environment() -> None:
    identity = identity_from_env(IDENTITY | {"INSTANCE_ID": "i-0123456789abcdef0"})
    assert identity == Identity(IDENTITY["CAPTURE_ID"], "demo", "node-1", "i-0123456789abcdef0")
    assert identity_from_env(IDENTITY | {"INSTANCE_ID": ""}).instance_id is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CAPTURE_ID", "cap-20261125T120000Z-0A1B2C3D"),
        ("CAPTURE_ID", "cap-2026-11-25-0a1b2c3d"),
        ("CLUSTER_NAME", "-demo"),
        ("NODE_NAME", "Node_1"),
        ("NODE_NAME", ""),
    ],
)
def test_malformed_identity_is_refused_by_variable_name(name: str, value: str) -> None:
    with pytest.raises(SettingError) as raised:
        identity_from_env(IDENTITY | {name: value})
    assert raised.value.field == name
