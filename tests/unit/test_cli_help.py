"""Every command explains itself with ``--help``, including an example to copy."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eks_capture_cli import app

COMMANDS = [info.name for info in app.registered_commands]


def test_every_command_is_registered() -> None:
    assert set(COMMANDS) == {
        "start",
        "stop",
        "list",
        "show",
        "pull",
        "merge",
        "report",
        "analyze",
        "path",
        "doctor",
        "manifests",
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_of_the_command(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert f"Example: eks-capture {command}" in result.stdout
