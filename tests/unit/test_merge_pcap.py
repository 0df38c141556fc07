"""The C merge of classic pcap files writes what the record-by-record merge writes, in mergecap's order.

The record-by-record merge (``merge_records``, any format) is the oracle for whole files byte for byte;
mergecap for the order and the packets; ``CaptureReader`` for where and why a damaged file ends.
Small reads (``chunk``) put records across read edges everywhere.
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from eks_capture.pcap import CaptureReader
from eks_capture_cli.merge import merge_files, merge_plain, merge_records
from eks_capture_cli.pcapng import MergeInput, PcapngOutput, all_plain
from tests.fixtures.descriptors import open_now

ETHERNET, RAW = 1, 101
S = 10**9
#: A point in time whose seconds' high half changes 3 s later (0x69460000 s).
HIGH_HALF_EDGE = (0x69460000 - 3) * S

Packet = tuple[int, bytes]


def write_pcap(
    path: Path,
    packets: Sequence[Packet],
    *,
    order: str = "<",
    nanoseconds: bool = True,
    link: int = ETHERNET,
) -> Path:
    """A classic pcap file of (time in ns, frame) records; microsecond files round times down."""
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = bytearray(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, link))
    for ts, frame in packets:
        frac = ts % S if nanoseconds else ts % S // 1000
        out += struct.pack(order + "IIII", ts // S, frac, len(frame), len(frame) + 4) + frame
    path.write_bytes(bytes(out))
    return path


def tagged(node: int, number: int, size: int) -> bytes:
    """A frame that says which input and which packet it is, ``size`` long (at least 8)."""
    return struct.pack(">II", node, number) + bytes(size - 8)


def random_packets(rng: random.Random, node: int, count: int, start: int, disorder: float) -> list[Packet]:
    """Times on a coarse grid (ties across inputs), a share of them earlier than the one before."""
    packets, ts = [], start
    for number in range(count):
        ts += rng.choice((0, 1000, 2000, 3000))
        late = rng.random() < disorder
        packets.append((ts - 5000 if late else ts, tagged(node, number, rng.randint(8, 90))))
    return packets


def fast_and_oracle(tmp_path: Path, inputs: Sequence[MergeInput], chunk: int) -> tuple[bytes, bytes]:
    """The C merge's (merge_plain's) file and the record-by-record merge's, same inputs and names."""
    names = {"10.0.0.1": ["shop/checkout-7f9c"]}
    fast, oracle = io.BytesIO(), io.BytesIO()
    merge_plain(inputs, fast, PcapngOutput(names), chunk=chunk)
    merge_records(inputs, oracle, PcapngOutput(names))
    return fast.getvalue(), oracle.getvalue()


@pytest.mark.parametrize(
    ("count", "lag", "chunk", "start"),
    [
        pytest.param(1, 0.0, 4096, 10 * S, id="one-packet-each"),
        pytest.param(400, 0.0, 4096, 10 * S, id="in-order"),
        pytest.param(400, 0.3, 4096, 10 * S, id="out-of-order-as-tcpdump-writes"),
        pytest.param(400, 0.3, 50, 10 * S, id="chunks-smaller-than-a-record"),
        pytest.param(400, 0.1, 333, HIGH_HALF_EDGE, id="seconds-cross-a-high-half-boundary"),
    ],
)
def test_interleaved_inputs_merge_to_the_same_bytes_as_record_by_record(
    tmp_path: Path, count: int, lag: float, chunk: int, start: int
) -> None:
    rng = random.Random(count * 7 + chunk)
    inputs = [
        MergeInput(write_pcap(tmp_path / f"{i}.pcap", random_packets(rng, i, count, start, lag)), f"n{i}")
        for i in range(4)
    ]

    fast, oracle = fast_and_oracle(tmp_path, inputs, chunk)

    assert fast == oracle


def test_byte_orders_resolutions_and_link_types_merge_like_record_by_record(tmp_path: Path) -> None:
    rng = random.Random(3)
    kinds = [("<", True, ETHERNET), (">", True, ETHERNET), ("<", False, ETHERNET), (">", False, RAW)]
    inputs = [
        MergeInput(
            write_pcap(
                tmp_path / f"{i}.pcap",
                random_packets(rng, i, 300, 10 * S, 0.2),
                order=order,
                nanoseconds=ns,
                link=link,
            ),
            "node-a" if i % 2 else "node-b",
        )
        for i, (order, ns, link) in enumerate(kinds)
    ]

    fast, oracle = fast_and_oracle(tmp_path, inputs, 1000)

    assert fast == oracle


def test_eleven_overlapping_inputs_merge_like_record_by_record(tmp_path: Path) -> None:
    rng = random.Random(9)
    inputs = [
        MergeInput(write_pcap(tmp_path / f"{i}.pcap", random_packets(rng, i, 50, 10 * S, 0.1)), f"n{i % 3}")
        for i in range(11)
    ]

    fast, oracle = fast_and_oracle(tmp_path, inputs, 700)

    assert fast == oracle


def test_an_input_without_packets_still_gets_its_interface(tmp_path: Path) -> None:
    rng = random.Random(8)
    inputs = [
        MergeInput(write_pcap(tmp_path / "a.pcap", random_packets(rng, 0, 100, 10 * S, 0.1)), "node-a"),
        MergeInput(write_pcap(tmp_path / "empty.pcap", [], link=RAW), "node-b"),
    ]

    fast, oracle = fast_and_oracle(tmp_path, inputs, 4096)

    assert fast == oracle
    assert b"node-b" in fast


@pytest.mark.parametrize(
    ("parts", "count", "apart"),
    [
        pytest.param(6, 100, S, id="one-after-the-other"),
        pytest.param(300, 30, 20_000, id="hundreds-of-files-a-few-overlapping"),
    ],
)
def test_rotated_files_opened_as_their_first_packet_comes_up(
    tmp_path: Path, parts: int, count: int, apart: int
) -> None:
    rng = random.Random(5)
    inputs = []
    for part in range(parts):
        packets = random_packets(rng, part, count, 10 * S + part * apart, 0.0)
        path = write_pcap(tmp_path / f"{part}.pcap", packets)
        inputs.append(MergeInput(path, f"node-{part % 2}", first_ns=packets[0][0]))

    fast, oracle = fast_and_oracle(tmp_path, inputs, 900)

    assert fast == oracle


@pytest.mark.parametrize(
    ("unreadable", "error"),
    [
        pytest.param("missing", FileNotFoundError, id="missing"),
        pytest.param("directory", IsADirectoryError, id="a-directory"),
    ],
)
def test_an_unreadable_input_raises_its_os_error_in_both_merges_and_leaves_no_file_open(
    tmp_path: Path, descriptors: set[str], unreadable: str, error: type[OSError]
) -> None:
    good = write_pcap(tmp_path / "a.pcap", random_packets(random.Random(1), 0, 50, 10 * S, 0.0))
    bad = tmp_path / unreadable
    if unreadable == "directory":
        bad.mkdir()
    inputs = [MergeInput(good, "a"), MergeInput(bad, "b", first_ns=10 * S + 20_000)]

    with pytest.raises(error) as fast:
        merge_plain(inputs, io.BytesIO(), PcapngOutput(), chunk=64)
    with pytest.raises(error) as oracle:
        merge_records(inputs, io.BytesIO(), PcapngOutput())

    assert fast.value.filename == oracle.value.filename == str(bad)
    assert open_now() == descriptors


def test_packet_bytes_that_look_like_record_headers_are_not_taken_for_records(tmp_path: Path) -> None:
    fake = struct.pack("<IIII", 10, 0, 4, 4) * 6  # the inputs' own seconds, lengths that chain
    packets = [(10 * S + n * 1000, struct.pack(">II", n, 0) + fake[: 8 + n % 80]) for n in range(300)]
    inputs = [MergeInput(write_pcap(tmp_path / "a.pcap", packets), "a")]

    fast, oracle = fast_and_oracle(tmp_path, inputs, 2048)

    assert fast == oracle


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param("cut-in-header", "truncated record header", id="cut-in-a-record-header"),
        pytest.param("cut-in-data", "truncated packet data", id="cut-in-packet-bytes"),
        pytest.param("corrupt-length", "corrupt record", id="impossible-captured-length"),
    ],
)
def test_a_damaged_input_ends_where_and_why_the_capture_reader_says(
    tmp_path: Path, damage: str, reason: str
) -> None:
    rng = random.Random(11)
    whole = write_pcap(tmp_path / "whole.pcap", random_packets(rng, 0, 200, 10 * S, 0.0))
    damaged = tmp_path / "damaged.pcap"
    packets = random_packets(rng, 1, 200, 10 * S, 0.0)
    data = bytearray(write_pcap(damaged, packets).read_bytes())
    middle = 24 + sum(16 + len(frame) for _ts, frame in packets[:120])
    if damage == "cut-in-header":
        data = data[: middle + 9]
    elif damage == "cut-in-data":
        data = data[: middle + 16 + 3]
    else:
        struct.pack_into("<I", data, middle + 8, 1 << 30)
    damaged.write_bytes(bytes(data))
    inputs = [MergeInput(whole, "a"), MergeInput(damaged, "b")]
    with damaged.open("rb") as stream:
        reader = CaptureReader(stream)
        read = sum(1 for _record in reader)

    fast, oracle = fast_and_oracle(tmp_path, inputs, 500)
    result = merge_files(inputs, tmp_path / "merged.pcapng")

    assert fast == oracle
    assert result.partial == {str(damaged): reader.reason}
    assert reason in result.partial[str(damaged)]
    assert result.packets == 200 + read == 200 + 120


def test_only_plain_classic_pcap_files_take_the_c_merge(tmp_path: Path) -> None:
    plain = write_pcap(tmp_path / "a.pcap", [(10 * S, tagged(0, 0, 60))])
    zipped = tmp_path / "a.pcap.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))

    assert all_plain([MergeInput(plain, "a")])
    assert not all_plain([MergeInput(plain, "a"), MergeInput(zipped, "b")])
    assert not all_plain([MergeInput(tmp_path / "missing.pcap", "a")])


def test_compressed_and_pcapng_inputs_merge_to_the_same_file_as_plain_pcap(tmp_path: Path) -> None:
    rng = random.Random(21)
    plain = [write_pcap(tmp_path / f"{i}.pcap", random_packets(rng, i, 200, 10 * S, 0.2)) for i in range(3)]
    zipped = tmp_path / "1.pcap.gz"
    zipped.write_bytes(gzip.compress(plain[1].read_bytes()))
    pcapng = tmp_path / "2.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(plain[2]), str(pcapng)], check=True, capture_output=True)

    merge_files([MergeInput(p, f"n{i}") for i, p in enumerate(plain)], tmp_path / "fast.pcapng")
    mixed = [MergeInput(plain[0], "n0"), MergeInput(zipped, "n1"), MergeInput(pcapng, "n2")]
    merge_files(mixed, tmp_path / "general.pcapng")

    assert (tmp_path / "fast.pcapng").read_bytes() == (tmp_path / "general.pcapng").read_bytes()


def test_packets_and_order_match_mergecap_and_tshark_reads_it_cleanly(tmp_path: Path) -> None:
    rng = random.Random(4)
    paths = [
        write_pcap(tmp_path / f"{i}.pcap", random_packets(rng, i, 500, 10 * S, 0.2), nanoseconds=False)
        for i in range(4)
    ]
    ours, theirs = tmp_path / "ours.pcapng", tmp_path / "mergecap.pcapng"

    merge_files([MergeInput(p, f"node-{i}") for i, p in enumerate(paths)], ours)
    subprocess.run(["mergecap", "-w", str(theirs), *map(str, paths)], check=True, capture_output=True)

    def packets(path: Path) -> list[tuple[int, bytes]]:
        with path.open("rb") as stream:
            return [(ts, bytes(buf[off : off + cap])) for ts, _l, buf, off, cap, _w in CaptureReader(stream)]

    assert packets(ours) == packets(theirs)
    names = subprocess.run(
        ["tshark", "-r", str(ours), "-T", "fields", "-e", "frame.interface_name"],
        capture_output=True,
        text=True,
        check=True,
    )
    nodes = [f"node-{struct.unpack_from('>I', frame)[0]}" for _ts, frame in packets(ours)]
    assert names.stdout.split() == nodes
    assert [line for line in names.stderr.splitlines() if "Running as user" not in line] == []
