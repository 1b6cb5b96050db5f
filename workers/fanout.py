"""Start a run: claim it, then stream its audience into message rows and publish their sends, chunk by chunk.

A million recipients never sit in memory and the first sends leave while the rest is still being written:
each chunk of recipients is read by keyset, rendered, inserted (`ON CONFLICT DO NOTHING` on (run,
contact), which also keeps a contact listed and in a group to one message), committed, counted and
published. The run is finished only once `materialised_at` says every row is written, so sends that
overtake the fan-out never end it early. A crash mid-way leaves the run `running` without
`materialised_at`: the redelivered task (acks_late) continues it, and the conflict clause makes the rows
it already wrote harmless. Recipient lists never travel inside a task: each send task carries one message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import Select, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dispatcher.campaigns import control, leases
from dispatcher.campaigns.completion import counts_from_db, finish_run
from dispatcher.campaigns.control import Control
from dispatcher.campaigns.outbox import queued_refs
from dispatcher.content.personalisation import Person
from dispatcher.content.renderer import Refusal, Renderer
from dispatcher.contracts import SendRef
from dispatcher.db.models import (
    Campaign,
    CampaignContact,
    CampaignStatus,
    Contact,
    GroupMember,
    Message,
    MessageStatus,
    Run,
    RunStatus,
    Sender,
    Template,
)
from dispatcher.tracking import stats

CHUNK = 1000

Publisher = Callable[[list[SendRef], str], None]


@dataclass(frozen=True, slots=True)
class Recipient:
    contact_id: int
    person: Person
    data: dict[str, Any] | None


def claim_run(session: Session, run_id: int, now: datetime, expected_fire_at: datetime | None = None) -> bool:
    """`queued -> running`, once. With `expected_fire_at`, a task published for an older fire time
    (the run was rescheduled since) claims nothing."""
    query = update(Run).where(Run.id == run_id, Run.status == RunStatus.QUEUED)
    if expected_fire_at is not None:
        query = query.where(Run.fire_at == expected_fire_at)
    result = session.execute(query.values(status=RunStatus.RUNNING, started_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


_PERSON = (Contact.id, Contact.phone, Contact.name, Contact.first_name, Contact.last_name, Contact.fields)


def audience(session: Session, campaign: Campaign, chunk: int = CHUNK) -> Iterator[list[Recipient]]:
    """The recipients at fire time, in chunks: listed contacts first (with their data), then the current
    members of each group. Read by keyset, as plain rows, never all at once. A contact listed and in a
    group, or in two groups, comes more than once: the insert keeps the first."""
    listed = (
        select(*_PERSON, CampaignContact.data, CampaignContact.position)
        .join(CampaignContact, CampaignContact.contact_id == Contact.id)
        .where(CampaignContact.campaign_id == campaign.id)
    )
    yield from _keyset(session, listed, CampaignContact.position, chunk)
    for group_id in campaign.group_ids or []:
        # Keyed on the membership's own primary key (group, contact), so each page is an index range scan.
        members = (
            select(*_PERSON, null(), GroupMember.contact_id)
            .join(GroupMember, GroupMember.contact_id == Contact.id)
            .where(GroupMember.group_id == group_id)
        )
        yield from _keyset(session, members, GroupMember.contact_id, chunk)


def _keyset(session: Session, query: Select[Any], key: Any, chunk: int) -> Iterator[list[Recipient]]:
    last: int | None = None
    while True:
        page = query.order_by(key).limit(chunk) if last is None else query.where(key > last).order_by(key).limit(chunk)
        rows = session.execute(page).all()
        if not rows:
            return
        yield [Recipient(r[0], Person(r[1], r[2], r[3], r[4], r[5] or {}), r[6]) for r in rows]
        last = rows[-1][-1]


def renderer_for(session: Session, campaign: Campaign) -> Renderer:
    if campaign.template_id is not None:
        return Renderer(template=session.get_one(Template, campaign.template_id))
    return Renderer(text=campaign.text)


def row_content(renderer: Renderer, recipient: Recipient) -> dict[str, Any]:
    """The content columns of a recipient's message row, or a skipped row saying why there is no message.

    The audience may have changed since submission (a lost field, a new group member, data stored before
    a rule existed): such a recipient is skipped with the reason, never sent a broken message.
    """
    result = renderer.render(recipient.person, recipient.data)
    if isinstance(result, Refusal):
        reason = result.reasons[0]
        return {"status": MessageStatus.SKIPPED, "segments": 0, "error_code": reason.code, "error_text": reason.text}
    return {
        "status": MessageStatus.QUEUED,
        "body": result.body,
        "encoding": result.encoding,
        "segments": result.segments,
        "template_params": result.template_params,
        "error_code": None,
        "error_text": None,
    }


@dataclass(slots=True)
class Written:
    """What the fan-out wrote so far: rows (each recipient once), of which skipped, and the sends published."""

    rows: int = 0
    skipped: int = 0
    published: int = 0


def materialise(
    session: Session,
    r: redis.Redis,
    run: Run,
    campaign: Campaign,
    publish: Publisher,
    *,
    now: datetime,
    lease: float,
    chunk: int = CHUNK,
) -> Written:
    """Write, count and publish the run's message rows chunk by chunk (see the module docstring); stops
    early if the campaign is cancelled meanwhile. Each queued row is leased for its place in the backlog."""
    rate = session.get_one(Sender, campaign.sender_id).rate
    renderer = renderer_for(session, campaign)
    base = {"run_id": run.id, "campaign_id": campaign.id, "account_id": run.account_id, "sender_id": campaign.sender_id}
    written = Written()
    for recipients in audience(session, campaign, chunk):
        rows: list[dict[str, Any]] = []
        for recipient in recipients:
            row = {**base, "contact_id": recipient.contact_id, "phone": recipient.person.phone}
            row.update(row_content(renderer, recipient))
            row["lease_until"] = (
                leases.backlog(now, lease, written.rows + len(rows), rate)
                if row["status"] == MessageStatus.QUEUED
                else None
            )
            rows.append(row)
        refs, skipped = _insert(session, rows)
        session.commit()
        written.rows += len(refs) + skipped
        written.skipped += skipped
        stats.bump_many(r, run.id, {"total": len(refs) + skipped, "skipped": skipped})
        if refs:
            publish(refs, campaign.channel)
            written.published += len(refs)
        if control.flag(r, campaign.id) == Control.CANCELLED:
            break  # the rest of the audience is not written: nothing of it will be sent
    return written


def _insert(session: Session, rows: list[dict[str, Any]]) -> tuple[list[SendRef], int]:
    """Insert a chunk; a row whose (run, contact) exists is left out. Returns the queued rows' send refs,
    and how many skipped rows were inserted."""
    if not rows:
        return [], 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Message)
        .on_conflict_do_nothing(index_elements=["run_id", "contact_id"])
        .returning(Message.id, Message.sender_id, Message.campaign_id, Message.segments, Message.status)
    )
    inserted = session.execute(statement, rows).all()
    refs = [SendRef(i, s, c, n) for i, s, c, n, status in inserted if status == MessageStatus.QUEUED]
    return refs, len(inserted) - len(refs)


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
    chunk: int = CHUNK,
    lease: float = 120.0,
    now: datetime | None = None,
    expected_fire_at: datetime | None = None,
) -> int:
    """Returns the number of send tasks published (0 if another worker already started this run)."""
    now = now or datetime.now(UTC)
    if claim_run(session, run_id, now, expected_fire_at):
        continuing = False
    elif _unfinished_fan_out(session, run_id):
        continuing = True  # a worker died mid fan-out: its task, redelivered, goes on
    else:
        session.rollback()
        return 0
    run = session.get_one(Run, run_id)
    campaign = session.get_one(Campaign, run.campaign_id)
    if campaign.status == CampaignStatus.PAUSED and not continuing:
        control.hold_while_paused(run, campaign, now)
        session.commit()
        return 0
    session.commit()
    if not continuing:
        stats.overwrite(r, run_id, {"total": 0, "skipped": 0})
    else:
        # Rows written before the crash are not written (nor counted) again: recount them once.
        stats.overwrite(r, run_id, counts_from_db(session, run_id))
    written = materialise(session, r, run, campaign, publish, now=now, lease=lease, chunk=chunk)
    session.execute(update(Run).where(Run.id == run_id).values(materialised_at=datetime.now(UTC)))
    session.commit()
    total = written.rows
    if written.published == 0 and not continuing:
        reason = "no recipient could be messaged" if total else "no recipients at fire time"
        finish_run(session, r, run_id, reason=reason)
    else:
        finish_run(session, r, run_id)  # sends may all have ended while the fan-out was still writing
    return written.published


def _unfinished_fan_out(session: Session, run_id: int) -> bool:
    run = session.get(Run, run_id)
    return run is not None and run.status == RunStatus.RUNNING and run.materialised_at is None
