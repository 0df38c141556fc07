"""Merge the capture files of several nodes into one time-ordered pcapng, one interface per node.

A streaming k-way merge in mergecap's order: at each step the input whose next packet is earliest
gives it, and of equal times the input listed last wins (mergecap's ``is_earlier`` keeps the last of
equal candidates). Only the inputs whose time range has begun are open, so memory is one read buffer
per overlapping file, whatever the capture's length. Inputs that are all plain classic pcap files
(what tcpdump writes, and what ``pull`` leaves on disk) take the fast path of ``merge_pcap``; any
other mix (pcapng, gzip, zstd) is read record by record by the project's ``CaptureReader``.

Wireshark then shows which node saw each packet (``frame.interface_name``), and the name resolution
block maps cluster IPs to the pod/service/node names of the captures' cluster context.
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from eks_capture.pcap.reader import MAX_PACKET, PCAP_MAGIC_NS, PCAP_MAGIC_US, CaptureReader, Record

SHB = 0x0A0D0D0A
BOM = 0x1A2B3C4D
IDB = 1
NRB = 4
EPB = 6
OPT_END = 0
OPT_SHB_USERAPPL = 4
OPT_IF_NAME = 2
OPT_IF_DESCRIPTION = 3
OPT_IF_TSRESOL = 9
NRB_END = 0
NRB_IPV4 = 1
NRB_IPV6 = 2
FLUSH_BYTES = 1 << 20
APPLICATION = "eks-capture merge"
PCAP_HEADER = 24

_EPB_HEAD = struct.Struct("<IIIIIII")
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")
#: Padding to 32 bits plus the trailing block length, by ``caplen & 3``.
_TAILS = tuple(struct.Struct(f"<{len(pad)}xI").pack for pad in _PADS)
_NEVER = (1 << 127, 0)


@dataclass(frozen=True)
class MergeInput:
    """One capture file and the node that captured it."""

    path: Path
    node: str
    first_ns: int = 0  # the earliest packet time it may hold (0: unknown, open it at once)


@dataclass
class MergeResult:
    """What the merge wrote, and which inputs ended early (a truncated upload)."""

    packets: int = 0
    interfaces: int = 0
    names: int = 0
    partial: dict[str, str] = field(default_factory=dict)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + _PADS[len(value) % 4]


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def section_header() -> bytes:
    """The section header block (little-endian, section length unknown)."""
    options = _option(OPT_SHB_USERAPPL, APPLICATION.encode()) + _option(OPT_END, b"")
    return _block(SHB, struct.pack("<IHHq", BOM, 1, 0, -1) + options)


def interface_block(link_type: int, name: str) -> bytes:
    """An interface description named after the node, nanosecond timestamps."""
    options = (
        _option(OPT_IF_NAME, name.encode())
        + _option(OPT_IF_DESCRIPTION, f"packets captured on node {name}".encode())
        + _option(OPT_IF_TSRESOL, b"\x09")
        + _option(OPT_END, b"")
    )
    return _block(IDB, struct.pack("<HHI", link_type, 0, 0) + options)


def name_resolution_block(names: Mapping[str, Sequence[str]]) -> bytes:
    """IPv4/IPv6 records mapping each address to its names."""
    records = bytearray()
    for text, aliases in sorted(names.items()):
        if not aliases:
            continue
        address = ipaddress.ip_address(text)
        kind = NRB_IPV4 if address.version == 4 else NRB_IPV6
        value = address.packed + b"".join(alias.encode() + b"\0" for alias in aliases)
        records += struct.pack("<HH", kind, len(value)) + value + _PADS[len(value) % 4]
    records += struct.pack("<HH", NRB_END, 0)
    return _block(NRB, bytes(records))


def classic_pcap_header(head: bytes) -> tuple[str, int, int] | None:
    """Byte order, ns per time fraction and link type of a classic pcap header the fast merge takes."""
    if len(head) < PCAP_HEADER:
        return None
    for order in "<>":
        magic, _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "IHHiIII", head)
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) and snaplen <= MAX_PACKET:
            return order, 1 if magic == PCAP_MAGIC_NS else 1000, network & 0x03FFFFFF
    return None


def all_classic_pcap(inputs: Sequence[MergeInput]) -> bool:
    """Whether every input is a plain classic pcap file the fast merge takes."""
    try:
        for merge_input in inputs:
            with merge_input.path.open("rb") as stream:
                if classic_pcap_header(stream.read(PCAP_HEADER)) is None:
                    return False
    except OSError:
        return False  # the record-by-record merge reports it
    return True


class PcapngOutput:
    """The merged file's blocks other than packets, queued in ``blocks`` until the next packets are written.

    One interface per node and link type, described when its first file is opened (as mergecap does),
    and one name resolution block, written just before the first packet.
    """

    def __init__(self, names: Mapping[str, Sequence[str]] | None = None) -> None:
        self.names = {address: list(found) for address, found in (names or {}).items() if found}
        self.blocks = bytearray(section_header())
        self._interfaces: dict[tuple[str, int], int] = {}
        self._names_written = False

    @property
    def interfaces(self) -> int:
        """How many interfaces were described."""
        return len(self._interfaces)

    def interface(self, node: str, link_type: int) -> int:
        """The interface id of ``node`` for ``link_type``, describing it first if new."""
        key = (node, link_type)
        found = self._interfaces.get(key)
        if found is None:
            found = self._interfaces[key] = len(self._interfaces)
            self.blocks += interface_block(link_type, node)
        return found

    def names_once(self) -> None:
        """Queue the name resolution block, the first time only (and only if there are names)."""
        if not self._names_written:
            self._names_written = True
            if self.names:
                self.blocks += name_resolution_block(self.names)

    def result(self, packets: int, partial: dict[str, str]) -> MergeResult:
        """What was written."""
        return MergeResult(packets, len(self._interfaces), len(self.names), partial)


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
    pending = sorted(range(len(inputs)), key=lambda i: (inputs[i].first_ns, i), reverse=True)
    heap: list[tuple[int, int, Record, _Source]] = []
    opened: list[tuple[_Source, BinaryIO]] = []
    partial: dict[str, str] = {}
    packets = 0
    buffer = output.blocks
    pack_head = _EPB_HEAD.pack
    tails = _TAILS
    last_rank = -len(inputs)

    def open_next() -> None:
        index = pending.pop()
        stream = inputs[index].path.open("rb")
        source = _Source(index, inputs[index], stream)
        opened.append((source, stream))
        first = next(source.records, None)
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
        out.write(buffer)
        buffer.clear()
        for source, stream in opened:
            stream.close()
            if source.reader.partial:
                partial[str(source.input.path)] = source.reader.reason or "ended early"
    return output.result(packets, partial)


def fast_merge() -> Callable[[Sequence[MergeInput], BinaryIO, PcapngOutput], MergeResult]:
    """The numpy merge of classic pcap files, loaded on first use (e.g. ahead, while downloading).

    numpy is loaded for it alone, and it does no linear algebra: without an OpenBLAS thread per core
    to start, numpy's import is ~50 ms (a quarter) shorter.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from eks_capture.merge_pcap import merge_pcap

    return merge_pcap


def merge_files(
    inputs: Sequence[MergeInput], output: Path, names: Mapping[str, Sequence[str]] | None = None
) -> MergeResult:
    """Merge ``inputs`` into the pcapng file ``output`` (written whole, then renamed into place)."""
    partial = output.with_name(output.name + ".part")
    with partial.open("wb") as out:
        blocks = PcapngOutput(names)
        if all_classic_pcap(inputs):
            result = fast_merge()(inputs, out, blocks)
        else:
            result = merge_records(inputs, out, blocks)
    partial.replace(output)
    return result
