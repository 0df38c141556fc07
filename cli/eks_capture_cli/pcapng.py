"""The pcapng blocks the merge writes (section, interfaces, name resolution, packets) and its inputs' headers.

Both merges, the C one of plain files (``merge_plain``) and the record-by-record one, write through these.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eks_capture.pcap.reader import PCAP_MAGIC_NS, PCAP_MAGIC_US

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

PCAPNG_MAGIC = struct.pack("<I", SHB)  # the same bytes in either byte order
BOM_LE, BOM_BE = struct.pack("<I", BOM), struct.pack(">I", BOM)
EPB_HEAD = struct.Struct("<IIIIIII")
PADS = (b"", b"\0\0\0", b"\0\0", b"\0")
#: Padding to 32 bits plus the trailing block length, by ``caplen & 3``.
EPB_TAILS = tuple(struct.Struct(f"<{len(pad)}xI").pack for pad in PADS)


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
    return struct.pack("<HH", code, len(value)) + value + PADS[len(value) % 4]


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
        records += struct.pack("<HH", kind, len(value)) + value + PADS[len(value) % 4]
    records += struct.pack("<HH", NRB_END, 0)
    return _block(NRB, bytes(records))


def plain_pcap(head: bytes) -> bool:
    """Whether ``head`` starts an uncompressed classic pcap file (a whole file header, either byte order)."""
    return len(head) >= PCAP_HEADER and any(
        struct.unpack_from(order + "I", head)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS) for order in "<>"
    )


def plain_pcapng(head: bytes) -> bool:
    """Whether ``head`` starts an uncompressed pcapng file (a section header with its byte-order magic)."""
    return len(head) >= 12 and head[:4] == PCAPNG_MAGIC and head[8:12] in (BOM_LE, BOM_BE)


def all_plain(inputs: Sequence[MergeInput]) -> bool:
    """Whether every input is a plain (uncompressed) classic pcap or pcapng file: the C merge's."""
    try:
        for merge_input in inputs:
            with merge_input.path.open("rb") as stream:
                head = stream.read(PCAP_HEADER)
            if not plain_pcap(head) and not plain_pcapng(head):
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
