"""The C merge's contract with its caller.

Bad arguments raise before any file is opened or anything written, and leave every descriptor of the
process as it was; the paths are those of the call, whatever a callback does to their list.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eks_capture_cli import _merge_core
from eks_capture_cli.pcapng import PcapngOutput
from tests.fixtures.packets import T0, Packet, pcap, pcapng


@pytest.fixture
def captures(tmp_path: Path) -> list[Path]:
    """Three overlapping inputs, the second with a link type first met after its first packet."""
    frames = [bytes([n]) * (20 + n) for n in range(9)]
    second = pcapng(
        [Packet(T0 + 1_500, frames[3]), Packet(T0 + 2_500, frames[4], 1), Packet(T0 + 3_500, frames[5], 1)],
        interfaces=((1, 9), (101, 9)),
    )
    files = {
        "a.pcap": pcap([Packet(T0 + n * 1_000, frames[n]) for n in range(3)], nano=True),
        "b.pcapng": second,
        "c.pcap": pcap([Packet(T0 + 500 + n * 1_000, frames[6 + n]) for n in range(3)], nano=True),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


@pytest.fixture
def descriptors() -> Iterator[set[str]]:
    """The process's open descriptors before the test; descriptor 0 is put back if a merge closed it."""
    saved = os.dup(0)
    try:
        yield open_now()
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def open_now() -> set[str]:
    """The process's open descriptors (the listing's own is the lowest free one, the same each time)."""
    return set(os.listdir("/proc/self/fd"))


def call_merge(captures: list[Path], writes: list[bytes], **changes: Any) -> tuple[int, dict[int, str]]:
    """``_merge_core.merge`` of ``captures`` with valid arguments but ``changes``; each write is kept."""
    output = PcapngOutput()
    arguments: dict[str, Any] = {
        "paths": [str(path) for path in captures],
        "order": list(range(len(captures))),
        "first_ns": [0] * len(captures),
        "interface": lambda index, link: output.interface(f"node-{index}", link),
        "names_once": output.names_once,
        "blocks": output.blocks,
        "write": lambda blocks: writes.append(bytes(blocks)),
    }
    arguments.update(changes)
    return _merge_core.merge(**arguments)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"paths": [5, "b", "c"]}, TypeError, id="a-path-that-is-not-a-string"),
        pytest.param({"first_ns": ["soon", 0, 0]}, TypeError, id="a-first-time-that-is-not-a-number"),
        pytest.param({"order": [1, 1, 0]}, ValueError, id="an-order-naming-an-input-twice"),
        pytest.param({"order": [3, 0, 1]}, ValueError, id="an-order-naming-no-input"),
        pytest.param({"order": [0, 1]}, ValueError, id="an-order-of-another-length"),
        pytest.param({"chunk": 8}, ValueError, id="a-read-smaller-than-a-record-header"),
        pytest.param({"chunk": sys.maxsize}, ValueError, id="a-read-beyond-a-gibibyte"),
        pytest.param({"flush": sys.maxsize}, ValueError, id="a-flush-beyond-a-gibibyte"),
    ],
)
def test_bad_arguments_raise_before_anything_is_opened_written_or_closed(
    captures: list[Path], descriptors: set[str], changes: dict[str, Any], error: type[Exception]
) -> None:
    writes: list[bytes] = []

    with pytest.raises(error):
        call_merge(captures, writes, **changes)

    assert writes == []
    assert open_now() == descriptors


def test_the_paths_are_those_given_even_if_a_callback_changes_their_list(captures: list[Path]) -> None:
    paths = [str(path).encode().decode() for path in captures]  # strings only the list holds
    kept: list[str] = []

    def interface(index: int, link: int) -> int:
        paths.clear()  # the only references to the path strings go
        kept.extend(f"/gone/{'x' * n}" for n in range(64))  # their memory is likely taken again
        return index

    packets, partial = call_merge(captures, [], paths=paths, interface=interface)

    assert (packets, partial) == (9, {})
