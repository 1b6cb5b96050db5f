"""Campaign answers in the SMS document's `CampaignDetails` shape, with live stats read from Redis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from beat_schedule.rules import WeeklyRule, next_fire
from dispatcher.campaigns.completion import counts_from_db
from dispatcher.db.models import (
    Campaign,
    CampaignContact,
    CampaignStatus,
    Contact,
    Message,
    MessageStatus,
    Run,
    RunStatus,
    Sender,
)
from dispatcher.tracking import stats

# Details list this many recipients; the rest are paged at /v1/campaigns/{id}/messages.
CONTACTS_IN_DETAILS = 1000


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def run_counts(session: Session, r: redis.Redis, runs: Sequence[Run]) -> dict[int, dict[str, int]]:
    """Live counters per run; where Redis has none (a finished run past its TTL, or counters lost), the
    database counts them (an index scan). Not the run's stored snapshot: receipts arriving after the run
    finished never update it. Not written back to Redis either: a receipt between its commit and its
    counter bump would then be counted twice."""
    live = stats.read(r, [run.id for run in runs]) if runs else {}
    out: dict[int, dict[str, int]] = {}
    for run in runs:
        counts = live.get(run.id)
        if counts is None:
            # A run that has not started has no messages to count (a scheduled one before its time).
            counts = stats.as_counts(counts_from_db(session, run.id) if run.started_at is not None else {})
        out[run.id] = counts
    return out


def summary(
    campaign: Campaign, sender: Sender | None, runs: Sequence[Run], counts: dict[int, dict[str, int]]
) -> dict[str, Any]:
    # A run that has not started (a scheduled campaign before its time) has no messages yet: until one
    # starts, the stats show the audience as pending, whether the run exists yet (scheduled) or not
    # (recurring, whose runs beat creates when each occurrence is due).
    started = [run for run in runs if run.started_at is not None]
    total = stats.total(counts[run.id] for run in started)
    if not started:
        total["total"] = int((campaign.summary or {}).get("recipients", 0))
        waiting = campaign.status in (CampaignStatus.PENDING, CampaignStatus.PAUSED)
        total["pending"] = total["total"] if waiting else 0
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "type": campaign.type,
        "channel": campaign.channel,
        "status": campaign.status,
        "statusReason": campaign.status_reason,
        "text": campaign.text,
        "senderId": str(campaign.sender_id),
        "senderLabel": sender.label if sender else None,
        "scheduledDate": iso(campaign.scheduled_at),
        "recurring": campaign.recurring,
        "timezone": campaign.timezone,
        "stats": total,
        "createdAt": iso(campaign.created_at),
        "updatedAt": iso(campaign.updated_at),
    }


def details(session: Session, r: redis.Redis, campaign: Campaign, *, with_contacts: bool = True) -> dict[str, Any]:
    runs = session.scalars(select(Run).where(Run.campaign_id == campaign.id).order_by(Run.fire_at)).all()
    counts = run_counts(session, r, runs)
    body = summary(campaign, session.get(Sender, campaign.sender_id), runs, counts)
    body["contacts"] = _contacts(session, campaign, runs) if with_contacts else []
    body["errors"] = _errors(session, [run.id for run in runs])
    body["runs"] = [
        {
            "id": str(run.id),
            "fireAt": iso(run.fire_at),
            "status": run.status,
            "statusReason": run.status_reason,
            "startedAt": iso(run.started_at),
            "finishedAt": iso(run.finished_at),
            "stats": counts[run.id],
        }
        for run in runs
    ]
    waiting = [run.fire_at for run in runs if run.status in (RunStatus.SCHEDULED, RunStatus.QUEUED)]
    body["nextRuns"] = next_runs(campaign, waiting)
    body["recurringUntil"] = iso(campaign.recurring_until)
    body.update({k: v for k, v in (campaign.summary or {}).items() if k != "recipients"})
    body["recipients"] = int((campaign.summary or {}).get("recipients", 0))
    return body


def next_runs(campaign: Campaign, waiting: list[datetime], count: int = 5) -> list[str]:
    """The next occurrences a recurring campaign will fire at (none while paused or ended): the runs
    already created but not started (`waiting`), then the rule's occurrences from `next_fire_at`."""
    if campaign.type != "RECURRING" or campaign.status != "PENDING":
        return []
    out = [iso(when) or "" for when in sorted(waiting)][:count]
    if campaign.next_fire_at is None:
        return out
    rule = WeeklyRule.from_json(campaign.recurring or {})
    when: datetime | None = campaign.next_fire_at
    while when is not None and len(out) < count:
        out.append(iso(when) or "")
        when = next_fire(rule, when)
    return out


def _contacts(session: Session, campaign: Campaign, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Recipients of the latest run with their message status (or, before any run, the listed contacts)."""
    started = [run for run in runs if run.started_at is not None]
    if not started:
        rows = session.scalars(
            select(Contact)
            .join(CampaignContact, CampaignContact.contact_id == Contact.id)
            .where(CampaignContact.campaign_id == campaign.id)
            .order_by(CampaignContact.position)
            .limit(CONTACTS_IN_DETAILS)
        ).all()
        return [contact_view(c) for c in rows]
    result = session.execute(
        select(Contact, Message.status, Message.error_code, Message.error_text)
        .join(Message, Message.contact_id == Contact.id)
        .where(Message.run_id == started[-1].id)
        .order_by(Message.id)
        .limit(CONTACTS_IN_DETAILS)
    ).all()
    return [{**contact_view(c), "status": status, "errorCode": code, "error": text} for c, status, code, text in result]


_NOT_SENT = (MessageStatus.FAILED, MessageStatus.UNKNOWN, MessageStatus.SKIPPED)


def _errors(session: Session, run_ids: list[int]) -> list[dict[str, Any]]:
    """Why messages were not sent, grouped by provider code (reads those rows only, through the status index)."""
    if not run_ids:
        return []
    rows = session.execute(
        select(Message.error_code, func.min(Message.error_text), func.count())
        .where(Message.run_id.in_(run_ids), Message.status.in_(_NOT_SENT))
        .group_by(Message.error_code)
        .order_by(func.count().desc())
        .limit(20)
    ).all()
    return [{"code": code, "error": text, "count": int(n)} for code, text, n in rows]


def contact_view(c: Contact) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "phone": c.phone,
        "name": c.name,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "sex": c.sex,
        "fields": c.fields or {},
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
    }
