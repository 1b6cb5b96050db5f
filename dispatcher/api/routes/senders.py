"""`/v1/senders`: who a campaign is sent from. Provider settings are write-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from sqlalchemy import select

from dispatcher import senders
from dispatcher.api.deps import AccountDep, SessionDep, SettingsDep, owned
from dispatcher.api.openapi import ERRORS
from dispatcher.db.models import Sender
from dispatcher.errors import SpecError
from dispatcher.inputs import provider_url_problem
from dispatcher.schemas import SenderCreate, SenderPublic

router = APIRouter(prefix="/v1/senders", tags=["senders"])

# Messages per second when the sender does not say: WhatsApp Cloud's default per-number throughput is 80.
DEFAULT_RATE = {"sms": 10.0, "whatsapp": 80.0}

# The settings each provider cannot work without (checked at creation, not at the first send).
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "sandbox": (),
    "twilio": ("account_sid", "auth_token"),
    # app_secret checks webhook signatures; without it no delivery receipt could be trusted.
    "whatsapp_cloud": ("phone_number_id", "access_token", "app_secret"),
}


def public(sender: Sender) -> SenderPublic:
    return SenderPublic(
        id=str(sender.id),
        channel=sender.channel,
        label=sender.label,
        provider=sender.provider,
        active=sender.active,
        default=sender.is_default,
        rate=sender.rate,
        burst=sender.burst,
        createdAt=sender.created_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_sender(body: SenderCreate, session: SessionDep, account: AccountDep, config: SettingsDep) -> SenderPublic:
    """Add a sender. The first active sender of a channel becomes the account's default for it."""
    if (body.provider == "whatsapp_cloud") != (body.channel == "whatsapp") and body.provider != "sandbox":
        raise SpecError.single(("provider",), f"provider {body.provider} does not send {body.channel}")
    missing = [k for k in REQUIRED_SETTINGS[body.provider] if not body.settings.get(k)]
    if body.provider == "twilio" and not (body.settings.get("messaging_service_sid") or body.settings.get("from")):
        missing.append("from")
    if missing:
        raise SpecError.single(("settings",), f"{body.provider} needs settings: {', '.join(missing)}", "missing")
    base_url = body.settings.get("base_url")
    problem = provider_url_problem(base_url, allow_private=config.allow_private_provider_urls)
    if base_url is not None and problem is not None:
        raise SpecError.single(("settings", "base_url"), problem)
    if session.scalar(
        select(Sender.id).where(
            Sender.account_id == account.id, Sender.channel == body.channel, Sender.label == body.label
        )
    ):
        raise SpecError.single(("label",), f"a {body.channel} sender labelled {body.label!r} already exists")
    sender = Sender(
        account_id=account.id,
        channel=body.channel,
        label=body.label,
        provider=body.provider,
        settings=senders.with_sandbox_secrets(body.settings) if body.provider == "sandbox" else body.settings,
        active=body.active,
        rate=body.rate if body.rate is not None else DEFAULT_RATE[body.channel],
        burst=body.burst,
    )
    session.add(sender)
    session.flush()
    if body.default or (body.active and senders.default_sender(session, account.id, body.channel) is None):
        senders.make_default(session, sender)
    session.commit()
    return public(sender)


@router.get("", responses=ERRORS)
def list_senders(session: SessionDep, account: AccountDep) -> dict[str, Any]:
    rows = session.scalars(select(Sender).where(Sender.account_id == account.id).order_by(Sender.id)).all()
    return {"data": [public(s) for s in rows]}


@router.get("/{sender_id}", responses=ERRORS)
def get_sender(sender_id: str, session: SessionDep, account: AccountDep) -> SenderPublic:
    return public(owned(session, Sender, account.id, sender_id, "sender"))
