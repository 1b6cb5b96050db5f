"""Start a run: claim it, write one message row per recipient, set the counters, publish the sends.

The claim (`queued -> running`) and the message rows commit together, so a crash either leaves the
run queued (the task is redelivered: acks_late) or fully materialised (the reconciler republishes
messages whose send task never arrived). Recipient lists never travel inside a task: each send task
carries one message id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dispatcher.audience import contacts as contact_store
from dispatcher.campaigns import control, leases
from dispatcher.campaigns.completion import finish_run
from dispatcher.campaigns.outbox import queued_refs
from dispatcher.content.renderer import Refusal, Renderer, to_person
from dispatcher.contracts import SendRef
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
    Template,
)
from dispatcher.tracking import stats

INSERT_CHUNK = 1000

Publisher = Callable[[list[SendRef], str], None]


def claim_run(session: Session, run_id: int, now: datetime, expected_fire_at: datetime | None = None) -> bool:
    """`queued -> running`, once. With `expected_fire_at`, a task published for an older fire time
    (the run was rescheduled since) claims nothing."""
    query = update(Run).where(Run.id == run_id, Run.status == RunStatus.QUEUED)
    if expected_fire_at is not None:
        query = query.where(Run.fire_at == expected_fire_at)
    result = session.execute(query.values(status=RunStatus.RUNNING, started_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def audience(session: Session, campaign: Campaign) -> Iterator[tuple[Contact, dict[str, Any] | None]]:
    """The recipients at fire time: listed contacts first, then current group members, each contact once."""
    seen: set[int] = set()
    rows = session.execute(
        select(Contact, CampaignContact.data)
        .join(CampaignContact, CampaignContact.contact_id == Contact.id)
        .where(CampaignContact.campaign_id == campaign.id)
        .order_by(CampaignContact.position)
    )
    for contact, data in rows:
        if contact.id not in seen:
            seen.add(contact.id)
            yield contact, data
    for contact in contact_store.members_of(session, campaign.group_ids or []):
        if contact.id not in seen:
            seen.add(contact.id)
            yield contact, None


def renderer_for(session: Session, campaign: Campaign) -> Renderer:
    if campaign.template_id is not None:
        return Renderer(template=session.get_one(Template, campaign.template_id))
    return Renderer(text=campaign.text)


def row_content(renderer: Renderer, contact: Contact, data: dict[str, Any] | None) -> dict[str, Any]:
    """The content columns of a recipient's message row, or a skipped row saying why there is no message.

    The audience may have changed since submission (a lost field, a new group member, data stored before
    a rule existed): such a recipient is skipped with the reason, never sent a broken message.
    """
    result = renderer.render(to_person(contact), data)
    if isinstance(result, Refusal):
        reason = result.reasons[0]
        return {"status": MessageStatus.SKIPPED, "segments": 0, "error_code": reason.code, "error_text": reason.text}
    return {
        "body": result.body,
        "encoding": result.encoding,
        "segments": result.segments,
        "template_params": result.template_params,
    }


def materialise(session: Session, run: Run, campaign: Campaign, now: datetime, lease: float) -> tuple[int, int]:
    """Insert the run's message rows, rendered now; returns (rows, rows skipped). Each queued row is
    leased for its place in the backlog (`leases.backlog`)."""
    rate = session.get_one(Sender, campaign.sender_id).rate
    renderer = renderer_for(session, campaign)
    # Every row has every key: executemany batches rows of one shape.
    base = {
        "run_id": run.id,
        "campaign_id": campaign.id,
        "account_id": run.account_id,
        "sender_id": campaign.sender_id,
        "body": None,
        "encoding": None,
        "template_params": None,
        "error_code": None,
        "error_text": None,
        "lease_until": None,
    }
    batch: list[dict[str, Any]] = []
    count = skipped = 0
    for contact, data in audience(session, campaign):
        row = {**base, "contact_id": contact.id, "phone": contact.phone, **row_content(renderer, contact, data)}
        if "status" in row:
            skipped += 1
        else:
            row.update(status=MessageStatus.QUEUED, lease_until=leases.backlog(now, lease, count, rate))
        batch.append(row)
        count += 1
        if len(batch) >= INSERT_CHUNK:
            session.execute(insert(Message), batch)
            batch = []
    if batch:
        session.execute(insert(Message), batch)
    return count, skipped


def resume_run(session: Session, run_id: int, publish: Publisher, *, chunk: int = 500) -> int:
    """Publish a resumed run's queued messages again; returns how many (0 if paused or cancelled again).
    `control.resume` leased them before publishing this task."""
    run = session.get_one(Run, run_id)
    campaign = session.get_one(Campaign, run.campaign_id)
    if campaign.status != CampaignStatus.PENDING or run.status != RunStatus.RUNNING:
        return 0
    published = 0
    for refs in queued_refs(session, run_id, chunk):
        publish(refs, campaign.channel)
        published += len(refs)
    return published


def start_run(
    session: Session,
    r: redis.Redis,
    run_id: int,
    publish: Publisher,
    *,
    chunk: int = 500,
    lease: float = 120.0,
    now: datetime | None = None,
    expected_fire_at: datetime | None = None,
) -> int:
    """Returns the number of send tasks published (0 if another worker already started this run)."""
    now = now or datetime.now(UTC)
    if not claim_run(session, run_id, now, expected_fire_at):
        session.rollback()
        return 0
    run = session.get_one(Run, run_id)
    campaign = session.get_one(Campaign, run.campaign_id)
    if campaign.status == CampaignStatus.PAUSED:
        control.hold_while_paused(run, campaign, now)
        session.commit()
        return 0
    total, skipped = materialise(session, run, campaign, now, lease)
    session.commit()
    stats.overwrite(r, run_id, {"total": total, "skipped": skipped})

    published = 0
    for refs in queued_refs(session, run_id, chunk):
        publish(refs, campaign.channel)
        published += len(refs)
    if published == 0:
        reason = "no recipient could be messaged" if total else "no recipients at fire time"
        finish_run(session, r, run_id, reason=reason)
    return published
