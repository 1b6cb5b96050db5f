"""`/v1/conversations`: WhatsApp conversations with their tags and the tags waiting for a reply."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import String, cast, select

from dispatcher.api.deps import AccountDep, PageNumber, SessionDep, total_of
from dispatcher.api.openapi import ERRORS
from dispatcher.campaigns.views import iso
from dispatcher.db.models import Contact, Conversation

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.get("", responses=ERRORS)
def list_conversations(
    session: SessionDep,
    account: AccountDep,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    tag: str | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    query = (
        select(Conversation, Contact)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.account_id == account.id)
    )
    if tag:
        # Tags are a JSON list on both SQLite and PostgreSQL; match the quoted element in its text form.
        # `_` and `%` in a tag are literal (sales_lead must not match salesXlead).
        needle = json.dumps(tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(cast(Conversation.tags, String).like(f"%{needle}%", escape="\\"))
    if phone:
        query = query.where(Contact.phone == "+" + phone.strip().lstrip("+"))
    rows = session.execute(query.order_by(Conversation.id).offset((page - 1) * limit).limit(limit)).all()
    data = [
        {
            "id": str(c.id),
            "senderId": str(c.sender_id),
            "contactId": str(c.contact_id),
            "phone": contact.phone,
            "name": contact.name,
            "tags": c.tags or [],
            "pendingTags": c.pending_tags or [],
            "lastInboundAt": iso(c.last_inbound_at),
            "lastInboundText": c.last_inbound_text,
            "createdAt": iso(c.created_at),
            "updatedAt": iso(c.updated_at),
        }
        for c, contact in rows
    ]
    return {"data": data, "page": page, "limit": limit, "total": total_of(session, query)}
