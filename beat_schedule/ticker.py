"""The beat tick: publish runs whose fire time is near, each exactly once.

The database row remembers the schedule, not the broker: a run is published as an ETA task only once
its fire time is within HORIZON (far below the broker's visibility timeout), and the
`scheduled -> queued` update wins once, so two beats or two overlapping ticks publish it once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dispatcher.config import Settings
from dispatcher.db.models import Run, RunStatus

HORIZON = timedelta(seconds=60)
# A queued run not started this long after its fire time lost its task (broker restart, crash).
LOST_AFTER = timedelta(seconds=120)

StartPublisher = Callable[..., None]


def tick(
    session: Session, settings: Settings, publish_start: StartPublisher, now: datetime | None = None
) -> dict[str, int]:
    now = now or datetime.now(UTC)
    published = _publish_due(session, now, publish_start)
    republished = _republish_lost(session, now, publish_start)
    return {"published": published, "republished": republished}


def _publish_due(session: Session, now: datetime, publish_start: StartPublisher) -> int:
    due = session.scalars(
        select(Run).where(Run.status == RunStatus.SCHEDULED, Run.fire_at <= now + HORIZON).order_by(Run.fire_at)
    ).all()
    count = 0
    for run in due:
        won = session.execute(
            update(Run)
            .where(Run.id == run.id, Run.status == RunStatus.SCHEDULED)
            .values(status=RunStatus.QUEUED, published_at=now)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if won:
            # Exact fire time as the ETA: the run starts on time, not at the next tick.
            publish_start(run.id, eta=max(run.fire_at, now))
            count += 1
    return count


def _republish_lost(session: Session, now: datetime, publish_start: StartPublisher) -> int:
    lost = session.scalars(
        select(Run).where(
            Run.status == RunStatus.QUEUED,
            Run.fire_at <= now - LOST_AFTER,
            or_(Run.published_at.is_(None), Run.published_at <= now - LOST_AFTER),
        )
    ).all()
    for run in lost:
        run.published_at = now
        session.commit()
        publish_start(run.id)
    return len(lost)
