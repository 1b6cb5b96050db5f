"""Provider callbacks: `/v1/webhooks/{provider}/{sender_id}`. Authenticated by the provider's signature
over the raw request (never by a Bearer token); a missing or wrong signature is 401 and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session

from dispatcher.api.deps import RedisDep, SessionDep, SettingsDep
from dispatcher.audience import conversations
from dispatcher.audience.contacts import ContactFields, apply, ensure, parse_id
from dispatcher.config import get_settings
from dispatcher.content.phones import PhoneError, normalize
from dispatcher.db.models import Sender
from dispatcher.tracking import receipts, signatures, webhook_events

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

log = structlog.get_logger(__name__)


def _sender(session: Session, sender_id: str, channel: str, providers: tuple[str, ...]) -> Sender:
    key = parse_id(sender_id)
    sender = session.get(Sender, key) if key is not None else None
    if sender is None or sender.channel != channel or sender.provider not in providers:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {channel} sender {sender_id} for this webhook")
    return sender


def _secret(sender: Sender, name: str) -> str:
    value = (sender.settings or {}).get(name)
    if value:
        return str(value)
    # Sandbox senders created before each got its own secrets fall back to the operator's, if any.
    fallback = get_settings().sandbox_webhook_secret
    if sender.provider == "sandbox" and fallback is not None:
        return fallback.get_secret_value()
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"sender has no {name} to check signatures with")


@router.get("/whatsapp_cloud/{sender_id}", response_class=PlainTextResponse)
def verify_whatsapp(
    sender_id: str,
    session: SessionDep,
    mode: str = Query(alias="hub.mode"),
    token: str = Query(alias="hub.verify_token"),
    challenge: str = Query(alias="hub.challenge"),
) -> str:
    """Meta's subscription handshake: echo the challenge when the verify token matches."""
    sender = _sender(session, sender_id, "whatsapp", ("whatsapp_cloud", "sandbox"))
    if mode != "subscribe" or not signatures.valid(_secret(sender, "verify_token"), token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "verify token mismatch")
    return challenge


@router.post("/whatsapp_cloud/{sender_id}")
async def whatsapp_events(sender_id: str, request: Request, session: SessionDep, r: RedisDep) -> dict[str, Any]:
    """Status events (sent, delivered, read, failed) and inbound messages from Meta."""
    sender = _sender(session, sender_id, "whatsapp", ("whatsapp_cloud", "sandbox"))
    raw = await request.body()
    expected = signatures.meta_signature(_secret(sender, "app_secret"), raw)
    if not signatures.valid(expected, request.headers.get("x-hub-signature-256")):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid X-Hub-Signature-256")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not JSON") from None
    batch = webhook_events.meta_batch(payload)
    applied = sum(receipts.apply(session, r, sender.id, event) for event in batch.statuses)
    inbound = sum(_inbound(session, sender, message) for message in batch.inbound)
    if batch.skipped:
        log.warning("unreadable webhook items skipped", sender_id=sender.id, skipped=batch.skipped)
    return {"statuses": applied, "inbound": inbound, "skipped": batch.skipped}


@router.post("/twilio/{sender_id}")
async def twilio_status(
    sender_id: str, request: Request, session: SessionDep, r: RedisDep, settings: SettingsDep
) -> dict[str, Any]:
    """Twilio status callbacks (form-encoded), checked with X-Twilio-Signature over the URL Twilio called."""
    sender = _sender(session, sender_id, "sms", ("twilio", "sandbox"))
    raw = (await request.body()).decode("utf-8", "replace")
    params = dict(parse_qsl(raw, keep_blank_values=True))
    url = f"{settings.public_url.rstrip('/')}{request.url.path}" if settings.public_url else str(request.url)
    if settings.public_url and request.url.query:
        url += f"?{request.url.query}"
    expected = signatures.twilio_signature(_secret(sender, "auth_token"), url, params)
    if not signatures.valid(expected, request.headers.get("x-twilio-signature")):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid X-Twilio-Signature")
    event = webhook_events.twilio_event(params)
    if event is None:
        return {"statuses": 0}
    return {"statuses": int(receipts.apply(session, r, sender.id, event))}


def _inbound(session: Session, sender: Sender, message: webhook_events.Inbound) -> int:
    """A reply: find (or create) the contact by its number, then open or update the conversation."""
    try:
        phone = normalize(message.sender, sms=False)
    except PhoneError:
        return 0
    found, created = ensure(session, sender.account_id, [phone])
    contact = found[phone]
    if phone in created and message.name:
        apply(contact, ContactFields(name=message.name))
    conversations.on_inbound(session, sender.account_id, sender.id, contact.id, message.text, message.at)
    session.commit()
    return 1
