"""Streaming pcap/pcapng reader: constant memory, never raises on bad input, says why it stopped early.

Records come out as plain tuples ``(ts_ns, link_type, buf, offset, caplen, wirelen)``: the packet is
``buf[offset:offset + caplen]`` of a shared read buffer, so nothing is copied per packet. The buffer is
only valid until the next record is requested.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from eks_capture.pcap.compression import DECOMPRESSION_ERRORS, Readable, decompressed, read_at_least

Record = tuple[int, int, bytes, int, int, int]

CHUNK = 1 << 20
#: Largest record accepted before the file is called corrupt (Wireshark's cap for most link types).
MAX_PACKET = 262_144
MAX_BLOCK = 16 << 20

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
BLOCK_IDB = 1
BLOCK_PB = 2
BLOCK_SPB = 3
BLOCK_EPB = 6
OPT_TSRESOL = 9
OPT_TSOFFSET = 14


class Interface:
    """What a pcapng interface description says that matters for its packets."""

    __slots__ = ("div", "link_type", "mult", "offset_ns", "snaplen")

    def __init__(self, link_type: int, snaplen: int) -> None:
        self.link_type = link_type
        self.snaplen = snaplen
        self.mult = 1000  # default resolution: microseconds
        self.div = 1
        self.offset_ns = 0

    def set_resolution(self, code: int) -> None:
        """if_tsresol: MSB clear = 10^-n seconds, set = 2^-n seconds."""
        exponent = code & 0x7F
        if code & 0x80:
            self.mult, self.div = 1_000_000_000, 1 << exponent
        elif exponent <= 9:
            self.mult, self.div = 10 ** (9 - exponent), 1
        else:
            self.mult, self.div = 1, 10 ** (exponent - 9)


class CaptureReader:
    """Iterate the packets of a pcap or pcapng stream (gzip/zstd/plain); inspect ``partial`` after."""

    def __init__(self, source: BinaryIO | Readable) -> None:
        self._source = source
        self.format = "unknown"
        self.compression = "none"
        self.link_types: list[int] = []
        self.partial = False
        self.reason: str | None = None
        self._stream: Readable | None = None

    def stop(self, reason: str) -> None:
        """Mark the read as ended early for ``reason`` (the first reason given wins)."""
        if not self.partial:
            self.partial = True
            self.reason = reason

    def _read(self, size: int) -> bytes:
        assert self._stream is not None
        try:
            return read_at_least(self._stream, size)
        except DECOMPRESSION_ERRORS as error:
            self.stop(f"{self.compression} stream broken: {error}")
            return b""

    def _refill(self, buf: bytes, pos: int, need: int) -> bytes:
        """The unread tail of ``buf`` plus at least ``need`` more bytes when the stream has them."""
        tail = len(buf) - pos
        return buf[pos:] + self._read(max(CHUNK, need - tail))

    def _seen(self, link_type: int) -> None:
        if link_type not in self.link_types:
            self.link_types.append(link_type)

    def __iter__(self) -> Iterator[Record]:
        """The records, from a generator for the file's format (sniffed now, from the first bytes).

        Not a generator itself: delegating with ``yield from`` would add a frame switch to every record.
        """
        try:
            self._stream, self.compression = decompressed(self._source)
        except DECOMPRESSION_ERRORS as error:
            self.stop(f"unreadable stream: {error}")
            return iter(())
        buf = self._read(CHUNK)
        if len(buf) < 4:
            self.stop("empty file" if not buf else "truncated file header")
            return iter(())
        magic_le = struct.unpack_from("<I", buf)[0]
        if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            return self._pcap(buf, "<")
        if struct.unpack_from(">I", buf)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            return self._pcap(buf, ">")
        if magic_le == PCAPNG_SHB:
            return self._pcapng(buf)
        self.stop(f"not a pcap or pcapng file (magic {buf[:4].hex()})")
        return iter(())

    def _pcap(self, buf: bytes, order: str) -> Iterator[Record]:
        self.format = "pcap"
        if len(buf) < 24:
            self.stop("truncated file header")
            return
        magic, _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "IHHiIII", buf)
        unit = 1 if magic == PCAP_MAGIC_NS else 1000
        link = network & 0x03FFFFFF
        if link > 0xFFFF:  # bits no link type uses, and a pcapng interface could not hold
            self.stop(f"unsupported link type {link:#x}")
            return
        self._seen(link)
        limit = max(MAX_PACKET, min(snaplen, MAX_BLOCK))
        unpack = struct.Struct(order + "IIII").unpack_from
        pos, end = 24, len(buf)
        while True:
            if end - pos < 16:
                buf = self._refill(buf, pos, 16)
                pos, end = 0, len(buf)
                if end < 16:
                    if end:
                        self.stop(f"truncated record header ({end} of 16 bytes)")
                    return
            sec, frac, caplen, wirelen = unpack(buf, pos)
            if caplen > limit:
                self.stop(f"corrupt record: captured length {caplen} exceeds {limit}")
                return
            need = 16 + caplen
            if end - pos < need:
                buf = self._refill(buf, pos, need)
                pos, end = 0, len(buf)
                if end < need:
                    self.stop(f"truncated packet data ({end - 16} of {caplen} bytes)")
                    return
            yield sec * 1_000_000_000 + frac * unit, link, buf, pos + 16, caplen, wirelen
            pos += need

    def _pcapng(self, buf: bytes) -> Iterator[Record]:
        self.format = "pcapng"
        interfaces: list[Interface] = []
        order = "<"
        head = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        last_ts = 0
        pos, end = 0, len(buf)
        while True:
            if end - pos < 12:
                buf = self._refill(buf, pos, 12)
                pos, end = 0, len(buf)
                if end < 12:
                    if end:
                        self.stop(f"truncated block header ({end} of 12 bytes)")
                    return
            block_type = struct.unpack_from("<I", buf, pos)[0]
            if block_type == PCAPNG_SHB:
                bom_le = struct.unpack_from("<I", buf, pos + 8)[0]
                if bom_le == PCAPNG_BOM:
                    order = "<"
                elif struct.unpack_from(">I", buf, pos + 8)[0] == PCAPNG_BOM:
                    order = ">"
                else:
                    self.stop("corrupt section header: bad byte-order magic")
                    return
                head = struct.Struct(order + "II").unpack_from
                epb = struct.Struct(order + "IIIII").unpack_from
                interfaces = []
            block_type, length = head(buf, pos)
            if length < 12 or length % 4 or length > MAX_BLOCK:
                self.stop(f"corrupt block: type {block_type:#x} with length {length}")
                return
            if end - pos < length:
                buf = self._refill(buf, pos, length)
                pos, end = 0, len(buf)
                if end < length:
                    self.stop(f"truncated block: type {block_type:#x}, {end} of {length} bytes")
                    return
            body = pos + 8
            if block_type == BLOCK_EPB:
                if length < 32:
                    self.stop(f"corrupt enhanced packet block of length {length}")
                    return
                iface_id, ts_hi, ts_lo, caplen, wirelen = epb(buf, body)
                if iface_id >= len(interfaces) or caplen > length - 32:
                    self.stop(f"corrupt enhanced packet block (interface {iface_id}, caplen {caplen})")
                    return
                iface = interfaces[iface_id]
                last_ts = ((ts_hi << 32) | ts_lo) * iface.mult // iface.div + iface.offset_ns
                yield last_ts, iface.link_type, buf, body + 20, caplen, wirelen
            elif block_type == BLOCK_IDB:
                interface = interface_of(buf, body, length, order)
                if isinstance(interface, str):
                    self.stop(interface)
                    return
                interfaces.append(interface)
                self._seen(interface.link_type)
            elif block_type == BLOCK_SPB:
                if not interfaces:
                    self.stop("simple packet block before any interface description")
                    return
                if length < 16:
                    self.stop(f"corrupt simple packet block of length {length}")
                    return
                iface = interfaces[0]
                wirelen = struct.unpack_from(order + "I", buf, body)[0]
                caplen = min(wirelen, length - 16, iface.snaplen or wirelen)
                yield last_ts, iface.link_type, buf, body + 4, caplen, wirelen
            elif block_type == BLOCK_PB:
                if length < 32:
                    self.stop(f"corrupt packet block of length {length}")
                    return
                fields = struct.unpack_from(order + "HHIIII", buf, body)
                iface_id, _drops, ts_hi, ts_lo, caplen, wirelen = fields
                if iface_id >= len(interfaces) or caplen > length - 32:
                    self.stop(f"corrupt packet block (interface {iface_id}, caplen {caplen})")
                    return
                iface = interfaces[iface_id]
                last_ts = ((ts_hi << 32) | ts_lo) * iface.mult // iface.div + iface.offset_ns
                yield last_ts, iface.link_type, buf, body + 20, caplen, wirelen
            pos += length


def interface_of(buf: bytes, body: int, length: int, order: str) -> Interface | str:
    """Parse the interface description block whose body starts at ``body``; or why it is malformed."""
    if length < 20:
        return f"corrupt interface description block of length {length}"
    link_type, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
    interface = Interface(link_type, snaplen)
    opt, opt_end = body + 8, body + length - 12
    while opt + 4 <= opt_end:
        code, size = struct.unpack_from(order + "HH", buf, opt)
        if code == 0:
            break
        value = opt + 4
        if value + size > opt_end:
            return "corrupt interface description block: option overruns the block"
        if code == OPT_TSRESOL and size >= 1:
            interface.set_resolution(buf[value])
        elif code == OPT_TSOFFSET and size >= 8:
            interface.offset_ns = struct.unpack_from(order + "q", buf, value)[0] * 1_000_000_000
        opt = value + ((size + 3) & ~3)
    return interface
