"""The agent's pcap scan: packet count and first/last timestamps, in any byte order and precision."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from eks_capture_agent.pcapscan import NotPcapError, scan_pcap

MAGIC_MICRO, MAGIC_NANO = 0xA1B2C3D4, 0xA1B23C4D


def _pcap(packets: list[tuple[int, int, bytes]], endian: str = "<", magic: int = MAGIC_MICRO) -> bytes:
    header = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    records = b"".join(struct.pack(endian + "IIII", s, f, len(d), len(d)) + d for s, f, d in packets)
    return header + records


PACKETS = [(1_700_000_000 + n, 250_000 * (n % 4), bytes(60 + n * 7)) for n in range(200)]


@pytest.mark.parametrize(
    ("endian", "magic", "tick"),
    [("<", MAGIC_MICRO, 1e-6), (">", MAGIC_MICRO, 1e-6), ("<", MAGIC_NANO, 1e-9), (">", MAGIC_NANO, 1e-9)],
)
def test_counts_packets_and_reads_first_and_last_time(
    tmp_path: Path, endian: str, magic: int, tick: float
) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap(PACKETS, endian, magic))
    summary = scan_pcap(path)
    assert summary.packets == len(PACKETS)
    assert summary.first_packet == pytest.approx(PACKETS[0][0] + PACKETS[0][1] * tick)
    assert summary.last_packet == pytest.approx(PACKETS[-1][0] + PACKETS[-1][1] * tick)
    assert summary.linktype == 1
    assert not summary.truncated


def test_records_spanning_read_chunks_are_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("eks_capture_agent.pcapscan.READ_BYTES", 97)
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap(PACKETS))
    assert scan_pcap(path).packets == len(PACKETS)


def test_a_file_cut_inside_a_record_counts_only_whole_records(tmp_path: Path) -> None:
    whole = _pcap(PACKETS[:10])
    path = tmp_path / "x.pcap"
    path.write_bytes(whole[:-5])
    summary = scan_pcap(path)
    assert summary.packets == 9
    assert summary.trailing_bytes == 16 + len(PACKETS[9][2]) - 5


def test_an_empty_capture_has_no_packet_times(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap([]))
    summary = scan_pcap(path)
    assert (summary.packets, summary.first_packet, summary.last_packet) == (0, None, None)


@pytest.mark.parametrize(
    "content", [b"", b"\x28\xb5\x2f\xfd" + bytes(40), b"not a capture at all, just text"]
)
def test_other_files_are_rejected_by_name(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pcap"
    path.write_bytes(content)
    with pytest.raises(NotPcapError, match=r"odd\.pcap"):
        scan_pcap(path)
