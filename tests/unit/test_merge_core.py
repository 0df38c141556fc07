"""The C merge's contract with its caller: bad arguments, and callbacks or signals that stop it midway.

Bad arguments raise before any file is opened or anything written, and leave every descriptor of the
process as it was. A merge stopped by a callback leaves what the record-by-record merge leaves (written
bytes, unwritten blocks, the exception); stopped by a signal, it still hands over only whole blocks.
Either way no file stays open.
"""

from __future__ import annotations

import ctypes
import functools
import io
import signal
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from eks_capture_cli import _merge_core
from eks_capture_cli.merge import merge_plain, merge_records
from eks_capture_cli.pcapng import MergeInput, MergeResult, PcapngOutput
from tests.fixtures.descriptors import open_now
from tests.fixtures.packets import T0, Packet, pcap, pcapng

NAMES = {"10.0.0.1": ["shop/checkout"]}


class RefusedError(Exception):
    """What a callback raises to stop the merge."""


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


def whole_blocks(data: bytes) -> int:
    """How many pcapng blocks ``data`` is, exactly; ValueError if it is not a run of whole blocks."""
    pos = count = 0
    while pos < len(data):
        _kind, length = struct.unpack_from("<II", data, pos)
        if (
            length < 12
            or length % 4
            or pos + length > len(data)
            or data[pos + length - 4 : pos + length] != data[pos + 4 : pos + 8]
        ):
            raise ValueError(f"no whole block at {pos}")
        pos, count = pos + length, count + 1
    return count


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


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(1 << 32, ValueError, id="beyond-32-bits"),
        pytest.param(1 << 64, OverflowError, id="beyond-64-bits"),
    ],
)
def test_an_interface_id_a_packet_block_cannot_hold_stops_the_merge(
    captures: list[Path], descriptors: set[str], answer: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        call_merge(captures, [], interface=lambda index, link: answer)

    assert open_now() == descriptors


class RefusingOutput(PcapngOutput):
    """Blocks whose ``interface`` or ``names_once`` raises at its n-th call."""

    def __init__(self, refuse: str, at: int) -> None:
        super().__init__(NAMES)
        self.refuse, self.at, self.calls = refuse, at, 0

    def _count(self, name: str) -> None:
        if name == self.refuse:
            self.calls += 1
            if self.calls == self.at:
                raise RefusedError(f"{name} refused at call {self.at}")

    def interface(self, node: str, link_type: int) -> int:
        self._count("interface")
        return super().interface(node, link_type)

    def names_once(self) -> None:
        self._count("names_once")
        super().names_once()


class RefusingFile(io.BytesIO):
    """A file whose ``write`` raises at its n-th call (and keeps nothing of that call)."""

    def __init__(self, refuse: str, at: int) -> None:
        super().__init__()
        self.refuse, self.at, self.calls = refuse, at, 0

    def write(self, data: Any) -> int:
        if self.refuse == "write":
            self.calls += 1
            if self.calls == self.at:
                raise RefusedError(f"write refused at call {self.at}")
        return super().write(data)


def stopped(merge: Any, inputs: list[MergeInput], refuse: str, at: int) -> tuple[bytes, bytes, str]:
    """What a merge wrote, what it left unwritten in its blocks, and what it raised."""
    out, output = RefusingFile(refuse, at), RefusingOutput(refuse, at)
    with pytest.raises(RefusedError) as raised:
        merge(inputs, out, output)
    return out.getvalue(), bytes(output.blocks), str(raised.value)


@pytest.mark.parametrize(
    ("refuse", "at"),
    [
        pytest.param("interface", 1, id="the-first-interface"),
        pytest.param("interface", 3, id="an-interface-of-an-input-opened-later"),
        pytest.param("interface", 4, id="an-interface-of-a-link-type-met-mid-file"),
        pytest.param("names_once", 1, id="the-name-resolution-block"),
        pytest.param("write", 1, id="the-write-of-the-blocks"),
    ],
)
def test_a_callback_that_raises_stops_the_merge_as_it_stops_the_record_by_record_merge(
    captures: list[Path], descriptors: set[str], refuse: str, at: int
) -> None:
    inputs = [MergeInput(path, f"node-{n}", T0 + n * 400) for n, path in enumerate(captures)]

    fast = stopped(merge_plain, inputs, refuse, at)
    oracle = stopped(merge_records, inputs, refuse, at)

    assert fast == oracle
    assert open_now() == descriptors


@pytest.fixture
def interrupting() -> Iterator[Callable[[], object]]:
    """A call that interrupts the process as Ctrl-C does, from C: no Python line runs to notice it
    (``signal.raise_signal`` and ``os.kill`` would run the handler themselves), the merge must."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        yield functools.partial(ctypes.CDLL(None)["raise"], signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize(
    ("flush", "packets"),
    [
        pytest.param(64, 1, id="midway-at-the-first-flush"),
        pytest.param(1 << 20, 9, id="at-the-last-flush"),
    ],
)
def test_an_interrupted_merge_hands_over_whole_blocks_only_and_closes_its_files(
    captures: list[Path], descriptors: set[str], interrupting: Callable[[], object], flush: int, packets: int
) -> None:
    output, written = PcapngOutput(), io.BytesIO()  # a write in C: no Python line to notice the signal

    with pytest.raises(KeyboardInterrupt):
        call_merge(
            captures,
            [],
            interface=lambda index, link: output.interface(f"node-{index}", link),
            names_once=interrupting,
            blocks=output.blocks,
            write=written.write,
            flush=flush,
        )

    assert output.blocks == b""
    assert whole_blocks(written.getvalue()) == 1 + 4 + packets  # the section, 4 interfaces, the packets
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


def test_inputs_that_end_early_are_reported_in_the_order_they_were_opened(tmp_path: Path) -> None:
    inputs = []
    for n, first in enumerate((T0 + 2_000, T0)):
        data = pcap([Packet(first + k * 1_000, bytes([n]) * 30) for k in range(3)], nano=True)
        (tmp_path / f"{n}.pcap").write_bytes(data[:-7])
        inputs.append(MergeInput(tmp_path / f"{n}.pcap", f"node-{n}", first))

    def reasons(result: MergeResult) -> list[tuple[str, str]]:
        return list(result.partial.items())

    fast = merge_plain(inputs, io.BytesIO(), PcapngOutput())
    oracle = merge_records(inputs, io.BytesIO(), PcapngOutput())

    assert reasons(fast) == reasons(oracle)
    assert [Path(path).name for path, _ in reasons(fast)] == ["1.pcap", "0.pcap"]
