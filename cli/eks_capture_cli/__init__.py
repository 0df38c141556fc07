"""The ``eks-capture`` console command: one typer app, each command in its own module."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

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


class _Commands(MutableMapping[str, Command]):
    """The root group's commands by name: every name of ``COMMANDS`` and ``GROUPS`` from the start (for
    typer's "did you mean"), each command built from its module the first time it is looked up."""

    def __init__(self, group: TyperGroup) -> None:
        self._group = group
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        found = self._built.get(name)
        if found is None:
            found = self._built[name] = self._build(name)
        return found

    def _build(self, name: str) -> Command:
        if name in COMMANDS:
            module, function = COMMANDS[name]
            return get_command_from_info(
                CommandInfo(
                    name=name, callback=getattr(importlib.import_module(f"{__name__}.{module}"), function)
                ),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=self._group.rich_markup_mode,
            )
        if name in GROUPS:
            module, attribute = GROUPS[name]
            return get_group_from_info(
                TyperInfo(getattr(importlib.import_module(f"{__name__}.{module}"), attribute), name=name),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=self._group.rich_markup_mode,
                suggest_commands=self._group.suggest_commands,
            )
        raise KeyError(name)

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def _names(self) -> dict[str, None]:
        """Every name once, in order: the declared ones, then any set later."""
        return dict.fromkeys([*COMMANDS, *GROUPS, *self._built])

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class _OnDemand(TyperGroup):
    """The root group: its commands are built from their modules when looked up (``_Commands``)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)  # the names, without building every command


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
