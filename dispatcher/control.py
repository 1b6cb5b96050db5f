"""Pause, resume, cancel and reschedule a campaign.

The database status is the truth; a Redis flag mirrors pause/cancel so every send task sees it within
one message, without a database read per send.

* pause: no new run fires; sends in flight finish, queued messages stay queued (not sent).
* resume: queued messages are published again; a recurring campaign continues from the next
  occurrence after now (the occurrences that passed while paused are not replayed).
* cancel: scheduled and queued runs are cancelled; queued messages of running runs become `skipped`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from beat_schedule.grid import ScheduleError, check_scheduled
from beat_schedule.rules import WeeklyRule, next_fire
from dispatcher import keys, stats
from dispatcher.completion import finish_run
from dispatcher.config import Settings
from dispatcher.contracts import SendRef
from dispatcher.db.models import Campaign, CampaignStatus, CampaignType, Message, MessageStatus, Run, RunStatus
from dispatcher.errors import Conflict, SpecError
from dispatcher.outbox import queued_refs

MessagePublisher = Callable[[list[SendRef], str], None]
PAUSED, CANCELLED = "paused", "cancelled"


def pause(session: Session, campaign: Campaign, reason: str = "paused by the user") -> None:
    if campaign.status != CampaignStatus.PENDING:
        raise Conflict(f"only a PENDING campaign can be paused; this one is {campaign.status}")
    campaign.status = CampaignStatus.PAUSED
    campaign.status_reason = reason
    campaign.updated_at = datetime.now(UTC)
    session.commit()
    stats.get_redis().set(keys.campaign_control(campaign.id), PAUSED)


def resume(session: Session, campaign: Campaign, settings: Settings, publish: MessagePublisher) -> int:
    """Returns the number of queued messages published again."""
    if campaign.status != CampaignStatus.PAUSED:
        raise Conflict(f"only a PAUSED campaign can be resumed; this one is {campaign.status}")
    now = datetime.now(UTC)
    campaign.status = CampaignStatus.PENDING
    campaign.status_reason = None
    campaign.updated_at = now
    if campaign.type == CampaignType.RECURRING and campaign.recurring:
        campaign.next_fire_at = next_fire(WeeklyRule.from_json(campaign.recurring), now)
    session.commit()
    stats.get_redis().delete(keys.campaign_control(campaign.id))
    return _republish_queued(session, campaign, settings, publish, now)


def _republish_queued(
    session: Session, campaign: Campaign, settings: Settings, publish: MessagePublisher, now: datetime
) -> int:
    running = session.scalars(
        select(Run.id).where(Run.campaign_id == campaign.id, Run.status == RunStatus.RUNNING)
    ).all()
    published = 0
    for run_id in running:
        for refs in queued_refs(session, run_id, settings.publish_batch_size):
            # A fresh lease first: if this publish is lost, the reconciler publishes them again.
            lease_until = now + timedelta(seconds=settings.send_lease_seconds)
            session.execute(update(Message).where(Message.id.in_([r[0] for r in refs])).values(lease_until=lease_until))
            session.commit()
            publish(refs, campaign.channel)
            published += len(refs)
    return published


def cancel(session: Session, campaign: Campaign, reason: str = "cancelled by the user") -> int:
    """Returns the number of messages skipped."""
    if campaign.status in (CampaignStatus.SENT, CampaignStatus.FAILED, CampaignStatus.CANCELLED):
        raise Conflict(f"a {campaign.status} campaign cannot be cancelled")
    now = datetime.now(UTC)
    campaign.status = CampaignStatus.CANCELLED
    campaign.status_reason = reason
    campaign.updated_at = now
    campaign.next_fire_at = None
    session.execute(
        update(Run)
        .where(Run.campaign_id == campaign.id, Run.status.in_([RunStatus.SCHEDULED, RunStatus.QUEUED]))
        .values(status=RunStatus.CANCELLED, status_reason=reason, finished_at=now)
    )
    session.commit()
    stats.get_redis().set(keys.campaign_control(campaign.id), CANCELLED)
    skipped = 0
    running = session.scalars(select(Run.id).where(Run.campaign_id == campaign.id, Run.status == RunStatus.RUNNING))
    for run_id in running.all():
        n = session.execute(
            update(Message)
            .where(Message.run_id == run_id, Message.status == MessageStatus.QUEUED)
            .values(
                status=MessageStatus.SKIPPED,
                error_code="cancelled",
                error_text=reason,
                lease_until=None,
                updated_at=now,
            )
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if n:
            stats.bump(stats.get_redis(), run_id, "skipped", n)
        skipped += n
        finish_run(session, run_id)
    return skipped


def reschedule(session: Session, campaign: Campaign, when: datetime, settings: Settings) -> None:
    """Move a SCHEDULED campaign that has not fired yet to another time on the grid."""
    if campaign.type != CampaignType.SCHEDULED or campaign.status not in (
        CampaignStatus.PENDING,
        CampaignStatus.PAUSED,
    ):
        raise Conflict("only a SCHEDULED campaign that is pending or paused can be rescheduled")
    try:
        fire_at = check_scheduled(when, datetime.now(UTC), settings.schedule_grid_minutes)
    except ScheduleError as exc:
        raise SpecError.single(("scheduledDate",), exc.reason, "schedule") from None
    moved = session.execute(
        update(Run)
        .where(Run.campaign_id == campaign.id, Run.status.in_([RunStatus.SCHEDULED, RunStatus.QUEUED]))
        .values(fire_at=fire_at, status=RunStatus.SCHEDULED, published_at=None)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        session.rollback()
        raise Conflict("the campaign has already started")
    campaign.scheduled_at = fire_at
    campaign.updated_at = datetime.now(UTC)
    session.commit()
