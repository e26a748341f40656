"""UTC time helpers: one injectable clock and RFC 3339 text in and out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def to_rfc3339(when: dt.datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with microseconds (``…T03:04:05.000006Z``)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse RFC 3339 text with an explicit offset; raise ValueError otherwise."""
    if not isinstance(text, str) or len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    value = dt.datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp without UTC offset: {text!r}")
    return value.astimezone(dt.UTC)


def parse_when(text: str) -> dt.datetime:
    """Parse a user-given time: RFC 3339, a date (``2026-01-02``), or ``now``; UTC assumed."""
    if text == "now":
        return utc_now()
    try:
        value = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not a date or RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
