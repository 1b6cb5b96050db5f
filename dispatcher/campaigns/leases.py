"""How long a message row's lease runs. Past it, the reconciler takes the row for lost: a `queued` row
is published again, a `sending` row is settled. Every lease the send path and the fan-out write is
computed here, so "lost" means one thing everywhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# A paused campaign's queued messages wait this long, out of the reconciler's way, until resume
# leases them again.
PARKED = timedelta(days=30)


def send(lease_seconds: float) -> timedelta:
    """A message just claimed (the provider call must be over by then) or whose task was just published again."""
    return timedelta(seconds=lease_seconds)


def retry(retry_in: float, lease_seconds: float) -> timedelta:
    """A message put back to `queued` for a retry: its task is due in `retry_in`, then it has the send lease."""
    return timedelta(seconds=retry_in + lease_seconds)


def backlog(now: datetime, lease_seconds: float, position: int, rate: float) -> datetime:
    """A queued message `position` places into a backlog: the sender's rate needs `position / rate`
    seconds to reach it, so a long, rate-limited backlog is not mistaken for lost tasks."""
    return now + timedelta(seconds=lease_seconds + position / rate)
