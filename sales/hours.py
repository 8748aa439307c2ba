"""Working hours of business.json `schedule`, in the business's own time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sales.business import WEEKDAYS, Schedule

STEP = timedelta(minutes=15)
HORIZON = timedelta(days=8)


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def is_open(schedule: Schedule, at: datetime) -> bool:
    """`at` is aware (any zone). A day whose close is before its open runs past midnight
    into the next day ("20:00"-"02:00"); open == close means the whole day; "23:59" closes
    at the end of the day."""
    local = at.astimezone(ZoneInfo(schedule.timezone))
    now = local.time()
    today = schedule.workingDays.get(WEEKDAYS[local.weekday()])
    yesterday = schedule.workingDays.get(WEEKDAYS[(local.weekday() - 1) % 7])
    if yesterday and yesterday.enabled:
        y_open, y_close = _hhmm(yesterday.open), _hhmm(yesterday.close)
        if y_close < y_open and now < y_close:
            return True  # yesterday's hours run past midnight
    if not (today and today.enabled):
        return False
    opens, closes = _hhmm(today.open), _hhmm(today.close)
    if opens == closes:
        return True
    if closes < opens:
        return now >= opens
    if closes == time(23, 59):
        return now >= opens
    return opens <= now < closes


def next_opening(schedule: Schedule, at: datetime) -> datetime | None:
    """The first moment at or after `at` inside working hours (15-minute steps), or None
    when the schedule has no open day."""
    probe = at
    while probe - at < HORIZON:
        if is_open(schedule, probe):
            return probe
        probe = (probe + STEP).replace(second=0, microsecond=0)
        probe -= timedelta(minutes=probe.minute % 15)
    return None
