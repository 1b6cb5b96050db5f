"""Senders of an account: the SMS sender name or WhatsApp number, its provider and its send rate."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.audience.contacts import parse_id
from dispatcher.db.models import Sender
from dispatcher.errors import Collector, Loc


def find(session: Session, account_id: int, channel: str, ref: str | int) -> Sender | None:
    """A sender by id or by label ("My Sender"), within the account and channel."""
    ident = parse_id(ref)
    query = select(Sender).where(Sender.account_id == account_id, Sender.channel == channel)
    if ident is not None:
        by_id = session.scalar(query.where(Sender.id == ident))
        if by_id is not None:
            return by_id
    return session.scalar(query.where(Sender.label == str(ref)))


def default_sender(session: Session, account_id: int, channel: str) -> Sender | None:
    return session.scalar(
        select(Sender).where(
            Sender.account_id == account_id,
            Sender.channel == channel,
            Sender.active.is_(True),
            Sender.is_default.is_(True),
        )
    )


def resolve_sender(
    session: Session, account_id: int, channel: str, ref: str | int | None, loc: Loc, errors: Collector
) -> tuple[Sender | None, str | None]:
    """The seed's rule: the named sender "will go if active or will use the default sender".

    Returns the sender and, when the default stood in, a warning saying why.
    """
    named = find(session, account_id, channel, ref) if ref not in (None, "") else None
    if named is not None and named.active:
        return named, None
    fallback = default_sender(session, account_id, channel)
    why = "" if ref in (None, "") else _why_not(session, account_id, channel, ref, named)
    if fallback is None:
        if ref in (None, ""):
            reason = f"no sender given and the account has no active default {channel} sender"
        else:
            reason = f"sender {ref!r} {why} and the account has no active default {channel} sender"
        errors.add(loc, reason, "sender")
        return None, None
    if ref in (None, ""):
        return fallback, None
    return fallback, f"sender {ref!r} {why}: the default sender {fallback.label!r} is used"


def _why_not(session: Session, account_id: int, channel: str, ref: str | int, named: Sender | None) -> str:
    if named is not None:
        return "is inactive"
    other = "sms" if channel == "whatsapp" else "whatsapp"
    if find(session, account_id, other, ref) is not None:
        return f"is a {other} sender, not {channel}"
    return "does not exist"


def make_default(session: Session, sender: Sender) -> None:
    """Only one default per account and channel."""
    for other in session.scalars(
        select(Sender).where(
            Sender.account_id == sender.account_id, Sender.channel == sender.channel, Sender.id != sender.id
        )
    ):
        other.is_default = False
    sender.is_default = True


def sandbox_phone_number_id(sender_id: int) -> str:
    """A stable Graph phone-number id for a sandbox WhatsApp sender that did not set one."""
    return str(100_000_000_000_000 + sender_id)


# What the sandbox signs callbacks with (Twilio auth_token, Meta app_secret) and Meta's verify token.
SANDBOX_SECRETS = ("auth_token", "app_secret", "verify_token")


def with_sandbox_secrets(settings: dict[str, Any]) -> dict[str, Any]:
    """A sandbox sender's settings with a random secret for each one not given.

    A shared default would let anyone who read the code forge a sandbox sender's delivery receipts.
    """
    generated = {name: secrets.token_urlsafe(32) for name in SANDBOX_SECRETS if not settings.get(name)}
    return {**settings, **generated}
