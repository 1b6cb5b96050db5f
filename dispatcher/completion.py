"""Finishing a run: when no message is queued or sending, the run (and its campaign) gets its final status.

Several workers may notice the end at once; the `running -> sent|failed` update wins once.
The final counts are taken from the database (one GROUP BY per run, once), then mirrored to Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dispatcher import stats
from dispatcher.db.models import Campaign, CampaignStatus, CampaignType, Message, MessageStatus, Run, RunStatus

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


def finish_run(session: Session, run_id: int, *, reason: str | None = None) -> bool:
    """Give the run its final status if nothing is in flight; True if this call did it."""
    if in_flight(session, run_id):
        return False
    counts = counts_from_db(session, run_id)
    run = session.get_one(Run, run_id)
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
    if campaign.type != CampaignType.RECURRING and campaign.status == CampaignStatus.PENDING:
        campaign.status = CampaignStatus.SENT if status == RunStatus.SENT else CampaignStatus.FAILED
        campaign.status_reason = reason
        campaign.updated_at = now
    elif campaign.type == CampaignType.RECURRING:
        session.flush()
        close_ended_recurring(session, campaign)
    session.commit()
    stats.overwrite(stats.get_redis(), run_id, counts, finished=True)
    return True


_OPEN_RUNS = (RunStatus.SCHEDULED, RunStatus.QUEUED, RunStatus.RUNNING)


def close_ended_recurring(session: Session, campaign: Campaign) -> bool:
    """A recurring campaign whose rule has ended (its `until` passed) is over once no run is open:
    SENT if any run sent something, else FAILED. Does not commit."""
    if campaign.status != CampaignStatus.PENDING or campaign.next_fire_at is not None:
        return False
    statuses = set(session.scalars(select(Run.status).where(Run.campaign_id == campaign.id)).all())
    if statuses & set(_OPEN_RUNS):
        return False
    campaign.status = CampaignStatus.SENT if RunStatus.SENT in statuses else CampaignStatus.FAILED
    campaign.status_reason = "the recurrence ended" + ("" if RunStatus.SENT in statuses else " without a sent run")
    campaign.updated_at = datetime.now(UTC)
    return True
