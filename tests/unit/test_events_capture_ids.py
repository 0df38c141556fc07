"""Capture ids: one per event (redelivery gives the same id), sortable by start, valid as a label value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eks_capture.ids import (
    capture_id_for_event,
    capture_started_at,
    is_capture_id,
    new_capture_id,
    parse_capture_id,
)
from eks_capture.kube.names import label_value_error
from tests.events import event_names, load_event

START = datetime(2026, 11, 25, 10, 2, 13, tzinfo=UTC)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC))


@pytest.mark.parametrize("name", event_names())
def test_sample_event_gets_a_well_formed_capture_id(name: str) -> None:
    raw = load_event(name)
    capture_id = capture_id_for_event(raw.get("id", name), START)
    assert is_capture_id(capture_id)
    assert label_value_error(capture_id) is None


def test_redelivered_event_gets_the_same_id_and_another_event_another() -> None:
    assert capture_id_for_event("evt-1", START) == capture_id_for_event("evt-1", START)
    assert capture_id_for_event("evt-1", START) != capture_id_for_event("evt-2", START)


def test_fresh_ids_differ_at_the_same_second() -> None:
    assert len({new_capture_id(START) for _ in range(50)}) == 50


@given(when=times)
def test_capture_id_carries_its_start_second_in_utc(when: datetime) -> None:
    assert capture_started_at(capture_id_for_event("e", when)) == when.replace(microsecond=0)


@given(first=times, gap=st.integers(1, 10**8))
def test_capture_ids_sort_by_start_time(first: datetime, gap: int) -> None:
    later = first + timedelta(seconds=gap)
    assert capture_id_for_event("z", first) < capture_id_for_event("a", later)


def test_local_times_are_stamped_in_utc_and_naive_times_refused() -> None:
    local = START.astimezone(timezone(timedelta(hours=9)))
    assert capture_id_for_event("e", local) == capture_id_for_event("e", START)
    with pytest.raises(ValueError, match="timezone"):
        capture_id_for_event("e", START.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("cap-20261125T100213Z-0a1b2c3d", True),
        ("cap-20261125T100213Z-0A1B2C3D", False),
        ("cap-20261125t100213z-0a1b2c3d", False),
        ("cap-20261125T100213Z-0a1b2c3", False),
        ("cap-2026112T100213Z-0a1b2c3d", False),
        ("20261125T100213Z-0a1b2c3d", False),
        ("", False),
    ],
)
def test_capture_id_format_is_strict(value: str, valid: bool) -> None:
    assert is_capture_id(value) is valid
    if valid:
        assert parse_capture_id(value) == value
    else:
        with pytest.raises(ValueError, match="cap-"):
            parse_capture_id(value)
