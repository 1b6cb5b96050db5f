"""Pause, resume, cancel and reschedule a campaign.

The database status is the truth; a Redis flag mirrors pause/cancel so every send task sees it within
one message, without a database read per send.

* pause: no new run fires; sends in flight finish, queued messages stay queued (not sent).
* resume: queued messages are published again (by a worker task: a 100k backlog is one fast-path
  fan-out, not 100k publishes in an HTTP request); a recurring campaign continues from the next
  occurrence after now (the occurrences that passed while paused are not replayed).
* every status change is conditional (`transitions.move`), so a pause racing the end of the last
  run, or a cancel racing a pause, has one winner and a clear 409 for the other.
* cancel: scheduled and queued runs are cancelled; queued messages of running runs become `skipped`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from beat_schedule.grid import ScheduleError, check_scheduled
from beat_schedule.rules import WeeklyRule, next_fire
from dispatcher import keys
from dispatcher.campaigns import transitions
from dispatcher.campaigns.completion import close_if_done, finish_run
from dispatcher.config import Settings
from dispatcher.db.models import Campaign, CampaignStatus, CampaignType, Message, MessageStatus, Run, RunStatus
from dispatcher.errors import Conflict, SpecError
from dispatcher.tracking import stats

# Publishes the task that sends a resumed run's queued messages again (`dispatcher.resume_run`).
RunResumer = Callable[[int], object]
PAUSED, CANCELLED = "paused", "cancelled"


def pause(session: Session, campaign: Campaign, reason: str = "paused by the user") -> None:
    if not transitions.move(session, campaign, [CampaignStatus.PENDING], CampaignStatus.PAUSED, reason):
        session.rollback()
        raise Conflict(f"only a PENDING campaign can be paused; this one is {campaign.status}")
    session.commit()
    stats.get_redis().set(keys.campaign_control(campaign.id), PAUSED)


def resume(session: Session, campaign: Campaign, settings: Settings, resume_run: RunResumer) -> int:
    """Returns the number of runs whose queued messages are published again (by `resume_run`).

    Occurrences whose fire time passed while paused are not replayed: a recurring campaign's are marked
    missed; a one-off's scheduled run fires if still within the grace window (beat's rule), else it is
    missed too. A campaign with nothing left to run gets its final status here.
    """
    now = datetime.now(UTC)
    values = {}
    if campaign.type == CampaignType.RECURRING and campaign.recurring:
        values["next_fire_at"] = next_fire(WeeklyRule.from_json(campaign.recurring), now)
    if not transitions.move(session, campaign, [CampaignStatus.PAUSED], CampaignStatus.PENDING, None, **values):
        session.rollback()
        raise Conflict(f"only a PAUSED campaign can be resumed; this one is {campaign.status}")
    _miss_paused_runs(session, campaign, now, timedelta(minutes=settings.missed_grace_minutes))
    running = _lease_queued(session, campaign.id, now, settings)
    if not running:
        close_if_done(session, campaign)
    session.commit()
    r = stats.get_redis()
    r.delete(keys.campaign_control(campaign.id), keys.campaign_failures(campaign.id))
    for run_id in running:
        resume_run(run_id)
    return len(running)


def _miss_paused_runs(session: Session, campaign: Campaign, now: datetime, grace: timedelta) -> None:
    """Runs whose time came while the campaign was paused: a recurring campaign's are missed (never
    replayed); a one-off's is missed past the grace window (beat's rule), else it fires now."""
    cutoff = now if campaign.type == CampaignType.RECURRING else now - grace
    session.execute(
        update(Run)
        .where(
            Run.campaign_id == campaign.id,
            Run.status.in_([RunStatus.SCHEDULED, RunStatus.QUEUED]),
            Run.fire_at <= cutoff,
        )
        .values(status=RunStatus.MISSED, status_reason="the campaign was paused at its fire time", finished_at=now)
    )


def _lease_queued(session: Session, campaign_id: int, now: datetime, settings: Settings) -> list[int]:
    """Give the parked messages of running runs a fresh lease; returns those runs.

    The lease comes before the publish: if the resume task is lost, the reconciler publishes them
    again when it expires, instead of in 30 days.
    """
    running = list(
        session.scalars(select(Run.id).where(Run.campaign_id == campaign_id, Run.status == RunStatus.RUNNING)).all()
    )
    if running:
        session.execute(
            update(Message)
            .where(Message.run_id.in_(running), Message.status == MessageStatus.QUEUED)
            .values(lease_until=now + timedelta(seconds=settings.send_lease_seconds))
        )
    return running


def cancel(session: Session, campaign: Campaign, reason: str = "cancelled by the user") -> int:
    """Returns the number of messages skipped."""
    now = datetime.now(UTC)
    open_statuses = [CampaignStatus.PENDING, CampaignStatus.PAUSED]
    if not transitions.move(session, campaign, open_statuses, CampaignStatus.CANCELLED, reason, next_fire_at=None):
        session.rollback()
        raise Conflict(f"a {campaign.status} campaign cannot be cancelled")
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
