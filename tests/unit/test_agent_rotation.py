"""The capture role cuts tcpdump's stream into tcpdump-named files, and starts none without room for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from eks_capture_agent.capture import StreamPump
from eks_capture_agent.pcapscan import scan_pcap
from eks_capture_agent.rotation import NoRoomError, RotatingWriter, Rotation, StreamError, minimum_budget
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
    assert sum(scan_pcap(tmp_path / name).packets for name in names) == 25 == cutter.packets
    assert all(scan_pcap(tmp_path / name).trailing_bytes == 0 for name in names)


def test_a_record_cut_by_tcpdumps_end_is_kept_but_not_counted_as_written(tmp_path: Path) -> None:
    cutter = writer(tmp_path)
    cutter.feed(stream(5)[:-100])
    cutter.close()
    assert cutter.packets == 4
    summary = scan_pcap(tmp_path / f"{STAMP}.pcap")
    assert (summary.packets, summary.trailing_bytes) == (4, RECORD - 100)


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


LATER = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(START + 1))
RESTART_CASES = {
    # what a previous run left in the ring: the name of the restarted writer's first file
    "an empty spool": ([], f"{STAMP}.pcap"),
    "an older period": (["20261101T000000Z.pcap3"], f"{STAMP}.pcap"),
    "a file of the same second": ([f"{STAMP}.pcap"], f"{STAMP}.pcap1"),
    "rotations in the same second": ([f"{STAMP}.pcap", f"{STAMP}.pcap1", f"{STAMP}.pcap2"], f"{STAMP}.pcap3"),
    "a later stamp (the clock stepped back)": ([f"{LATER}.pcap"], f"{LATER}.pcap1"),
}


@pytest.mark.parametrize(("left", "first"), RESTART_CASES.values(), ids=RESTART_CASES.keys())
def test_a_restarted_writer_starts_after_the_previous_runs_files_and_never_overwrites_one(
    tmp_path: Path, left: list[str], first: str
) -> None:
    for name in left:
        (tmp_path / name).write_bytes(stream(2))
    cutter = writer(tmp_path)
    cutter.feed(stream(3))
    cutter.close()
    assert files(tmp_path) == [*left, first], "the new file sorts after the previous run's, as it was made"
    assert [scan_pcap(tmp_path / name).packets for name in left] == [2] * len(left)
    assert scan_pcap(tmp_path / first).packets == 3


def test_output_that_is_not_pcap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match="not pcap"):
        writer(tmp_path).feed(b"tcpdump: listening on eth0" + b"\x00" * 24)


def test_a_full_spool_holds_the_next_file_empty_until_the_uploader_frees_room(tmp_path: Path) -> None:
    rotation = Rotation(60, 10_000, 1000)
    budget = minimum_budget(rotation)
    waiting = tmp_path / "20261101T000000Z.pcap"  # an older closed file the uploader has not shipped yet
    waiting.write_bytes(b"w" * (budget - Spool(tmp_path).usage_bytes() - 20_000))
    cutter = RotatingWriter(Spool(tmp_path), rotation, budget, Logger(), Clock())
    started = time.monotonic()  # before the timer, so a stall between them cannot shorten the wait seen
    threading.Timer(0.3, waiting.unlink).start()
    cutter.feed(stream(3))
    cutter.close()

    assert time.monotonic() - started >= 0.25
    assert cutter.waited_seconds >= 0.25
    assert scan_pcap(tmp_path / f"{STAMP}.pcap").packets == 3


def test_once_tcpdump_is_stopping_the_writer_waits_for_room_only_until_it_gives_up(tmp_path: Path) -> None:
    rotation = Rotation(60, 10_000, 1000)
    budget = minimum_budget(rotation)
    cutter = RotatingWriter(Spool(tmp_path), rotation, budget, Logger(), Clock())
    cutter.feed(stream(8))  # 8 of the 9 records a 10,000-byte file holds
    never_leaves = tmp_path / "20261101T000000Z.pcap"
    never_leaves.write_bytes(b"w" * (budget - Spool(tmp_path).usage_bytes() - 10_000))
    cutter.give_up_at = time.monotonic() + 0.1

    with pytest.raises(NoRoomError, match="no room for the next file by the stop"):
        cutter.feed(stream(12)[24:])  # the 10th record needs the next file
    gave_up = time.monotonic()
    cutter.close()

    assert files(tmp_path) == [never_leaves.name, f"{STAMP}.pcap"], "no empty file is left behind"
    assert scan_pcap(tmp_path / f"{STAMP}.pcap").packets == 9 == cutter.packets
    assert cutter.files == 1
    assert gave_up >= cutter.give_up_at, "it waited for room until the time it was given"
    assert cutter.waited_seconds > 0


def test_the_rest_of_a_stopped_captures_stream_without_room_is_read_to_its_end_unwritten_not_failed(
    tmp_path: Path,
) -> None:
    rotation = Rotation(60, 10_000, 1000)
    budget = minimum_budget(rotation)
    cutter = RotatingWriter(Spool(tmp_path), rotation, budget, Logger(), Clock())
    cutter.feed(stream(9))  # a full first file
    (tmp_path / "20261101T000000Z.pcap").write_bytes(b"w" * (budget - Spool(tmp_path).usage_bytes() - 10_000))
    cutter.give_up_at = time.monotonic()
    read, write = os.pipe()
    with os.fdopen(read, "rb") as tcpdump_stdout:
        pump = StreamPump(tcpdump_stdout, cutter, Logger())
        os.write(write, stream(40)[24:])  # tcpdump's last 40 records, after its stop
        os.close(write)
        pump.join()

    assert pump.error is None
    assert cutter.packets == 9
    assert sum(scan_pcap(tmp_path / name).packets for name in files(tmp_path)[1:]) == 9


def test_with_room_the_writer_never_waits(tmp_path: Path) -> None:
    rotation = Rotation(60, 10_000, 1000)
    cutter = RotatingWriter(Spool(tmp_path), rotation, minimum_budget(rotation), Logger(), Clock())
    cutter.feed(stream(3))
    cutter.close()
    assert cutter.waited_seconds < 0.05


WRITE_UNDER_A_FILE_SIZE_LIMIT = """
import json, resource, signal, sys
from pathlib import Path
from aws_lambda_powertools import Logger
from eks_capture_agent.rotation import RotatingWriter, Rotation
from eks_capture_agent.spool import Spool

spool, limit, cuts = Path(sys.argv[1]), int(sys.argv[2]), [int(cut) for cut in sys.argv[3:]]
data = sys.stdin.buffer.read()
writer = RotatingWriter(Spool(spool), Rotation(3600, 0, 1000), None, Logger(service="test"))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as on a full disk: the write fails, nothing is killed
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
error = None
try:
    for start, end in zip([0, *cuts], [*cuts, len(data)]):
        writer.feed(data[start:end])
except OSError as failure:
    error = failure.strerror
writer.close()
print(json.dumps({"packets": writer.packets, "files": writer.files, "error": error}))
"""
CUT_WRITE_CASES = {
    # file size limit, where tcpdump's 200 records are split into chunks: (packets kept, files, error)
    "a chunk the limit cuts short is taken back whole": (
        65_536,
        [24 + 10 * RECORD + 500],
        (10, 1, "File too large"),
    ),
    "a first chunk cut short leaves the header": (65_536, [], (0, 1, "File too large")),
    "a header cut short leaves no file": (16, [], (0, 0, "File too large")),
}


@pytest.mark.parametrize(("limit", "cuts", "expected"), CUT_WRITE_CASES.values(), ids=CUT_WRITE_CASES.keys())
def test_a_write_the_disk_cuts_short_is_taken_back_so_packets_counts_exactly_the_whole_records_in_files(
    tmp_path: Path, limit: int, cuts: list[int], expected: tuple[int, int, str | None]
) -> None:
    """A full disk (ENOSPC) or a file size limit (EFBIG, here RLIMIT_FSIZE) lets a write through in part, then
    refuses the rest: the manifest's unwritten packets are tcpdump's count minus ``packets``."""
    argv = [sys.executable, "-c", WRITE_UNDER_A_FILE_SIZE_LIMIT, str(tmp_path), str(limit), *map(str, cuts)]
    done = subprocess.run(argv, input=stream(200), capture_output=True, check=True, timeout=60)
    written = json.loads(done.stdout.splitlines()[-1])
    summaries = [scan_pcap(tmp_path / name) for name in files(tmp_path)]
    assert (written["packets"], written["files"], written["error"]) == expected
    assert sum(summary.packets for summary in summaries) == written["packets"]
    assert [summary.trailing_bytes for summary in summaries] == [0] * written["files"]
