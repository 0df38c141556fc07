"""``eks-capture merge FILE… -o OUT.pcapng``: local files into one pcapng, the merge ``pull --merge`` does.

Captures come from elsewhere too (a node's own tcpdump, a colleague's laptop), so the merge takes any
local pcap or pcapng, plain or compressed; each input becomes one named interface, so Wireshark shows
which file (node) saw each packet. Of equal times, the input listed last wins, as with mergecap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from eks_capture.pcap import CaptureReader
from eks_capture_cli.failures import EXIT_BAD_INPUT, CommandError, one_line_errors
from eks_capture_cli.merge import merge_files
from eks_capture_cli.pcapng import MergeInput, MergeResult

CAPTURE_SUFFIXES = (".gz", ".zst", ".pcap", ".pcapng")


def node_name(path: Path) -> str:
    """The interface name a file gets without --name: its name less the capture and compression suffixes."""
    name = path.name
    for suffix in CAPTURE_SUFFIXES:
        name = name.removesuffix(suffix)
    return name or path.name


def parse_names(pairs: Sequence[str], files: Sequence[Path]) -> dict[Path, str]:
    """FILE=NODE pairs as {file: node}; a pair naming no input, or one without '=', is refused."""
    inputs = {path.resolve(): path for path in files}
    names: dict[Path, str] = {}
    for pair in pairs:
        file, sep, node = pair.partition("=")
        if not sep or not file or not node:
            raise CommandError(f"--name {pair!r}: expected FILE=NODE", EXIT_BAD_INPUT)
        path = inputs.get(Path(file).resolve())
        if path is None:
            raise CommandError(f"--name {pair!r}: {file} is not one of the files to merge", EXIT_BAD_INPUT)
        names[path] = node
    return names


def check_inputs(files: Sequence[Path], out: Path) -> None:
    """Refuse, before anything is written, a file listed twice, the output among the inputs, or a
    file that is not a capture at all (a capture that merely ends early is merged, with a warning)."""
    seen: set[Path] = set()
    for path in files:
        resolved = path.resolve()
        if resolved in seen:
            raise CommandError(f"{path} is listed twice", EXIT_BAD_INPUT)
        seen.add(resolved)
        if resolved == out.resolve():
            raise CommandError(f"the output {out} is also an input", EXIT_BAD_INPUT)
        with path.open("rb") as stream:
            reader = CaptureReader(stream)
            next(iter(reader), None)
        if reader.format == "unknown":
            raise CommandError(f"{path} is not a capture: {reader.reason}", EXIT_BAD_INPUT)


def report_merge(path: Path, result: MergeResult, files: int) -> None:
    """What the merge wrote, and a warning per input that ended early."""
    typer.echo(
        f"merged {result.packets:,} packets from {files} files into {path} "
        f"({result.interfaces} interfaces, {result.names} named addresses)"
    )
    for source, reason in result.partial.items():
        typer.echo(f"warning: {source} ended early: {reason}", err=True)


CaptureFiles = Annotated[
    list[Path],
    typer.Argument(exists=True, dir_okay=False, readable=True, help="pcap or pcapng files, plain/.gz/.zst"),
]
OutputFile = Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="The merged pcapng to write.")]
NameOption = Annotated[
    list[str] | None,
    typer.Option("--name", help="FILE=NODE: the interface name of FILE's packets (default: its file name)."),
]


@one_line_errors
def merge(files: CaptureFiles, out: OutputFile, name: NameOption = None) -> None:
    """Merge local capture files into one time-ordered pcapng, one named interface per file.

    Example: eks-capture merge a.pcap b.pcapng.zst -o incident.pcapng --name a.pcap=ip-10-0-1-5
    """
    check_inputs(files, out)
    names = parse_names(name or [], files)
    inputs = [MergeInput(path=path, node=names.get(path, node_name(path))) for path in files]
    report_merge(out, merge_files(inputs, out), len(files))
