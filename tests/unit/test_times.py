"""One spelling of a moment: ISO 8601 in UTC with a ``Z``, read back as the same aware time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from eks_capture.times import iso_utc, parse_iso

MOMENT = datetime(2026, 11, 25, 3, 12, 7, 250_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "micros", "text"),
    [
        (MOMENT, False, "2026-11-25T03:12:07Z"),
        (MOMENT, True, "2026-11-25T03:12:07.250000Z"),
        (MOMENT.astimezone(timezone(timedelta(hours=-8))), False, "2026-11-25T03:12:07Z"),
    ],
)
def test_a_moment_is_written_in_utc_with_a_z(moment: datetime, micros: bool, text: str) -> None:
    assert iso_utc(moment, micros=micros) == text


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-25T03:12:07.250000Z", MOMENT),
        ("2026-11-24T19:12:07.25-08:00", MOMENT),
        ("", None),
        (None, None),
    ],
)
def test_what_is_written_reads_back_as_the_same_moment(text: str | None, moment: datetime | None) -> None:
    assert parse_iso(text) == moment


def test_the_microsecond_form_sorts_as_the_moments_do() -> None:
    moments = [MOMENT + timedelta(microseconds=n) for n in (1, 999_999, 10, 100_000)]

    assert sorted(iso_utc(m, micros=True) for m in moments) == [
        iso_utc(m, micros=True) for m in sorted(moments)
    ]
