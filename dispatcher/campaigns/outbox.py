"""Queued messages as send references, read by keyset so 100k-row runs never sit in memory at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.contracts import SendRef
from dispatcher.db.models import Message, MessageStatus, Sender


def queued_refs(session: Session, run_id: int, chunk: int) -> Iterator[list[SendRef]]:
    last = 0
    while True:
        rows = session.execute(
            select(Message.id, Message.sender_id, Message.campaign_id, Message.segments)
            .where(Message.run_id == run_id, Message.status == MessageStatus.QUEUED, Message.id > last)
            .order_by(Message.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield [SendRef(r.id, r.sender_id, r.campaign_id, r.segments) for r in rows]
        last = rows[-1].id


def expired_refs(session: Session, now: datetime, limit: int) -> list[tuple[SendRef, str]]:
    """Queued messages past their lease, with their channel: their send task was lost."""
    rows = session.execute(
        select(Message.id, Message.sender_id, Message.campaign_id, Message.segments, Sender.channel)
        .join(Sender, Sender.id == Message.sender_id)
        .where(Message.status == MessageStatus.QUEUED, Message.lease_until < now)
        .order_by(Message.id)
        .limit(limit)
    ).all()
    return [(SendRef(r.id, r.sender_id, r.campaign_id, r.segments), r.channel) for r in rows]
