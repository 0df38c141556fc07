"""Damaged plain inputs: the C merge writes the bytes and gives the reasons the record-by-record merge does.

Overwritten bytes and cuts land anywhere: file and block headers, length fields, interface options (a
time resolution or offset that puts packets beyond 64 bits or before 1970), simple and obsolete packet
blocks, a second section in the other byte order; small reads put every record across read edges.
``merge_records`` is the oracle, for the bytes, the reasons and the order they are reported in.
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eks_capture_cli.merge import merge_plain, merge_records
from eks_capture_cli.pcapng import MergeInput, MergeResult, PcapngOutput
from tests.fixtures.packets import Packet, pcap, pcapng

BASE_NS = 1_764_000_000_000_000_000
FIRST_TIMES = (0, BASE_NS, BASE_NS + 7_000, BASE_NS + 40_000, 1 << 70)
Merge = Callable[[list[MergeInput], io.BytesIO, PcapngOutput], MergeResult]


def block(order: str, kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack(order + "II", kind, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))


def packets(node: int, count: int, interfaces: int = 1) -> list[Packet]:
    """Tagged frames, 3 µs apart with some out of order, spread over ``interfaces``."""
    late = (0, 0, 0, 0, 5_000)
    frames = [bytes([node, n]) * (4 + n % 9) for n in range(count)]
    return [Packet(BASE_NS + n * 3_000 - late[n % 5], f, n % interfaces) for n, f in enumerate(frames)]


def offset_section(node: int, count: int) -> bytes:
    """A little-endian section whose interface counts 2^-30 s from 1000 s after 1970 (if_tsoffset -1000)."""
    options = struct.pack("<HHB3xHHq", 9, 1, 0x80 | 30, 14, 8, -1000) + bytes(4)
    out = block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block("<", 1, struct.pack("<HHI", 1, 0, 0) + options)
    for packet in packets(node, count):
        units = (packet.ts_ns + 1000 * 10**9) * (1 << 30) // 10**9
        head = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(packet.data), len(packet.data))
        out += block("<", 6, head + packet.data)
    return out


@cache
def sources() -> tuple[bytes, ...]:
    """Classic pcap in both byte orders and resolutions; pcapng with two interfaces, simple and old blocks;
    pcapng whose binary-fraction, offset section is followed by a big-endian one."""
    extra = block("<", 3, struct.pack("<I", 1500) + b"simple") + block(
        "<", 2, struct.pack("<HHIIII", 1, 0, 0x64, 0x2A00000, 5, 5) + b"olden"
    )
    return (
        pcap(packets(0, 12), nano=True),
        pcap(packets(1, 12), order=">"),
        pcapng(packets(2, 12, 2), interfaces=((1, 6), (101, 9))) + extra,
        offset_section(3, 6) + pcapng(packets(3, 12), interfaces=((1, 9),), order=">"),
    )


def outcome(merge: Merge, inputs: list[MergeInput]) -> tuple[bytes, MergeResult, list[str]] | str:
    """The merged bytes, the result and the order of its stop reasons, or the error raised."""
    out = io.BytesIO()
    try:
        result = merge(inputs, out, PcapngOutput({"10.0.0.1": ["shop/checkout"]}))
    except Exception as error:  # both merges must fail alike, if ever
        return repr(error)
    return out.getvalue(), result, list(result.partial)


@settings(max_examples=200, deadline=None)
@given(
    damage=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.sampled_from([0, 1, 0x7F, 0x80, 0xFF])),
        max_size=4,
    ),
    cuts=st.lists(st.none() | st.integers(0, 1 << 16), min_size=4, max_size=4),
    firsts=st.lists(st.sampled_from(FIRST_TIMES), min_size=4, max_size=4),
    chunk=st.sampled_from([16, 64, 100, 4096]),
)
def test_damaged_inputs_merge_to_the_bytes_and_reasons_of_the_record_by_record_merge(
    damage: list[tuple[int, int, int]], cuts: list[int | None], firsts: list[int], chunk: int
) -> None:
    files = [bytearray(data) for data in sources()]
    for which, at, value in damage:
        files[which][at % len(files[which])] = value
    with tempfile.TemporaryDirectory() as folder:
        inputs = []
        for index, (data, cut, first) in enumerate(zip(files, cuts, firsts, strict=True)):
            path = Path(folder) / f"{index}.cap"
            path.write_bytes(bytes(data if cut is None else data[: cut % (len(data) + 1)]))
            inputs.append(MergeInput(path, f"node-{index % 3}", first))

        fast = outcome(lambda i, o, b: merge_plain(i, o, b, chunk=chunk), inputs)
        oracle = outcome(merge_records, inputs)

    assert fast == oracle
