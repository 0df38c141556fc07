"""The ring keeper: old files age out unless a window needs them, the oldest go first for the budget, and the
file tcpdump writes and the file being uploaded are never touched."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from eks_capture_agent.ring import EvictedFile, RingKeeper
from eks_capture_agent.spool import CAPTURE_RECORD, PcapName, Spool

FILE_BYTES = 64 * 1024
NAMES = [f"20261125T1200{second:02d}Z.pcap" for second in range(0, 50, 10)]  # five files, oldest first


def ring(tmp_path: Path, ages: list[float]) -> Spool:
    """Five files of FILE_BYTES, last written ``ages`` seconds ago (the newest is the open one)."""
    spool = Spool(tmp_path)
    spool.write_json(CAPTURE_RECORD, {"settings": {"rotate_megabytes": 0, "snaplen": 128}})
    now = time.time()
    for name, age in zip(NAMES, ages, strict=True):
        path = tmp_path / name
        path.write_bytes(os.urandom(FILE_BYTES))
        os.utime(path, (now - age, now - age))
    return spool


def keeper(spool: Spool, budget: int, protected: set[str] | None = None) -> RingKeeper:
    return RingKeeper(spool, 60.0, budget, lambda: protected or set(), Logger(service="test"))


def left(spool: Spool) -> list[str]:
    return [name.filename for name in spool.pcap_names()]


def test_files_older_than_the_ring_age_out_and_younger_ones_stay(tmp_path: Path) -> None:
    spool = ring(tmp_path, [300, 120, 61, 30, 500])
    ring_keeper = keeper(spool, budget=1 << 30)
    ring_keeper.enforce()
    assert left(spool) == NAMES[3:], "the newest file is open: tcpdump still writes it, whatever its age"
    assert ring_keeper.evictions.by_reason == {"ring": 3}


def test_the_age_limit_spares_files_an_open_window_still_needs(tmp_path: Path) -> None:
    spool = ring(tmp_path, [300, 120, 61, 30, 5])
    keeper(spool, budget=1 << 30, protected={NAMES[1]}).enforce()
    assert left(spool) == [NAMES[1], *NAMES[3:]]


@pytest.mark.parametrize("files_over", [1, 2, 3])
def test_over_budget_the_oldest_closed_files_go_first_and_only_as_many_as_needed(
    tmp_path: Path, files_over: int
) -> None:
    spool = ring(tmp_path, [50, 40, 30, 20, 10])
    usage = spool.usage_bytes()
    budget = usage - files_over * FILE_BYTES + 1
    ring_keeper = keeper(spool, budget, protected=set(NAMES))
    ring_keeper.enforce()
    assert left(spool) == NAMES[files_over:], "a window's need does not override the budget"
    assert spool.usage_bytes() <= budget
    assert ring_keeper.evictions.by_reason == {"budget": files_over}


def test_the_file_being_uploaded_is_never_evicted(tmp_path: Path) -> None:
    spool = ring(tmp_path, [300, 40, 30, 20, 10])
    ring_keeper = keeper(spool, spool.usage_bytes() - FILE_BYTES + 1)
    stamp, _, _ = NAMES[0].partition(".pcap")
    ring_keeper.in_flight = PcapName(stamp, 0)
    ring_keeper.enforce()
    assert left(spool) == [NAMES[0], *NAMES[2:]]


def test_a_file_a_window_needs_is_counted_as_the_budget_evicts_it_until_no_window_needs_it(
    tmp_path: Path,
) -> None:
    spool = ring(tmp_path, [50, 40, 30, 20, 10])
    ring_keeper = keeper(spool, spool.usage_bytes() - 2 * FILE_BYTES + 1, protected={NAMES[1]})
    ring_keeper.enforce()
    assert left(spool) == NAMES[2:]
    assert ring_keeper.evicted_needed == {NAMES[1]: EvictedFile(FILE_BYTES, None)}, "not a pcap: no packets"

    ring_keeper.forget_unneeded(set())

    assert ring_keeper.evicted_needed == {}


def test_a_file_a_window_takes_in_while_the_keeper_checks_is_spared_or_counted_never_lost_uncounted(
    tmp_path: Path,
) -> None:
    """The recorder's main thread takes a file in for a window (under the keeper's lock, as the recorder
    does) the moment the keeper has read what windows need: either the keeper saw the file as needed, or
    the window sees the file gone."""
    spool = ring(tmp_path, [300, 40, 30, 20, 10])
    wanted: set[str] = set()
    waiting: list[Callable[[], None]] = []

    def take_in() -> None:
        if (tmp_path / NAMES[0]).exists():
            wanted.add(NAMES[0])

    def needed() -> set[str]:
        read = set(wanted)
        if ring_keeper.lock.acquire(blocking=False):  # the main thread gets the lock at once
            try:
                take_in()
            finally:
                ring_keeper.lock.release()
        else:
            waiting.append(take_in)  # it waits for the keeper's check
        return read

    ring_keeper = RingKeeper(spool, 60.0, 1 << 30, needed, Logger(service="test"))
    ring_keeper.enforce()
    for main_thread in waiting:
        main_thread()

    assert wanted - set(left(spool)) <= set(ring_keeper.evicted_needed), "a wanted file gone uncounted"
