"""The ``eks-capture`` console command: one typer app, each command in its own module."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer
from typer._click.exceptions import ClickException

from eks_capture_cli import (
    analyze,
    browse,
    cluster_manifests,
    doctor,
    merging,
    paths,
    pull,
    recorders,
    report,
    requests,
)
from eks_capture_cli.failures import EXIT_FAILED

app = typer.Typer(
    name="eks-capture",
    help="Packet captures on EKS: start, follow, list, pull, merge, report and localize loss; analyse files; "
    "check a cluster is ready (doctor).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("start")(requests.start)
app.command("stop")(requests.stop)
app.command("list")(browse.list_captures)
app.command("show")(browse.show)
app.command("pull")(pull.pull)
app.command("merge")(merging.merge)
app.command("report")(report.report)
app.command("analyze")(analyze.analyze)
app.command("path")(paths.path)
app.command("doctor")(doctor.doctor)
app.command("manifests")(cluster_manifests.manifests)
app.add_typer(recorders.app, name="recorder")


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
