"""When the people around a claim are reminded: pure functions of the claim's start,
the end of its wait and the reminder interval (INHERITANCE_REMINDER_INTERVAL, weekly by
default). Times are aware UTC datetimes."""
from __future__ import annotations

import datetime as dt

from inheritance.limits import FINAL_REMINDERS


def reminder_times(start: dt.datetime, end: dt.datetime, every: dt.timedelta,
                   finals: tuple[dt.timedelta, ...] = FINAL_REMINDERS) -> list[dt.datetime]:
    """Every reminder strictly between `start` and `end`, in order, without duplicates:
    start + k·every (k ≥ 1) and end − each of `finals` (7 days and 1 day before the
    end). The start itself is not a reminder (everyone is told at once then) and the
    end is the release, not a reminder. Raises ValueError for a non-positive interval."""
    if every <= dt.timedelta(0):
        raise ValueError("the reminder interval must be positive")
    times = set()
    t = start + every
    while t < end:
        times.add(t)
        t += every
    times.update(end - f for f in finals if start < end - f < end)
    return sorted(times)


def next_reminder(start: dt.datetime, end: dt.datetime, every: dt.timedelta, after: dt.datetime) -> dt.datetime | None:
    """The first reminder later than `after`, or None when none is left before `end`."""
    return next((t for t in reminder_times(start, end, every) if t > after), None)
