"""Budget decisions: drop the oldest closed files, never the upload in flight, only as many as needed."""

from __future__ import annotations

import pytest

from eks_capture_agent.budget import (
    DOCUMENT_SLACK_BYTES,
    SpoolFile,
    files_to_drop,
    largest_file_bytes,
    open_file_headroom,
    room_for_next_file,
)
from eks_capture_agent.spool import PcapName

FILES = [SpoolFile(PcapName("20261125T124420Z", n), 100) for n in range(5)]


@pytest.mark.parametrize(
    ("usage", "budget", "in_flight", "headroom", "dropped"),
    [
        (500, 500, None, 0, []),
        (500, 1000, None, 0, []),
        (501, 500, None, 0, [0]),
        (650, 500, None, 0, [0, 1]),
        (650, 500, 0, 0, [1, 2]),
        (500, 500, None, 150, [0, 1]),
        (5000, 500, 2, 0, [0, 1, 3, 4]),
    ],
)
def test_the_oldest_closed_files_go_until_usage_plus_headroom_fits(
    usage: int, budget: int, in_flight: int | None, headroom: int, dropped: list[int]
) -> None:
    flight = None if in_flight is None else FILES[in_flight].name
    chosen = files_to_drop(list(reversed(FILES)), usage, budget, flight, headroom)
    assert chosen == [FILES[index] for index in dropped]


def test_without_size_rotation_there_is_no_headroom() -> None:
    assert open_file_headroom(0, 262144, 5_000_000) == 0


@pytest.mark.parametrize("open_bytes", [0, 400_000, 1_000_000])
def test_headroom_covers_the_open_file_growing_to_its_limit_and_the_next_file(open_bytes: int) -> None:
    rotate, snaplen = 1_000_000, 2048
    headroom = open_file_headroom(rotate, snaplen, open_bytes)
    assert headroom + open_bytes >= 2 * (rotate + snaplen)
    assert open_file_headroom(rotate, snaplen, open_bytes + 1000) < headroom or headroom == 0


@pytest.mark.parametrize(
    ("rotate", "snaplen", "largest"),
    [
        (1_000_000, 2048, 1_003_520),  # 10^6 bytes (tcpdump -C) in whole 4 KiB blocks
        (4096, 96, 4096),
        (1000, 262144, 266240),  # a file always takes one whole packet
    ],
)
def test_the_largest_file_is_the_rotation_size_or_one_packet_in_whole_blocks(
    rotate: int, snaplen: int, largest: int
) -> None:
    assert largest_file_bytes(rotate, snaplen) == largest


def test_a_new_file_needs_room_for_itself_and_a_rewrite_of_every_document() -> None:
    assert room_for_next_file(1_003_520, 45_056) == 1_003_520 + 45_056 + DOCUMENT_SLACK_BYTES
