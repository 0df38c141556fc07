"""The streaming reader: every file layout it must accept, and every way a file can be broken."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from eks_capture.pcap import CaptureReader
from tests.fixtures.packets import Packet, ethernet, ipv4, pcap, pcapng, sll2, tcp

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"
BASE_NS = 1_764_000_000_000_000_000
FRAMES = [ethernet(ipv4(tcp(seq=100 + i, payload=b"x" * i))) for i in range(3)]


def read(data: bytes) -> tuple[CaptureReader, list[tuple[int, int, bytes, int]]]:
    reader = CaptureReader(io.BytesIO(data))
    records = [
        (ts, link, bytes(buf[off : off + caplen]), wirelen) for ts, link, buf, off, caplen, wirelen in reader
    ]
    return reader, records


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["microseconds", "nanoseconds"])
def test_pcap_in_either_byte_order_and_resolution_gives_back_each_packet_and_its_time(
    order: str, nano: bool
) -> None:
    step = 1_234_567 if nano else 1_234_000
    packets = [Packet(BASE_NS + i * step, frame) for i, frame in enumerate(FRAMES)]
    reader, records = read(pcap(packets, order=order, nano=nano))
    assert records == [(p.ts_ns, 1, p.data, len(p.data)) for p in packets]
    assert (reader.format, reader.partial, reader.link_types) == ("pcap", False, [1])


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcapng_interfaces_keep_their_own_link_type_and_time_resolution(order: str) -> None:
    packets = [
        Packet(BASE_NS + 1_000, FRAMES[0], interface=0),
        Packet(BASE_NS + 2_345, sll2(ipv4(tcp(seq=7))), interface=1),
        Packet(BASE_NS + 3_000, FRAMES[1], interface=0),
    ]
    reader, records = read(pcapng(packets, interfaces=[(1, 6), (276, 9)], order=order))
    assert [(ts, link) for ts, link, _data, _len in records] == [
        (BASE_NS + 1_000, 1),
        (BASE_NS + 2_345, 276),
        (BASE_NS + 3_000, 1),
    ]
    assert [data for _ts, _link, data, _len in records] == [p.data for p in packets]
    assert reader.link_types == [1, 276]


def test_a_new_pcapng_section_may_switch_byte_order() -> None:
    first = pcapng([Packet(BASE_NS, FRAMES[0])], order="<")
    second = pcapng([Packet(BASE_NS + 1000, FRAMES[1])], interfaces=[(276, 9)], order=">")
    reader, records = read(first + second)
    assert [(link, data) for _ts, link, data, _len in records] == [(1, FRAMES[0]), (276, FRAMES[1])]
    assert not reader.partial


@pytest.mark.parametrize(
    ("compression", "compress"),
    [("gzip", gzip.compress), ("zstd", lambda data: zstandard.ZstdCompressor().compress(data))],
)
def test_compressed_files_read_like_plain_ones(compression: str, compress: object) -> None:
    plain = (CAPTURES / "server-head.pcapng").read_bytes()
    assert callable(compress)
    reader, records = read(compress(plain))
    assert records == read(plain)[1]
    assert (reader.compression, reader.partial) == (compression, False)


def _layout(data: bytes) -> tuple[set[int], list[int]]:
    """Where a file may end cleanly (after the header or any block/record) and where each packet ends."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":  # little-endian pcapng: walk the blocks
        clean, packets, pos = set(), [], 0
        while pos < len(data):
            kind, length = struct.unpack_from("<II", data, pos)
            pos += length
            clean.add(pos)
            if kind == 6:
                packets.append(pos)
        return clean, packets
    pos, packets = 24, []
    while pos < len(data):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        packets.append(pos)
    return {24, *packets}, packets


@pytest.mark.parametrize("name", ["any-nano-head.pcap", "server-head.pcapng"])
def test_a_real_file_cut_at_any_byte_yields_the_whole_packets_before_the_cut_and_says_so(name: str) -> None:
    data = (CAPTURES / name).read_bytes()
    _reader, full = read(data)
    clean, packet_ends = _layout(data)
    assert len(packet_ends) == len(full) == 24
    for cut in range(len(data)):
        reader, records = read(data[:cut])
        assert records == full[: sum(1 for end in packet_ends if end <= cut)], cut
        assert reader.partial is (cut not in clean), (cut, reader.reason)


def test_a_gzip_stream_cut_short_is_partial_with_the_decompressor_s_reason() -> None:
    packed = gzip.compress((CAPTURES / "any-nano-head.pcap").read_bytes())
    reader, records = read(packed[: len(packed) // 2])
    assert reader.partial
    assert reader.reason is not None
    assert reader.reason.startswith("gzip")
    assert len(records) < 24


def _pcap_with_caplen(caplen: int) -> bytes:
    good = pcap([Packet(BASE_NS, FRAMES[0])])
    return good[:24] + struct.pack("<IIII", 0, 0, caplen, caplen) + good[40:]


def _pcapng_with_block_length(length: int) -> bytes:
    good = pcapng([Packet(BASE_NS, FRAMES[0])])
    shb_length = struct.unpack_from("<I", good, 4)[0]
    idb_length = struct.unpack_from("<I", good, shb_length + 4)[0]
    epb = shb_length + idb_length
    return good[:epb] + struct.pack("<II", 6, length) + good[epb + 8 :]


def _pcapng_with_simple_packet_block_of_header_only() -> bytes:
    good = pcapng([Packet(BASE_NS, FRAMES[0])])
    epb = len(good) - (12 + 20 + len(FRAMES[0]) + (-len(FRAMES[0]) % 4))
    return good[:epb] + struct.pack("<III", 3, 12, 12)


def _pcapng_with_unknown_interface() -> bytes:
    good = pcapng([Packet(BASE_NS, FRAMES[0])])
    epb = len(good) - (12 + 20 + len(FRAMES[0]) + (-len(FRAMES[0]) % 4))
    return good[: epb + 8] + struct.pack("<I", 5) + good[epb + 12 :]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"\xd4\xc3", "truncated file header"),
        (b"GIF89a" + b"\x00" * 40, "not a pcap or pcapng file"),
        (_pcap_with_caplen(10_000_000), "corrupt record"),
        (_pcapng_with_block_length(30), "corrupt block"),
        (_pcapng_with_block_length(4), "corrupt block"),
        (_pcapng_with_unknown_interface(), "corrupt enhanced packet block"),
        (b"\x0a\x0d\x0d\x0a" + b"\x1c\x00\x00\x00" + b"\x00" * 20, "bad byte-order magic"),
        (_pcapng_with_simple_packet_block_of_header_only(), "corrupt simple packet block of length 12"),
        (pcap([Packet(BASE_NS, FRAMES[0])], link_type=0x10001), "unsupported link type 0x10001"),
    ],
    ids=[
        "empty",
        "short-header",
        "not-a-capture",
        "huge-caplen",
        "unaligned-block",
        "block-shorter-than-its-header",
        "unknown-interface",
        "bad-byte-order-magic",
        "simple-packet-block-without-room-for-its-length",
        "link-type-beyond-16-bits",
    ],
)
def test_a_broken_file_stops_with_a_reason_instead_of_an_error(data: bytes, reason: str) -> None:
    reader, _records = read(data)
    assert reader.partial
    assert reader.reason is not None
    assert reason in reader.reason


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from(
        [pcap([Packet(BASE_NS, FRAMES[0])])[:24], pcapng([Packet(BASE_NS, FRAMES[0])])[:60], b"\x1f\x8b", b""]
    ),
    noise=st.binary(max_size=400),
)
def test_random_bytes_after_a_valid_header_never_raise_or_hang(head: bytes, noise: bytes) -> None:
    reader, records = read(head + noise)
    assert len(records) <= len(noise)
    assert reader.partial or reader.reason is None


class Trickle:
    """A network-like body: at most ``size`` bytes per read, whatever was asked for."""

    def __init__(self, data: bytes, size: int) -> None:
        self.stream = io.BytesIO(data)
        self.size = size

    def read(self, size: int = -1, /) -> bytes:
        return self.stream.read(min(self.size, size) if size >= 0 else self.size)


@pytest.mark.parametrize("compress", [bytes, gzip.compress], ids=["plain", "gzip"])
def test_short_reads_from_a_streaming_body_give_the_same_packets(compress: object) -> None:
    plain = (CAPTURES / "server-head.pcapng").read_bytes()
    assert callable(compress)
    reader = CaptureReader(Trickle(compress(plain), 7))
    records = [
        (ts, link, bytes(buf[off : off + caplen]), wirelen) for ts, link, buf, off, caplen, wirelen in reader
    ]
    assert records == read(plain)[1]
    assert not reader.partial


class Failing:
    """A body whose connection drops after the first read."""

    def __init__(self, data: bytes) -> None:
        self.data: bytes | None = data

    def read(self, size: int = -1, /) -> bytes:
        if self.data is None:
            raise ConnectionResetError("connection reset by peer")
        data, self.data = self.data, None
        return data


def test_an_io_error_of_the_source_propagates_so_the_caller_can_retry() -> None:
    head = (CAPTURES / "server-head.pcapng").read_bytes()[:100]
    with pytest.raises(ConnectionResetError):
        list(CaptureReader(Failing(head)))


def test_a_corrupt_gzip_stream_is_partial_not_an_error() -> None:
    packed = bytearray(gzip.compress((CAPTURES / "any-nano-head.pcap").read_bytes()))
    packed[3] = 0xFF  # reserved flag bits set: not a valid gzip header
    reader, _records = read(bytes(packed))
    assert reader.partial
    assert reader.reason is not None
    assert reader.reason.startswith("gzip")
