"""Every command explains itself with ``--help``, including an example to copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eks_capture_cli import COMMANDS, GROUPS, app
from tests.fixtures.cli import CLI_COMMANDS, CLI_GROUPS
from tests.fixtures.packets import Packet, dns, ethernet, ipv4, pcap, udp


def test_every_command_and_group_is_registered() -> None:
    assert set(COMMANDS) == CLI_COMMANDS
    assert set(GROUPS) == CLI_GROUPS


#: Modules only other commands need: ``eks-capture merge`` starts without them (~0.9 s of CPU on 2 cores).
#: pydantic also comes with typer from 0.29 on, which coerces each parameter through a TypeAdapter
#: (typer._adapters): a whole ``eks-capture merge`` of two small files took 0.15 s with it, 0.06 s on 0.28.
NOT_FOR_MERGE = (
    "boto3",
    "botocore",
    "kubernetes",
    "yaml",
    "rich",
    "pydantic",
    "typer._adapters",
    "eks_capture.pcap.models",
)
STARTS_MERGE = """
import json, sys
from eks_capture_cli import main
sys.argv = ["eks-capture", "merge", *sys.argv[1:]]
try:
    main()
finally:
    print(json.dumps(sorted(sys.modules)))
"""


def test_merge_starts_without_the_other_commands_modules(tmp_path: Path) -> None:
    capture = tmp_path / "a.pcap"
    capture.write_bytes(pcap([Packet(1_000_000_000, ethernet(ipv4(udp(dns(1)))))]))

    done = subprocess.run(
        [sys.executable, "-c", STARTS_MERGE, str(capture), "-o", str(tmp_path / "out.pcapng")],
        capture_output=True,
        text=True,
        check=True,
    )

    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "eks_capture_cli.merge" in loaded
    assert [name for name in NOT_FOR_MERGE if name in loaded] == []


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_of_the_command(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert f"Example: eks-capture {command}" in result.stdout


def test_a_mistyped_command_is_answered_with_the_command_meant() -> None:
    result = CliRunner().invoke(app, ["merg"], env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert "No such command 'merg'. Did you mean 'merge'?" in result.stderr
