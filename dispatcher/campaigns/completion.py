"""Finishing a run: when no message is queued or sending, the run (and its campaign) gets its final status.

Several workers may notice the end at once; the `running -> sent|failed` update wins once.
The final counts are taken from the database (one GROUP BY per run, once), then mirrored to Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dispatcher.campaigns import transitions
from dispatcher.db.models import Campaign, CampaignStatus, CampaignType, Message, MessageStatus, Run, RunStatus
from dispatcher.tracking import stats

_IN_FLIGHT = (MessageStatus.QUEUED, MessageStatus.SENDING)
# Messages that reached the provider count as sent, whatever receipts said after.
_SENT_LIKE = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)


def counts_from_db(session: Session, run_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Message.status, func.count()).where(Message.run_id == run_id).group_by(Message.status)
    ).all()
    by_status = {str(status): int(n) for status, n in rows}
    return {
        "total": sum(by_status.values()),
        "sent": sum(by_status.get(s, 0) for s in _SENT_LIKE),
        "failed": by_status.get(MessageStatus.FAILED, 0),
        "skipped": by_status.get(MessageStatus.SKIPPED, 0),
        "unknown": by_status.get(MessageStatus.UNKNOWN, 0),
        "delivered": by_status.get(MessageStatus.DELIVERED, 0) + by_status.get(MessageStatus.READ, 0),
        "read": by_status.get(MessageStatus.READ, 0),
    }


def in_flight(session: Session, run_id: int) -> bool:
    """Is any message of the run still queued or sending? An index probe, not a count."""
    found = session.scalar(select(Message.id).where(Message.run_id == run_id, Message.status.in_(_IN_FLIGHT)).limit(1))
    return found is not None


def finish_run(session: Session, r: redis.Redis, run_id: int, *, reason: str | None = None) -> bool:
    """Give the run its final status if its rows are all written and none is in flight; True if this call
    did it."""
    run = session.get_one(Run, run_id, populate_existing=True)
    if run.materialised_at is None or in_flight(session, run_id):
        return False
    counts = counts_from_db(session, run_id)
    campaign = session.get_one(Campaign, run.campaign_id)
    if campaign.status == CampaignStatus.CANCELLED:
        status, reason = RunStatus.CANCELLED, reason or campaign.status_reason or "cancelled"
    elif counts["sent"] + counts["unknown"] > 0:
        status = RunStatus.SENT
    else:
        status, reason = RunStatus.FAILED, reason or "no message could be sent"
    now = datetime.now(UTC)
    won = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING)
        .values(status=status, finished_at=now, stats=counts, status_reason=reason)
    ).rowcount  # type: ignore[attr-defined]
    if not won:
        session.rollback()
        return False
    if campaign.type != CampaignType.RECURRING:
        # Also from PAUSED: a pause that came after the last message left has nothing left to hold.
        final = CampaignStatus.SENT if status == RunStatus.SENT else CampaignStatus.FAILED
        transitions.move(session, campaign, [CampaignStatus.PENDING, CampaignStatus.PAUSED], final, reason)
    else:
        close_if_done(session, campaign)
    session.commit()
    stats.overwrite(r, run_id, counts, finished=True)
    return True


_OPEN_RUNS = (RunStatus.SCHEDULED, RunStatus.QUEUED, RunStatus.RUNNING)


def close_if_done(session: Session, campaign: Campaign) -> bool:
    """A PENDING campaign with no open run and nothing more to fire (a one-off whose run ended, a
    recurring one whose rule ended) gets its final status: SENT if any run sent something, else FAILED
    with the last run's reason. Does not commit."""
    session.flush()
    if campaign.type == CampaignType.RECURRING and campaign.next_fire_at is not None:
        return False
    runs = session.execute(
        select(Run.status, Run.status_reason).where(Run.campaign_id == campaign.id).order_by(Run.fire_at)
    ).all()
    if any(status in _OPEN_RUNS for status, _ in runs):
        return False
    sent = any(status == RunStatus.SENT for status, _ in runs)
    reason: str | None
    if campaign.type == CampaignType.RECURRING:
        reason = "the recurrence ended" + ("" if sent else " without a sent run")
    else:
        reason = None if sent else (runs[-1].status_reason if runs else "nothing was sent")
    final = CampaignStatus.SENT if sent else CampaignStatus.FAILED
    return transitions.move(session, campaign, [CampaignStatus.PENDING], final, reason)
