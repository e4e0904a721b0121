"""When a digest profile's cron schedule fires: the latest time at or before a moment (is a
digest due?) and the next one after it (`check`, `status`).

croniter walks the schedule in either direction in a few steps however sparse it is, so a
monthly or yearly schedule is found as surely as a minutely one. `day_or=False`: when both
day-of-month and day-of-week are restricted, both must match, as in the daemon's
APScheduler CronTrigger, so `run --once` and the daemon agree on every schedule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from core.clock import utcnow
from core.config import DigestProfile


def _walk(profile: DigestProfile, start: datetime) -> croniter:
    local = start.astimezone(ZoneInfo(profile.timezone))
    return croniter(profile.schedule, local, day_or=False, second_at_beginning=True)


def last_fire_time(profile: DigestProfile, now: datetime) -> datetime | None:
    """The most recent time at or before `now` that the profile's schedule names, in UTC."""
    # Fire times are whole seconds; stepping back from the next second includes `now`.
    start = now.replace(microsecond=0) + timedelta(seconds=1)
    try:
        moment: datetime = _walk(profile, start).get_prev(datetime)
    except CroniterBadDateError:  # a schedule naming no date that exists, as 30 February
        return None
    return moment.astimezone(UTC)


def next_fire_time(profile: DigestProfile, now: datetime | None = None) -> datetime:
    """The first time after `now` that the profile's schedule names, in its timezone."""
    moment: datetime = _walk(profile, now or utcnow()).get_next(datetime)
    return moment
