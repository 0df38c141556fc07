"""The pcapng merge: time order with mergecap's tie rule, one named interface per node, names, early ends."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from eks_capture.pcap import CaptureReader
from eks_capture_cli.merge import merge_files
from eks_capture_cli.pcapng import MergeInput

ETHERNET, RAW = 1, 101


def write_pcap(path: Path, packets: list[tuple[int, bytes]], link: int = ETHERNET) -> Path:
    """A nanosecond pcap of (time in ns, frame) records."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, link))
    for ts, frame in packets:
        out += struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


def frame(tag: int, size: int = 60) -> bytes:
    """A distinct frame: its tag in the first bytes, ``size`` long (odd sizes exercise padding)."""
    return struct.pack(">I", tag) + bytes(size - 4)


def blocks(path: Path) -> list[tuple[int, bytes]]:
    """(type, body) of every pcapng block, read independently of the code under test."""
    data, found, pos = path.read_bytes(), [], 0
    while pos < len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        assert struct.unpack_from("<I", data, pos + length - 4)[0] == length
        found.append((kind, data[pos + 8 : pos + length - 4]))
        pos += length
    return found


def options(body: bytes) -> dict[int, bytes]:
    found, pos = {}, 0
    while pos + 4 <= len(body):
        code, size = struct.unpack_from("<HH", body, pos)
        if code == 0:
            break
        found[code] = body[pos + 4 : pos + 4 + size]
        pos += 4 + size + (-size & 3)
    return found


def merged(path: Path) -> list[tuple[int, str, int]]:
    """(time ns, interface name, tag) of each packet, in file order."""
    names = [options(body[8:]).get(2, b"").decode() for kind, body in blocks(path) if kind == 1]
    packets = []
    for kind, body in blocks(path):
        if kind == 6:
            iface, high, low, _caplen, _wire = struct.unpack_from("<IIIII", body)
            packets.append(((high << 32) | low, names[iface], struct.unpack_from(">I", body, 20)[0]))
    return packets


S = 10**9


@pytest.mark.parametrize(
    ("a_times", "b_times"),
    [
        pytest.param([1, 3, 5, 7], [2, 4, 6, 8], id="interleaved"),
        pytest.param([1, 2, 3], [10, 11, 12], id="consecutive"),
        pytest.param([5, 5, 6], [5, 6, 6], id="equal-times"),
        pytest.param([1, 9], [2, 3, 4, 5, 6, 7, 8], id="one-long-run"),
    ],
)
def test_packets_come_out_in_time_order_ties_to_the_input_listed_last(
    tmp_path: Path, a_times: list[int], b_times: list[int]
) -> None:
    a = write_pcap(tmp_path / "a.pcap", [(t * S, frame(100 + i, 60 + i)) for i, t in enumerate(a_times)])
    b = write_pcap(tmp_path / "b.pcap", [(t * S, frame(200 + i, 61 + i)) for i, t in enumerate(b_times)])
    tagged = [(t * S, 1, "node-a", 100 + i) for i, t in enumerate(a_times)]
    tagged += [(t * S, 0, "node-b", 200 + i) for i, t in enumerate(b_times)]  # 0: listed last wins a tie
    expected = [(ts, node, tag) for ts, _rank, node, tag in sorted(tagged)]

    result = merge_files([MergeInput(a, "node-a"), MergeInput(b, "node-b")], tmp_path / "out.pcapng")

    assert merged(tmp_path / "out.pcapng") == expected
    assert result.packets == len(expected)
    assert [r[0] for r in CaptureReader((tmp_path / "out.pcapng").open("rb"))] == [e[0] for e in expected]


def test_a_file_that_starts_later_is_opened_late_and_still_merged_in_order(tmp_path: Path) -> None:
    early = write_pcap(tmp_path / "early.pcap", [(t * S, frame(t)) for t in (1, 2, 30, 31)])
    late = write_pcap(tmp_path / "late.pcap", [(t * S, frame(t)) for t in (20, 21, 40)])
    inputs = [MergeInput(early, "n1", first_ns=1 * S), MergeInput(late, "n2", first_ns=20 * S)]

    merge_files(inputs, tmp_path / "out.pcapng")

    assert [tag for _ts, _node, tag in merged(tmp_path / "out.pcapng")] == [1, 2, 20, 21, 30, 31, 40]


def test_files_of_one_node_share_its_interface_and_other_link_types_get_their_own(tmp_path: Path) -> None:
    one = write_pcap(tmp_path / "1.pcap", [(1 * S, frame(1))])
    two = write_pcap(tmp_path / "2.pcap", [(2 * S, frame(2))])
    raw = write_pcap(tmp_path / "3.pcap", [(3 * S, bytes([0x45]) + bytes(39))], link=RAW)

    result = merge_files(
        [MergeInput(one, "node-a"), MergeInput(two, "node-a"), MergeInput(raw, "node-a")],
        tmp_path / "o.pcapng",
    )

    interfaces = [body for kind, body in blocks(tmp_path / "o.pcapng") if kind == 1]
    assert [struct.unpack_from("<H", body)[0] for body in interfaces] == [ETHERNET, RAW]
    assert {options(body[8:])[2] for body in interfaces} == {b"node-a"}
    assert all(options(body[8:])[9] == b"\x09" for body in interfaces)  # nanosecond timestamps
    assert result.interfaces == 2


def test_names_become_one_name_resolution_block_before_the_packets(tmp_path: Path) -> None:
    source = write_pcap(tmp_path / "a.pcap", [(1 * S, frame(1))])
    names = {"10.0.3.7": ["shop/checkout-7f9c"], "fd00::7": ["kube-system/kube-dns service", "dns"]}

    merge_files([MergeInput(source, "node-a")], tmp_path / "o.pcapng", names)

    kinds = [kind for kind, _body in blocks(tmp_path / "o.pcapng")]
    assert kinds == [0x0A0D0D0A, 1, 4, 6]
    body = dict(blocks(tmp_path / "o.pcapng"))[4]
    records, pos = {}, 0
    while True:
        kind, size = struct.unpack_from("<HH", body, pos)
        if kind == 0:
            break
        width = 4 if kind == 1 else 16
        value = body[pos + 4 : pos + 4 + size]
        records[str(ipaddress.ip_address(value[:width]))] = value[width:].rstrip(b"\0").decode().split("\0")
        pos += 4 + size + (-size & 3)
    assert records == names


def test_a_truncated_input_is_merged_up_to_its_end_and_reported(tmp_path: Path) -> None:
    whole = write_pcap(tmp_path / "w.pcap", [(t * S, frame(t)) for t in (1, 3)])
    cut = tmp_path / "cut.pcap"
    write_pcap(cut, [(t * S, frame(t)) for t in (2, 4)])
    cut.write_bytes(cut.read_bytes()[:-10])

    result = merge_files([MergeInput(whole, "a"), MergeInput(cut, "b")], tmp_path / "o.pcapng")

    assert [tag for _ts, _node, tag in merged(tmp_path / "o.pcapng")] == [1, 2, 3]
    assert list(result.partial) == [str(cut)]
    assert "truncated" in result.partial[str(cut)]
