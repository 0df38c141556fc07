"""The C merge of pcapng files writes what the record-by-record merge writes, and stops where it does.

``merge_records`` (through ``CaptureReader``) is the oracle byte for byte; small reads (``chunk``) put
blocks across read edges everywhere.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from eks_capture.pcap import CaptureReader
from eks_capture_cli.merge import TIME_OUT_OF_RANGE, merge_files, merge_plain, merge_records
from eks_capture_cli.pcapng import MergeInput, PcapngOutput, all_plain

S = 10**9
Packet = tuple[int, int, bytes]  # interface, time in ns, frame


def block(order: str, kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack(order + "II", kind, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))


def section(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def interface(order: str, link: int, tsresol: int | None) -> bytes:
    options = b"" if tsresol is None else struct.pack(order + "HHB3x", 9, 1, tsresol)
    return block(order, 1, struct.pack(order + "HHI", link, 0, 0) + options + struct.pack(order + "HH", 0, 0))


def packet(order: str, iface: int, units: int, frame: bytes) -> bytes:
    head = struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame) + 4)
    return block(order, 6, head + frame)


def units(ts: int, resolution: int | None) -> int:
    """A time in ns in an interface's units (if_tsresol: 10^-n s, or 2^-n s with the top bit set)."""
    if resolution is None:
        return ts // 1000
    if resolution & 0x80:
        return ts * (1 << (resolution & 0x7F)) // S
    return ts // int(10 ** (9 - resolution))


def pcapng(
    path: Path,
    packets: Sequence[Packet],
    *,
    order: str = "<",
    resolutions: Sequence[int | None] = (9,),
    extras: bool = False,
) -> Path:
    """A pcapng file; ``extras`` adds what dumpcap and editcap write besides packets (statistics, names,
    a simple packet block, an interface described after the first packets)."""
    out = bytearray(section(order))
    for index, resolution in enumerate(resolutions):
        if not (extras and index == len(resolutions) - 1):
            out += interface(order, 1, resolution)
    for number, (iface, ts, frame) in enumerate(packets):
        if extras and number == len(packets) // 2:
            out += interface(order, 1, resolutions[-1])
            out += block(order, 4, struct.pack(order + "HH4sB3x", 1, 5, bytes([10, 0, 0, 1]), 0) + bytes(4))
            out += block(order, 3, struct.pack(order + "I", len(frame)) + frame)
        if extras and iface == len(resolutions) - 1 and number < len(packets) // 2:
            iface = 0
        out += packet(order, iface, units(ts, resolutions[iface]), frame)
    if extras:
        out += block(order, 5, struct.pack(order + "IIIHH", 0, 0, 0, 0, 0))
    path.write_bytes(bytes(out))
    return path


def packets_of(rng: random.Random, node: int, count: int, interfaces: int = 1) -> list[Packet]:
    """Times on a coarse grid (ties across inputs), some earlier than the one before, tagged frames."""
    found, ts = [], 10 * S
    for number in range(count):
        ts += rng.choice((0, 1000, 2000, 3000))
        late = rng.random() < 0.2
        frame = struct.pack(">II", node, number) + bytes(rng.randint(0, 80))
        found.append((rng.randrange(interfaces), ts - 5000 if late else ts, frame))
    return found


def fast_and_oracle(inputs: Sequence[MergeInput], chunk: int) -> tuple[bytes, bytes]:
    fast, oracle = io.BytesIO(), io.BytesIO()
    merge_plain(inputs, fast, PcapngOutput({"10.0.0.1": ["shop/checkout"]}), chunk=chunk)
    merge_records(inputs, oracle, PcapngOutput({"10.0.0.1": ["shop/checkout"]}))
    return fast.getvalue(), oracle.getvalue()


@pytest.mark.parametrize("chunk", [64, 500, 4096, 1 << 18])
@pytest.mark.parametrize(
    ("order", "resolutions", "extras"),
    [
        pytest.param("<", (9,), False, id="nanoseconds"),
        pytest.param("<", (None,), False, id="microseconds-by-default-as-editcap-writes"),
        pytest.param(">", (6, 9), False, id="big-endian-two-interfaces"),
        pytest.param("<", (6, 3), True, id="statistics-names-simple-packets-late-interface"),
        pytest.param("<", (0x80 | 20,), False, id="binary-fractions-of-a-second"),
    ],
)
def test_pcapng_inputs_merge_to_the_same_bytes_as_record_by_record(
    tmp_path: Path, chunk: int, order: str, resolutions: tuple[int | None, ...], extras: bool
) -> None:
    rng = random.Random(chunk)
    inputs = [
        MergeInput(
            pcapng(
                tmp_path / f"{i}.pcapng",
                packets_of(rng, i, 300, len(resolutions)),
                order=order,
                resolutions=resolutions,
                extras=extras,
            ),
            f"n{i}",
        )
        for i in range(3)
    ]

    fast, oracle = fast_and_oracle(inputs, chunk)

    assert fast == oracle


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param("cut-in-header", "truncated block header", id="cut-in-a-block-header"),
        pytest.param("cut-in-block", "truncated block: type 0x6", id="cut-in-a-packet-block"),
        pytest.param("odd-length", "corrupt block: type 0x6", id="a-length-not-a-multiple-of-4"),
        pytest.param(
            "unknown-interface", "corrupt enhanced packet block (interface 7", id="no-such-interface"
        ),
    ],
)
def test_a_damaged_pcapng_input_ends_where_and_why_the_capture_reader_says(
    tmp_path: Path, damage: str, reason: str
) -> None:
    rng = random.Random(5)
    whole = pcapng(tmp_path / "whole.pcapng", packets_of(rng, 0, 200))
    packets = packets_of(rng, 1, 200)
    damaged = pcapng(tmp_path / "damaged.pcapng", packets)
    data = bytearray(damaged.read_bytes())
    middle = len(section("<")) + len(interface("<", 1, 9))
    middle += sum(len(packet("<", 0, 0, frame)) for _i, _ts, frame in packets[:120])
    if damage == "cut-in-header":
        data = data[: middle + 9]
    elif damage == "cut-in-block":
        data = data[: middle + 30]
    elif damage == "odd-length":
        struct.pack_into("<I", data, middle + 4, 61)
    else:
        struct.pack_into("<I", data, middle + 8, 7)
    damaged.write_bytes(bytes(data))
    inputs = [MergeInput(whole, "a"), MergeInput(damaged, "b")]
    with damaged.open("rb") as stream:
        reader = CaptureReader(stream)
        read = sum(1 for _record in reader)

    fast, oracle = fast_and_oracle(inputs, 700)
    result = merge_files(inputs, tmp_path / "merged.pcapng")

    assert fast == oracle
    assert result.partial == {str(damaged): reader.reason}
    assert reason in result.partial[str(damaged)]
    assert result.packets == 200 + read == 200 + 120


def test_plain_pcapng_files_take_the_c_merge_and_compressed_ones_do_not(tmp_path: Path) -> None:
    plain = pcapng(tmp_path / "a.pcapng", packets_of(random.Random(1), 0, 3))
    truncated = tmp_path / "b.pcapng"
    truncated.write_bytes(plain.read_bytes()[:10])
    zipped = tmp_path / "c.pcapng.zst"
    zipped.write_bytes(b"\x28\xb5\x2f\xfd" + plain.read_bytes())

    assert all_plain([MergeInput(plain, "a")])
    assert not all_plain([MergeInput(plain, "a"), MergeInput(zipped, "c")])
    assert not all_plain([MergeInput(truncated, "b")])


def test_a_packet_time_beyond_64_bits_ends_its_input_in_both_merges_with_a_reason(tmp_path: Path) -> None:
    rng = random.Random(6)
    whole = pcapng(tmp_path / "whole.pcapng", packets_of(rng, 0, 50))
    packets = packets_of(rng, 1, 50)
    late = pcapng(tmp_path / "late.pcapng", packets, resolutions=(0,))  # whole seconds
    data = bytearray(late.read_bytes())
    middle = len(section("<")) + len(interface("<", 1, 0))
    middle += sum(len(packet("<", 0, 0, frame)) for _i, _ts, frame in packets[:30])
    struct.pack_into("<I", data, middle + 12, 0xFFFFFFFF)  # the time's high half: 2^64 s and more
    late.write_bytes(bytes(data))
    inputs = [MergeInput(whole, "a"), MergeInput(late, "b")]

    fast, oracle = fast_and_oracle(inputs, 700)
    by_records = merge_records(inputs, io.BytesIO(), PcapngOutput())
    result = merge_files(inputs, tmp_path / "merged.pcapng")

    assert fast == oracle
    assert by_records.partial == result.partial == {str(late): TIME_OUT_OF_RANGE}
    assert by_records.packets == result.packets == 50 + 30


def test_a_merge_of_plain_files_never_imports_numpy(tmp_path: Path) -> None:
    source = pcapng(tmp_path / "a.pcapng", packets_of(random.Random(2), 0, 50))
    command = Path(sys.executable).with_name("eks-capture")

    done = subprocess.run(
        [str(command), "merge", str(source), "-o", str(tmp_path / "o.pcapng")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
    )

    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "eks_capture_cli.merge" in imported
    assert [name for name in imported if name.split(".")[0] == "numpy"] == []
    assert (tmp_path / "o.pcapng").stat().st_size > source.stat().st_size
