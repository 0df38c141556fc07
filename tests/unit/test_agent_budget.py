"""Budget decisions: drop the oldest closed files, never the upload in flight, only as many as needed."""

from __future__ import annotations

import pytest

from eks_capture_agent.budget import SpoolFile, files_to_drop, open_file_headroom
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
