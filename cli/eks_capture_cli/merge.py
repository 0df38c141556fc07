"""Merge the capture files of several nodes into one time-ordered pcapng, one interface per node.

A streaming k-way merge in mergecap's order: at each step the input whose next packet is earliest
gives it, and of equal times the input listed last wins (mergecap's ``is_earlier`` keeps the last of
equal candidates). Only the inputs whose time range has begun are open, so memory is one read buffer
per overlapping file, whatever the capture's length. Inputs that are all plain classic pcap or pcapng
files (what tcpdump and dumpcap write, and what ``pull`` leaves on disk) are merged by the C module
``_merge_core`` (no per-packet Python); compressed ones (gzip, zstd) are read record by record by the
project's ``CaptureReader`` in ``merge_records``, which is also the C merge's oracle, byte for byte.

Wireshark then shows which node saw each packet (``frame.interface_name``), and the name resolution
block maps cluster IPs to the pod/service/node names of the captures' cluster context.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from eks_capture.pcap.reader import CHUNK, CaptureReader, Record
from eks_capture_cli import _merge_core
from eks_capture_cli.pcapng import (
    EPB,
    EPB_HEAD,
    EPB_TAILS,
    FLUSH_BYTES,
    MergeInput,
    MergeResult,
    PcapngOutput,
    all_plain,
)

_NEVER = (1 << 127, 0)
#: Why an input ends at a packet whose time an enhanced packet block cannot hold (before 1970, after 2554).
TIME_OUT_OF_RANGE = "packet time out of range"
_TS_LIMIT = 1 << 64


def _opening_order(inputs: Sequence[MergeInput]) -> list[int]:
    """The inputs' indexes in the order the merges open them: by first packet time, then as listed."""
    return sorted(range(len(inputs)), key=lambda index: (inputs[index].first_ns, index))


class _Source:
    """One open input: its reader, its records and the interface ids its link types map to."""

    __slots__ = ("index", "input", "interfaces", "reader", "records")

    def __init__(self, index: int, merge_input: MergeInput, stream: BinaryIO) -> None:
        self.index = index
        self.input = merge_input
        self.reader = CaptureReader(stream)
        self.records: Iterator[Record] = iter(self.reader)
        self.interfaces: dict[int, int] = {}


def merge_records(inputs: Sequence[MergeInput], out: BinaryIO, output: PcapngOutput) -> MergeResult:
    """Merge any readable captures (pcapng, gzip, zstd too) record by record with a heap; what it wrote.

    Between two heap operations the loop copies a whole run of packets from one input (every packet
    earlier than the other inputs' next one), which on rotated per-node files is most of them.
    """
    pending = _opening_order(inputs)[::-1]  # popped from the end
    heap: list[tuple[int, int, Record, _Source]] = []
    opened: list[tuple[_Source, BinaryIO]] = []
    partial: dict[str, str] = {}
    packets = 0
    buffer = output.blocks
    pack_head = EPB_HEAD.pack
    tails = EPB_TAILS
    last_rank = -len(inputs)

    def open_next() -> None:
        index = pending.pop()
        stream = inputs[index].path.open("rb")
        source = _Source(index, inputs[index], stream)
        opened.append((source, stream))
        first = next(source.records, None)
        if first is not None and not 0 <= first[0] < _TS_LIMIT:
            source.reader.stop(TIME_OUT_OF_RANGE)
            first = None
        for link in source.reader.link_types:
            source.interfaces[link] = output.interface(source.input.node, link)
        if first is not None:
            heapq.heappush(heap, (first[0], -index, first, source))

    try:
        while pending or heap:
            if pending:
                while pending and (not heap or inputs[pending[-1]].first_ns <= heap[0][0]):
                    open_next()
                if not heap:
                    continue
                output.names_once()
            ts, rank, record, source = heap[0]
            size = len(heap)
            if size > 2:
                left, right = heap[1], heap[2]
                if left[0] < right[0] or (left[0] == right[0] and left[1] < right[1]):
                    bound_ts, bound_rank = left[0], left[1]
                else:
                    bound_ts, bound_rank = right[0], right[1]
            elif size == 2:
                bound_ts, bound_rank = heap[1][0], heap[1][1]
            else:
                bound_ts, bound_rank = _NEVER
            if pending and inputs[pending[-1]].first_ns <= bound_ts:
                bound_ts, bound_rank = inputs[pending[-1]].first_ns, last_rank
            interfaces = source.interfaces
            link = -1
            iface = 0
            records = source.records
            while True:
                ts, rlink, buf, off, caplen, wirelen = record
                if rlink != link:
                    link = rlink
                    found = interfaces.get(link)
                    if found is None:
                        found = interfaces[link] = output.interface(source.input.node, link)
                    iface = found
                length = 32 + caplen + (-caplen & 3)
                buffer += pack_head(EPB, length, iface, ts >> 32, ts & 0xFFFFFFFF, caplen, wirelen)
                buffer += buf[off : off + caplen]
                buffer += tails[caplen & 3](length)
                packets += 1
                if len(buffer) >= FLUSH_BYTES:
                    out.write(buffer)
                    buffer.clear()
                nxt = next(records, None)
                if nxt is not None and not 0 <= nxt[0] < _TS_LIMIT:
                    source.reader.stop(TIME_OUT_OF_RANGE)
                    nxt = None
                if nxt is None:
                    heapq.heappop(heap)
                    break
                nts = nxt[0]
                if nts < bound_ts or (nts == bound_ts and rank < bound_rank):
                    record = nxt
                    continue
                heapq.heapreplace(heap, (nts, rank, nxt, source))
                break
    finally:
        try:
            out.write(buffer)
            buffer.clear()
        finally:  # a write that raises still leaves no input open
            for source, stream in opened:
                stream.close()
                if source.reader.partial:
                    partial[str(source.input.path)] = source.reader.reason or "ended early"
    return output.result(packets, partial)


def merge_plain(
    inputs: Sequence[MergeInput], out: BinaryIO, output: PcapngOutput, *, chunk: int = CHUNK
) -> MergeResult:
    """Merge plain classic pcap and pcapng files in C: ``merge_records``' bytes and stop reasons.

    The C loop calls back into ``output`` where ``merge_records`` does (interfaces, names), so those
    blocks land in ``output.blocks`` between the same packets; ``chunk`` is each input's read size.
    """
    packets, stopped = _merge_core.merge(
        [str(merge_input.path) for merge_input in inputs],
        _opening_order(inputs),
        [merge_input.first_ns for merge_input in inputs],
        lambda index, link: output.interface(inputs[index].node, link),
        output.names_once,
        output.blocks,
        out.write,
        chunk=chunk,
        flush=FLUSH_BYTES,
    )
    return output.result(packets, {str(inputs[index].path): reason for index, reason in stopped.items()})


def merge_files(
    inputs: Sequence[MergeInput], output: Path, names: Mapping[str, Sequence[str]] | None = None
) -> MergeResult:
    """Merge ``inputs`` into the pcapng file ``output`` (written whole, then renamed into place)."""
    partial = output.with_name(output.name + ".part")
    with partial.open("wb") as out:
        blocks = PcapngOutput(names)
        merge = merge_plain if all_plain(inputs) else merge_records
        result = merge(inputs, out, blocks)
    partial.replace(output)
    return result
