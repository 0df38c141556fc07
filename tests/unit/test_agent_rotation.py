"""The capture role cuts tcpdump's stream into tcpdump-named files, and starts none without room for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from eks_capture_agent.pcapscan import scan_pcap
from eks_capture_agent.rotation import RotatingWriter, Rotation, StreamError, minimum_budget
from eks_capture_agent.spool import Spool, parse_pcap_name
from tests.fixtures.packets import Packet, pcap

START = 1_795_000_000.0  # 2026-11-18T...Z
STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(START))
RECORD = 16 + 1000


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def stream(count: int, order: str = "<") -> bytes:
    return pcap([Packet(int(START * 1e9) + index, b"p" * 1000) for index in range(count)], order=order)


def writer(
    spool: Path, file_bytes: int = 10_000, seconds: int = 60, budget: int | None = None
) -> RotatingWriter:
    return RotatingWriter(Spool(spool), Rotation(seconds, file_bytes, 1000), budget, Logger(), Clock())


def files(spool: Path) -> list[str]:
    names = [name for path in spool.iterdir() if (name := parse_pcap_name(path.name)) is not None]
    return [name.filename for name in sorted(names)]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_every_record_lands_whole_in_files_no_larger_than_the_rotation_size(
    tmp_path: Path, order: str, chunk: int
) -> None:
    data = stream(25, order)
    cutter = writer(tmp_path)
    for start in range(0, len(data), chunk):
        cutter.feed(data[start : start + chunk])
    cutter.close()

    names = files(tmp_path)
    assert names == [f"{STAMP}.pcap{n or ''}" for n in range(3)]  # 9 + 9 + 7 records of 1016 bytes
    sizes = [(tmp_path / name).stat().st_size for name in names]
    assert max(sizes) <= 10_000
    assert sum(scan_pcap(tmp_path / name).packets for name in names) == 25
    assert all(scan_pcap(tmp_path / name).trailing_bytes == 0 for name in names)


def test_a_new_period_starts_a_new_stamp_with_no_counter(tmp_path: Path) -> None:
    cutter = writer(tmp_path, file_bytes=0, seconds=10)
    data = stream(4)
    cutter.feed(data[: 24 + 2 * RECORD])
    assert isinstance(cutter._clock, Clock)
    cutter._clock.now += 10
    cutter.feed(data[24 + 2 * RECORD :])
    cutter.close()

    later = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(START + 10))
    assert files(tmp_path) == [f"{STAMP}.pcap", f"{later}.pcap"]
    assert [scan_pcap(tmp_path / name).packets for name in files(tmp_path)] == [2, 2]


def test_output_that_is_not_pcap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match="not pcap"):
        writer(tmp_path).feed(b"tcpdump: listening on eth0" + b"\x00" * 24)


def test_a_full_spool_holds_the_next_file_empty_until_the_uploader_frees_room(tmp_path: Path) -> None:
    rotation = Rotation(60, 10_000, 1000)
    budget = minimum_budget(rotation)
    waiting = tmp_path / "20261101T000000Z.pcap"  # an older closed file the uploader has not shipped yet
    waiting.write_bytes(b"w" * (budget - Spool(tmp_path).usage_bytes() - 20_000))
    cutter = RotatingWriter(Spool(tmp_path), rotation, budget, Logger(), Clock())
    threading.Timer(0.3, waiting.unlink).start()
    started = time.monotonic()
    cutter.feed(stream(3))
    cutter.close()

    assert time.monotonic() - started >= 0.25
    assert cutter.waited_seconds >= 0.25
    assert scan_pcap(tmp_path / f"{STAMP}.pcap").packets == 3


def test_with_room_the_writer_never_waits(tmp_path: Path) -> None:
    rotation = Rotation(60, 10_000, 1000)
    cutter = RotatingWriter(Spool(tmp_path), rotation, minimum_budget(rotation), Logger(), Clock())
    cutter.feed(stream(3))
    cutter.close()
    assert cutter.waited_seconds < 0.05
