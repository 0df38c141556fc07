"""The ``eks-capture`` console command: one typer app, each command in its own module."""

from __future__ import annotations

import typer

from eks_capture.cli import analyze

app = typer.Typer(
    name="eks-capture",
    help="Packet captures on EKS: analyse capture files, and (soon) start, list and pull captures.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("analyze")(analyze.analyze)


@app.callback()
def root() -> None:
    """Packet captures on EKS, from the terminal."""


def main() -> None:
    """Console-script entry point (``eks-capture``)."""
    app()
