"""Every command explains itself with ``--help``, including an example to copy."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eks_capture_cli import app
from tests.fixtures.cli import CLI_COMMANDS, CLI_GROUPS

COMMANDS = [info.name for info in app.registered_commands]


def test_every_command_and_group_is_registered() -> None:
    assert set(COMMANDS) == CLI_COMMANDS
    assert {info.name for info in app.registered_groups} == CLI_GROUPS


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_of_the_command(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert f"Example: eks-capture {command}" in result.stdout
