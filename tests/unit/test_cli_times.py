"""Times on the command line: ISO 8601 in any offset or an age, and windows that make sense."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from eks_capture_cli.failures import EXIT_BAD_INPUT, CommandError
from eks_capture_cli.times import parse_time, parse_window

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T03:12:00Z", datetime(2026, 11, 25, 3, 12, tzinfo=UTC)),
        ("2026-11-25T03:12:00", datetime(2026, 11, 25, 3, 12, tzinfo=UTC)),
        ("2026-11-25T04:12:00+01:00", datetime(2026, 11, 25, 4, 12, tzinfo=timezone(timedelta(hours=1)))),
        ("2026-11-25 03:12:00.250z", datetime(2026, 11, 25, 3, 12, 0, 250000, tzinfo=UTC)),
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
    ],
)
def test_times_are_iso_8601_or_ages_and_always_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, "--since", now=NOW)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-5m", "2026-13-01T00:00:00Z", ""])
def test_anything_else_is_bad_input_naming_the_option(text: str) -> None:
    with pytest.raises(CommandError) as failure:
        parse_time(text, "--from")

    assert failure.value.exit_code == EXIT_BAD_INPUT
    assert failure.value.message.startswith("--from:")


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-11-25T04:00:00Z", "2026-11-25T03:00:00Z"), ("2026-11-25T03:00:00Z", "2026-11-25T03:00:00Z")],
    ids=["reversed", "empty"],
)
def test_a_window_must_end_after_it_starts(start: str, end: str) -> None:
    with pytest.raises(CommandError) as failure:
        parse_window(start, end)

    assert failure.value.exit_code == EXIT_BAD_INPUT
    assert failure.value.message.startswith("bad window")
