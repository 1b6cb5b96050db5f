"""`/v1/senders`: who a campaign is sent from. Provider settings are write-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.api.deps import AccountDep, SessionDep, SettingsDep, merged, owned
from dispatcher.api.openapi import ERRORS
from dispatcher.api.schemas import SenderCreate, SenderPublic, SenderUpdate
from dispatcher.audience import senders
from dispatcher.db.models import Sender
from dispatcher.errors import SpecError
from dispatcher.inputs import provider_url_problem

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


def _check_settings(provider: str, settings: dict[str, Any], *, allow_private: bool) -> None:
    """The provider's required settings are there and its base_url may be called (422 otherwise)."""
    missing = [k for k in REQUIRED_SETTINGS[provider] if not settings.get(k)]
    if provider == "twilio" and not (settings.get("messaging_service_sid") or settings.get("from")):
        missing.append("from")
    if missing:
        raise SpecError.single(("settings",), f"{provider} needs settings: {', '.join(missing)}", "missing")
    base_url = settings.get("base_url")
    problem = provider_url_problem(base_url, allow_private=allow_private)
    if base_url is not None and problem is not None:
        raise SpecError.single(("settings", "base_url"), problem)


def _label_is_free(session: Session, account_id: int, channel: str, label: str) -> None:
    if session.scalar(
        select(Sender.id).where(Sender.account_id == account_id, Sender.channel == channel, Sender.label == label)
    ):
        raise SpecError.single(("label",), f"a {channel} sender labelled {label!r} already exists")


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_sender(body: SenderCreate, session: SessionDep, account: AccountDep, config: SettingsDep) -> SenderPublic:
    """Add a sender. The first active sender of a channel becomes the account's default for it."""
    if (body.provider == "whatsapp_cloud") != (body.channel == "whatsapp") and body.provider != "sandbox":
        raise SpecError.single(("provider",), f"provider {body.provider} does not send {body.channel}")
    _check_settings(body.provider, body.settings, allow_private=config.allow_private_provider_urls)
    _label_is_free(session, account.id, body.channel, body.label)
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


@router.patch("/{sender_id}", responses=ERRORS)
def update_sender(
    sender_id: str, body: SenderUpdate, session: SessionDep, account: AccountDep, config: SettingsDep
) -> SenderPublic:
    """Change the keys given. `settings` are merged (null removes a key) and checked as at creation.
    `"default": true` makes it the channel's default; `"active": false` stops it being used (a campaign
    naming it falls back to the default). Workers pick up a new rate or settings within 30 seconds."""
    sender = owned(session, Sender, account.id, sender_id, "sender")
    if body.label is not None and body.label != sender.label:
        _label_is_free(session, account.id, sender.channel, body.label)
        sender.label = body.label
    if body.settings is not None:
        settings = merged(sender.settings, body.settings)
        _check_settings(sender.provider, settings, allow_private=config.allow_private_provider_urls)
        sender.settings = senders.with_sandbox_secrets(settings) if sender.provider == "sandbox" else settings
    for key in ("active", "rate", "burst"):
        value = getattr(body, key)
        if value is not None:
            setattr(sender, key, value)
    if body.default is True:
        senders.make_default(session, sender)
    elif body.default is False:
        sender.is_default = False
    session.commit()
    return public(sender)


@router.get("", responses=ERRORS)
def list_senders(session: SessionDep, account: AccountDep) -> dict[str, Any]:
    rows = session.scalars(select(Sender).where(Sender.account_id == account.id).order_by(Sender.id)).all()
    return {"data": [public(s) for s in rows]}


@router.get("/{sender_id}", responses=ERRORS)
def get_sender(sender_id: str, session: SessionDep, account: AccountDep) -> SenderPublic:
    return public(owned(session, Sender, account.id, sender_id, "sender"))
