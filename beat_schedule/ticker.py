"""The beat tick: turn schedules into runs and publish each run exactly once, on time.

The database row remembers the schedule, not the broker:

* a recurring campaign's `next_fire_at` is advanced by a conditional UPDATE and its run inserted in the
  same transaction, under UNIQUE(campaign_id, fire_at): two beats or two overlapping ticks create one run;
* a run is published as an ETA task only once its fire time is within HORIZON (far below the broker's
  visibility timeout), by the `scheduled -> queued` update that wins once;
* an occurrence nobody could fire in time fires late only within the grace window; older ones are
  recorded as `missed`, never replayed as a burst;
* a queued run that never started (its ETA task died with a worker) is published again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from beat_schedule.rules import WeeklyRule, next_fire
from dispatcher.campaigns import transitions
from dispatcher.campaigns.completion import close_if_done
from dispatcher.config import Settings
from dispatcher.db.models import Campaign, CampaignStatus, CampaignType, Run, RunStatus

HORIZON = timedelta(seconds=60)
# A queued run not started this long after its fire time lost its task (broker restart, crash).
LOST_AFTER = timedelta(seconds=120)
# At most this many occurrences of one campaign are handled per tick (bounds a long outage's catch-up).
MAX_OCCURRENCES_PER_TICK = 500

StartPublisher = Callable[[int, datetime], object]


def tick(
    session: Session, settings: Settings, publish_start: StartPublisher, now: datetime | None = None
) -> dict[str, int]:
    now = now or datetime.now(UTC)
    grace = timedelta(minutes=settings.missed_grace_minutes)
    created = expand_recurring(session, now, grace)
    missed = _miss_stale(session, now, grace)
    published = _publish_due(session, now, publish_start)
    republished = _republish_lost(session, now, grace, publish_start)
    closed = _close_ended(session)
    return {"created": created, "missed": missed, "published": published, "republished": republished, "closed": closed}


def expand_recurring(session: Session, now: datetime, grace: timedelta) -> int:
    """Create the runs of recurring campaigns whose next occurrence is within the horizon."""
    due = session.scalars(
        select(Campaign.id).where(
            Campaign.type == CampaignType.RECURRING,
            Campaign.status == CampaignStatus.PENDING,
            Campaign.next_fire_at.is_not(None),
            Campaign.next_fire_at <= now + HORIZON,
        )
    ).all()
    return sum(_expand_one(session, campaign_id, now, grace) for campaign_id in due)


def _expand_one(session: Session, campaign_id: int, now: datetime, grace: timedelta) -> int:
    created = 0
    for _ in range(MAX_OCCURRENCES_PER_TICK):
        campaign = session.get_one(Campaign, campaign_id, populate_existing=True)
        fire_at = campaign.next_fire_at
        if campaign.status != CampaignStatus.PENDING or fire_at is None or fire_at > now + HORIZON:
            break
        following = next_fire(WeeklyRule.from_json(campaign.recurring or {}), fire_at)
        advanced = session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.next_fire_at == fire_at)
            .values(next_fire_at=following)
        ).rowcount  # type: ignore[attr-defined]
        if not advanced:
            session.rollback()  # another tick advanced it first
            continue
        late = fire_at < now - grace
        run = Run(
            campaign_id=campaign_id,
            account_id=campaign.account_id,
            fire_at=fire_at,
            status=RunStatus.MISSED if late else RunStatus.SCHEDULED,
            status_reason=f"not fired within the {grace} grace window (scheduler down?)" if late else None,
        )
        # After a resume the next occurrence may already have its run (created before the pause).
        exists = session.scalar(select(Run.id).where(Run.campaign_id == campaign_id, Run.fire_at == fire_at))
        if exists is None:
            session.add(run)
            created += 1
        try:
            session.commit()
        except IntegrityError:
            # Only a concurrent writer outside this protocol can get here; leave it for the next tick.
            session.rollback()
            break
    return created


def _miss_stale(session: Session, now: datetime, grace: timedelta) -> int:
    """Scheduled runs whose fire time passed by more than the grace window are missed, not sent late."""
    # A paused campaign's run waits: resume fires it (within the grace window) or misses it, and a
    # paused one-off can still be rescheduled.
    stale = session.scalars(
        select(Run)
        .join(Campaign, Campaign.id == Run.campaign_id)
        .where(Run.status == RunStatus.SCHEDULED, Run.fire_at < now - grace, Campaign.status != CampaignStatus.PAUSED)
    ).all()
    for run in stale:
        won = session.execute(
            update(Run)
            .where(Run.id == run.id, Run.status == RunStatus.SCHEDULED)
            .values(status=RunStatus.MISSED, status_reason=f"not fired within the {grace} grace window")
        ).rowcount  # type: ignore[attr-defined]
        if won:
            _fail_one_off(session, run.campaign_id, f"missed: its time passed more than {grace} ago")
        session.commit()
    return len(stale)


def schedule_new(
    session: Session, campaign_id: int, settings: Settings, publish_start: StartPublisher, now: datetime | None = None
) -> int:
    """Right after a submission: do this campaign's share of the tick now, so a fire time closer than the
    next tick is still met. Returns the runs published."""
    now = now or datetime.now(UTC)
    _expand_one(session, campaign_id, now, timedelta(minutes=settings.missed_grace_minutes))
    return _publish_due(session, now, publish_start, campaign_id=campaign_id)


def _publish_due(session: Session, now: datetime, publish_start: StartPublisher, campaign_id: int | None = None) -> int:
    query = (
        select(Run.id, Run.fire_at)
        .join(Campaign, Campaign.id == Run.campaign_id)
        .where(
            Run.status == RunStatus.SCHEDULED, Run.fire_at <= now + HORIZON, Campaign.status == CampaignStatus.PENDING
        )
        .order_by(Run.fire_at)
    )
    if campaign_id is not None:
        query = query.where(Run.campaign_id == campaign_id)
    due = session.execute(query).all()
    count = 0
    for run_id, fire_at in due:
        won = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.SCHEDULED)
            .values(status=RunStatus.QUEUED, published_at=now)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if won:
            publish_start(run_id, fire_at)
            count += 1
    return count


def _close_ended(session: Session) -> int:
    ended = session.scalars(
        select(Campaign).where(
            Campaign.type == CampaignType.RECURRING,
            Campaign.status == CampaignStatus.PENDING,
            Campaign.next_fire_at.is_(None),
        )
    ).all()
    closed = sum(1 for campaign in ended if close_if_done(session, campaign))
    session.commit()
    return closed


def _republish_lost(session: Session, now: datetime, grace: timedelta, publish_start: StartPublisher) -> int:
    """Queued runs that never started lost their task: publish again, or, past the grace window, record
    them as missed (a "Monday 09:00" reminder must not go out at noon because a worker died)."""
    lost = session.scalars(
        select(Run).where(
            Run.status == RunStatus.QUEUED,
            Run.fire_at <= now - LOST_AFTER,
            or_(Run.published_at.is_(None), Run.published_at <= now - LOST_AFTER),
        )
    ).all()
    republished = 0
    for run in lost:
        if run.fire_at < now - grace:
            session.execute(
                update(Run)
                .where(Run.id == run.id, Run.status == RunStatus.QUEUED)
                .values(status=RunStatus.MISSED, status_reason=f"its start was lost and {grace} passed")
            )
            _fail_one_off(session, run.campaign_id, f"missed: its start was lost and {grace} passed")
            session.commit()
            continue
        run.published_at = now
        session.commit()
        publish_start(run.id, run.fire_at)
        republished += 1
    return republished


def _fail_one_off(session: Session, campaign_id: int, reason: str) -> None:
    campaign = session.get_one(Campaign, campaign_id)
    if campaign.type != CampaignType.RECURRING:
        transitions.move(session, campaign, [CampaignStatus.PENDING], CampaignStatus.FAILED, reason)
