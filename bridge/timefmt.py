"""Times at the edges: responses in UTC `YYYY-MM-DD HH:MM:SS`; requests in that form (read in
the site's zone) or ISO 8601 with an offset or `Z`."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

WIRE = "%Y-%m-%d %H:%M:%S"


def fmt(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.strftime(WIRE)


def iso_z(value: datetime) -> str:
    """A stored naive-UTC time as an ISO 8601 instant with `Z` (what n8n's Wait expects)."""
    return value.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_z(text: str | None) -> datetime | None:
    """The naive-UTC time of an `iso_z` string; None when it is not one."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ") if text else None
    except ValueError:
        return None


def epoch(value: datetime) -> float:
    """Seconds since the epoch of a stored naive-UTC time."""
    return value.replace(tzinfo=timezone.utc).timestamp()


def parse_request_time(raw: str, zone: ZoneInfo) -> datetime:
    """Parse a request time and return it as naive UTC, to the second.

    Naive values are wall-clock time in `zone` (the WordPress site's zone). A wall time that does
    not exist (spring forward) is moved forward by the gap; an ambiguous one (fall back) takes the
    first occurrence (fold=0), as WordPress does. Raises ValueError with a readable message.
    """
    text = raw.strip()
    if not text:
        raise ValueError("Give a date and time, e.g. 2025-12-25 18:00:00 or 2025-12-25T18:00:00Z.")
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValueError(
            f"'{text[:40]}' is not a date and time; use YYYY-MM-DD HH:MM:SS or ISO 8601 with an offset."
        ) from None
    try:
        if parsed.tzinfo is None:
            # fold=0 reads an ambiguous time with the offset before the change (its first occurrence)
            # and a non-existent one with the offset before the gap, which lands it past the gap
            # (02:30 on a spring-forward night is 03:30 summer time). fold=1 would move it back by the
            # gap instead: before a post scheduled a minute earlier.
            parsed = parsed.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
        return parsed.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC, 0001-01-01T00:00+14:00 in year 0
        raise ValueError(f"'{text[:40]}' is outside the years 1 to 9999 in UTC.") from None
