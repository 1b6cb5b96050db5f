"""WhatsApp conversations and their tags (the WhatsApp document, §5).

Without a trigger, a sent campaign message creates or updates the contact's conversation with the
campaign's tags at once. With `trigger: "any-reply"` the tags wait in `pending_tags` and are applied
when that contact replies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher.db.models import Conversation

ANY_REPLY = "any-reply"


def _merge(existing: list[str] | None, new: list[str]) -> list[str]:
    return list(dict.fromkeys([*(existing or []), *new]))


def _get_or_create(session: Session, account_id: int, sender_id: int, contact_id: int) -> Conversation:
    query = select(Conversation).where(Conversation.sender_id == sender_id, Conversation.contact_id == contact_id)
    conversation = session.scalar(query)
    if conversation is not None:
        return conversation
    try:
        with session.begin_nested():
            conversation = Conversation(
                account_id=account_id, sender_id=sender_id, contact_id=contact_id, tags=[], pending_tags=[]
            )
            session.add(conversation)
    except IntegrityError:  # another message of the same contact created it first
        conversation = session.scalar(query)
        assert conversation is not None
    return conversation


def tag_after_send(
    session: Session, account_id: int, sender_id: int, contact_id: int, tags: list[str], trigger: str | None
) -> None:
    conversation = _get_or_create(session, account_id, sender_id, contact_id)
    if trigger == ANY_REPLY:
        conversation.pending_tags = _merge(conversation.pending_tags, tags)
    else:
        conversation.tags = _merge(conversation.tags, tags)
    conversation.updated_at = datetime.now(UTC)
    session.commit()


def on_inbound(
    session: Session, account_id: int, sender_id: int, contact_id: int, text: str | None, at: datetime
) -> Conversation:
    """A reply opens or updates the conversation and applies the tags that waited for it. Does not commit."""
    conversation = _get_or_create(session, account_id, sender_id, contact_id)
    if conversation.pending_tags:
        conversation.tags = _merge(conversation.tags, conversation.pending_tags)
        conversation.pending_tags = []
    if conversation.last_inbound_at is None or at >= conversation.last_inbound_at:
        conversation.last_inbound_at = at
        conversation.last_inbound_text = text
    conversation.updated_at = datetime.now(UTC)
    return conversation
