"""The ``eks-capture`` console command: one typer app, each command in its own module."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import typer
from typer._click import Command, Context
from typer._click.exceptions import ClickException
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from eks_capture_cli.failures import EXIT_FAILED

#: Each command's module and function, in --help's order. A module is imported when its command runs
#: (or --help lists them all): ``eks-capture merge`` then starts without boto3, kubernetes, yaml, rich
#: and the summaries' pydantic models, which the other commands' modules load (~0.9 s of CPU).
COMMANDS = {
    "start": ("requests", "start"),
    "stop": ("requests", "stop"),
    "list": ("browse", "list_captures"),
    "show": ("browse", "show"),
    "pull": ("pull", "pull"),
    "merge": ("merging", "merge"),
    "report": ("report", "report"),
    "analyze": ("analyze", "analyze"),
    "path": ("paths", "path"),
    "doctor": ("doctor", "doctor"),
    "manifests": ("cluster_manifests", "manifests"),
}
#: Each command group's module and typer app, imported as the commands' are.
GROUPS = {"recorder": ("recorders", "app")}


class _OnDemand(TyperGroup):
    """The root group: builds a command from its module (``COMMANDS``, ``GROUPS``) when asked for it."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*COMMANDS, *GROUPS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        found = self.commands.get(cmd_name)
        if found is None and cmd_name in COMMANDS:
            module, function = COMMANDS[cmd_name]
            callback = getattr(importlib.import_module(f"{__name__}.{module}"), function)
            found = get_command_from_info(
                CommandInfo(name=cmd_name, callback=callback),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode,
            )
        elif found is None and cmd_name in GROUPS:
            module, attribute = GROUPS[cmd_name]
            group = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
            found = get_group_from_info(
                TyperInfo(group, name=cmd_name),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode,
                suggest_commands=self.suggest_commands,
            )
        if found is not None:
            self.commands[cmd_name] = found
        return found


app = typer.Typer(
    name="eks-capture",
    help="Packet captures on EKS: start, follow, list, pull, merge, report and localize loss; analyse files; "
    "check a cluster is ready (doctor).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OnDemand,
)


@app.callback()
def root() -> None:
    """Packet captures on EKS, from the terminal.

    Names come from --stack (CloudFormation outputs) or --bucket/--table/--bus (or EKS_CAPTURE_STACK,
    EKS_CAPTURE_BUCKET, EKS_CAPTURE_TABLE, EKS_CAPTURE_BUS); AWS credentials, region and endpoint from
    the standard chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).
    """


def run(args: Sequence[str]) -> int:
    """Run one command as the console would, from Python (e.g. the demo); its exit code, never SystemExit.

    Example: run(["show", "cap-20261125T031200Z-0a1b2c3d", "--table", table, "--bucket", bucket])
    """
    try:
        code = app(list(args), standalone_mode=False)
    except ClickException as error:
        error.show()
        return error.exit_code
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console-script entry point (``eks-capture``); an unexpected error is one line unless debugging."""
    try:
        app()
    except Exception as error:
        if os.environ.get("EKS_CAPTURE_DEBUG"):
            raise
        hint = "(EKS_CAPTURE_DEBUG=1 for details)"
        print(f"error: unexpected {type(error).__name__}: {error} {hint}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
