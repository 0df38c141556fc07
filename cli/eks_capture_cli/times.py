"""Times on the command line: ISO 8601 (UTC unless it says otherwise) or an age such as ``90m`` or ``2h``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from eks_capture_cli.failures import EXIT_BAD_INPUT, CommandError

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(value: str, option: str, now: datetime | None = None) -> datetime:
    """``value`` as an aware UTC datetime; a bad-input failure naming ``option`` otherwise."""
    text = value.strip()
    age = _AGE.match(text)
    if age:
        delta = timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"{option}: {value!r} is not a time; use ISO 8601 (2026-11-25T03:12:00Z) or an age (90m, 2h, 1d)",
            EXIT_BAD_INPUT,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_window(start: str, end: str) -> tuple[datetime, datetime]:
    """A [from, to] window; a bad-input failure when it is empty or reversed."""
    low, high = parse_time(start, "--from"), parse_time(end, "--to")
    if high <= low:
        raise CommandError(
            f"bad window: --to ({high:%Y-%m-%dT%H:%M:%SZ}) is not after --from ({low:%Y-%m-%dT%H:%M:%SZ})",
            EXIT_BAD_INPUT,
        )
    return low, high


def short(moment: datetime | None) -> str:
    """A compact UTC time for tables."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"
