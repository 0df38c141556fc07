"""Just enough of the pcap format to count a file's packets and find its first and last timestamps.

The agent ships its own few lines rather than a pcap library: the image stays small and the
numbers it reports (packets per file, first/last packet) come from the bytes it uploads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

GLOBAL_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16
READ_BYTES = 1 << 20
MAX_RECORD_BYTES = 1 << 24
MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


class NotPcapError(ValueError):
    """The file does not start with a pcap global header."""


@dataclass(frozen=True)
class PcapSummary:
    """What the upload metadata and the manifest say about one file."""

    packets: int
    first_packet: float | None
    last_packet: float | None
    linktype: int
    trailing_bytes: int

    @property
    def truncated(self) -> bool:
        """Whether the file ends inside a record (tcpdump killed mid-write)."""
        return self.trailing_bytes > 0


def scan_pcap(path: Path) -> PcapSummary:
    """Walk the record headers of ``path`` without keeping packets in memory."""
    with path.open("rb") as stream:
        header = stream.read(GLOBAL_HEADER_BYTES)
        if len(header) < GLOBAL_HEADER_BYTES or header[:4] not in MAGICS:
            raise NotPcapError(f"{path.name}: not a pcap file (magic {header[:4].hex() or 'missing'})")
        endian, tick = MAGICS[header[:4]]
        record = struct.Struct(endian + "IIII")
        linktype = struct.unpack_from(endian + "I", header, 20)[0]
        packets = 0
        first: tuple[int, int] | None = None
        last: tuple[int, int] | None = None
        leftover = b""
        while chunk := stream.read(READ_BYTES):
            buffer = leftover + chunk
            offset, end = 0, len(buffer)
            while offset + RECORD_HEADER_BYTES <= end:
                seconds, fraction, captured, _ = record.unpack_from(buffer, offset)
                if captured > MAX_RECORD_BYTES:
                    raise NotPcapError(f"{path.name}: record of {captured} bytes at packet {packets + 1}")
                following = offset + RECORD_HEADER_BYTES + captured
                if following > end:
                    break
                if first is None:
                    first = (seconds, fraction)
                last = (seconds, fraction)
                packets += 1
                offset = following
            leftover = buffer[offset:]
    return PcapSummary(
        packets=packets,
        first_packet=None if first is None else first[0] + first[1] * tick,
        last_packet=None if last is None else last[0] + last[1] * tick,
        linktype=linktype,
        trailing_bytes=len(leftover),
    )


def packets_in(path: Path) -> int | None:
    """The packets a file about to be deleted holds, so a loss is counted in packets, not only bytes (None
    when it is no pcap)."""
    try:
        return scan_pcap(path).packets
    except NotPcapError:
        return None
