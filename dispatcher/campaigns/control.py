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

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from beat_schedule.grid import ScheduleError, check_scheduled
from beat_schedule.rules import WeeklyRule, next_fire
from dispatcher import keys
from dispatcher.campaigns import leases, transitions
from dispatcher.campaigns.completion import close_if_done, finish_run
from dispatcher.config import Settings
from dispatcher.db.models import (
    Campaign,
    CampaignStatus,
    CampaignType,
    Message,
    MessageStatus,
    Run,
    RunStatus,
    Sender,
)
from dispatcher.errors import Conflict, SpecError
from dispatcher.tracking import stats

# Publishes the task that sends a resumed run's queued messages again (`dispatcher.resume_run`).
RunResumer = Callable[[int], object]
PAUSED_AT_FIRE_TIME = "the campaign was paused at its fire time"
CANCELLED_CODE = "cancelled"


class Control(enum.StrEnum):
    """The Redis mirror of a paused or cancelled campaign (`keys.campaign_control`), which every send checks
    (in the limiter's script) without reading the database."""

    PAUSED = "paused"
    CANCELLED = "cancelled"


def flag(r: redis.Redis, campaign_id: int) -> Control | None:
    value = r.get(keys.campaign_control(campaign_id))
    if not value:
        return None
    return Control(value.decode() if isinstance(value, bytes) else value)


def cancelled_values(reason: Any, now: Any) -> dict[str, Any]:
    """What a queued message of a cancelled campaign becomes, whoever finds it: `cancel` for the queued
    rows, or a send that finds its campaign cancelled. (`reason` and `now` may be bind parameters.)"""
    return {
        "status": MessageStatus.SKIPPED,
        "error_code": CANCELLED_CODE,
        "error_text": reason,
        "lease_until": None,
        "updated_at": now,
    }


def hold_while_paused(run: Run, campaign: Campaign, now: datetime) -> None:
    """A run whose time came while its campaign is paused: a recurring occurrence is missed (resume does
    not replay it); a one-off goes back to scheduled, for resume (within the grace window) or a reschedule.
    Does not commit."""
    if campaign.type == CampaignType.RECURRING:
        run.status, run.status_reason, run.finished_at = RunStatus.MISSED, PAUSED_AT_FIRE_TIME, now
    else:
        run.status, run.started_at, run.published_at = RunStatus.SCHEDULED, None, None


def pause(session: Session, r: redis.Redis, campaign: Campaign, reason: str = "paused by the user") -> None:
    if not transitions.move(session, campaign, [CampaignStatus.PENDING], CampaignStatus.PAUSED, reason):
        session.rollback()
        raise Conflict(f"only a PENDING campaign can be paused; this one is {campaign.status}")
    session.commit()
    r.set(keys.campaign_control(campaign.id), Control.PAUSED)


def resume(session: Session, r: redis.Redis, campaign: Campaign, settings: Settings, resume_run: RunResumer) -> int:
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
    running = _lease_queued(session, campaign, now, settings)
    if not running:
        close_if_done(session, campaign)
    session.commit()
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
        .values(status=RunStatus.MISSED, status_reason=PAUSED_AT_FIRE_TIME, finished_at=now)
    )


def _lease_queued(session: Session, campaign: Campaign, now: datetime, settings: Settings) -> list[int]:
    """Give the parked messages of running runs their one lease for the resume; returns those runs.

    The lease comes before the publish: if the resume task is lost, the reconciler publishes them
    again when it expires, instead of in 30 days. It covers the whole backlog at the sender's rate, so
    `resume_run` publishes without leasing again.
    """
    rate = session.get_one(Sender, campaign.sender_id).rate
    queued = session.execute(
        select(Message.run_id, func.count())
        .join(Run, Run.id == Message.run_id)
        .where(Run.campaign_id == campaign.id, Run.status == RunStatus.RUNNING, Message.status == MessageStatus.QUEUED)
        .group_by(Message.run_id)
    ).all()
    for run_id, count in queued:
        session.execute(
            update(Message)
            .where(Message.run_id == run_id, Message.status == MessageStatus.QUEUED)
            .values(lease_until=leases.backlog(now, settings.send_lease_seconds, int(count), rate))
        )
    return [run_id for run_id, _ in queued]


def cancel(session: Session, r: redis.Redis, campaign: Campaign, reason: str = "cancelled by the user") -> int:
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
    r.set(keys.campaign_control(campaign.id), Control.CANCELLED)
    skipped = 0
    running = session.scalars(select(Run.id).where(Run.campaign_id == campaign.id, Run.status == RunStatus.RUNNING))
    for run_id in running.all():
        n = session.execute(
            update(Message)
            .where(Message.run_id == run_id, Message.status == MessageStatus.QUEUED)
            .values(**cancelled_values(reason, now))
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if n:
            stats.bump(r, run_id, "skipped", n)
        skipped += n
        finish_run(session, r, run_id)
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
