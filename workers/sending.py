"""Send one message: claim it, call the provider, record the outcome. The send task is a thin wrapper.

Exactly-once rests on the claim: `queued -> sending` is one conditional UPDATE, so a duplicated or
redelivered task finds nothing to claim and stops before any provider call. Counters change only when
the outcome's `sending -> <final>` update wins, so nothing counts twice.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis
from sqlalchemy import update
from sqlalchemy.orm import Session

from dispatcher import stats
from dispatcher.completion import finish_run
from dispatcher.config import Settings
from dispatcher.db.models import Message, MessageStatus, Sender
from workers.providers.base import Ambiguous, OutboundSms, Permanent, ProviderError, Throttled
from workers.providers.registry import UnknownProvider, sms_provider

SENDER_CACHE_SECONDS = 30.0
_sender_cache: dict[int, tuple[float, dict[str, Any]]] = {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened; `retry_in` asks the caller to publish the message again after that many seconds."""

    status: str
    retry_in: float | None = None
    channel: str = "sms"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    run_id: int
    sender_id: int
    phone: str
    body: str
    attempts: int


def claim(session: Session, message_id: int, lease: timedelta) -> Claimed | None:
    now = datetime.now(UTC)
    row = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.SENDING, attempts=Message.attempts + 1, lease_until=now + lease, updated_at=now)
        .returning(Message.run_id, Message.sender_id, Message.phone, Message.body, Message.attempts)
    ).first()
    session.commit()
    if row is None:
        return None
    return Claimed(message_id, row.run_id, row.sender_id, row.phone, row.body or "", row.attempts)


def sender_config(session: Session, sender_id: int) -> dict[str, Any]:
    """The sender's provider and settings, cached briefly per process (read on every send otherwise)."""
    hit = _sender_cache.get(sender_id)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    sender = session.get_one(Sender, sender_id)
    config = {
        "provider": sender.provider,
        "channel": sender.channel,
        "settings": {"from": sender.label, **(sender.settings or {})},
    }
    _sender_cache[sender_id] = (time.monotonic() + SENDER_CACHE_SECONDS, config)
    return config


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with equal jitter: never zero, never more than the cap."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def send_one(session: Session, message_id: int, *, client: httpx.Client, r: redis.Redis, settings: Settings) -> Outcome:
    msg = claim(session, message_id, timedelta(seconds=settings.send_lease_seconds))
    if msg is None:
        return Outcome("not-claimed")
    config = sender_config(session, msg.sender_id)
    try:
        provider = sms_provider(config["provider"], client, config["settings"])
        result = provider.send_sms(OutboundSms(message_id=msg.id, to=msg.phone, body=msg.body))
    except UnknownProvider as exc:
        return _final(session, r, msg, MessageStatus.FAILED, "config", f"unknown provider {exc}")
    except KeyError as exc:
        return _final(session, r, msg, MessageStatus.FAILED, "config", f"sender setting {exc} is missing")
    except Throttled as exc:
        return _release(
            session,
            msg,
            exc,
            retry_in=(exc.retry_after or 1.0) + random.uniform(0, 0.5),
            attempt=False,
            lease=settings.send_lease_seconds,
            channel=config["channel"],
        )
    except Permanent as exc:
        return _final(session, r, msg, MessageStatus.FAILED, exc.code, exc.text)
    except Ambiguous as exc:
        return _final(session, r, msg, MessageStatus.UNKNOWN, exc.code, exc.text)
    except ProviderError as exc:  # Transient
        if msg.attempts >= settings.max_send_attempts:
            text = f"gave up after {msg.attempts} attempts: {exc.text}"
            return _final(session, r, msg, MessageStatus.FAILED, exc.code, text)
        return _release(
            session,
            msg,
            exc,
            retry_in=backoff(msg.attempts),
            attempt=True,
            lease=settings.send_lease_seconds,
            channel=config["channel"],
        )
    return _final(session, r, msg, MessageStatus.SENT, None, None, provider_id=result.provider_message_id)


def _final(
    session: Session,
    r: redis.Redis,
    msg: Claimed,
    status: str,
    code: str | None,
    text: str | None,
    *,
    provider_id: str | None = None,
) -> Outcome:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status,
        "lease_until": None,
        "updated_at": now,
        "error_code": code,
        "error_text": text,
    }
    if provider_id is not None:
        values.update(provider_message_id=provider_id, sent_at=now)
    won = session.execute(
        update(Message).where(Message.id == msg.id, Message.status == MessageStatus.SENDING).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if won:
        counts = stats.bump(r, msg.run_id, status)
        if counts["pending"] == 0:
            finish_run(session, msg.run_id)
    return Outcome(status)


def _release(
    session: Session, msg: Claimed, exc: ProviderError, *, retry_in: float, attempt: bool, lease: float, channel: str
) -> Outcome:
    """Put the message back to `queued` so the republished task can claim it again."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": MessageStatus.QUEUED,
        "lease_until": now + timedelta(seconds=retry_in + lease),
        "error_code": exc.code,
        "error_text": exc.text,
        "updated_at": now,
    }
    if not attempt:
        values["attempts"] = Message.attempts - 1  # a throttled call is not an attempt
    session.execute(
        update(Message).where(Message.id == msg.id, Message.status == MessageStatus.SENDING).values(**values)
    )
    session.commit()
    return Outcome("throttled" if isinstance(exc, Throttled) else "retry", retry_in=retry_in, channel=channel)
