"""Send one message: take a slot from the sender's limiter, claim the message, call the provider, record.

Exactly-once rests on the claim: `queued -> sending` is one conditional UPDATE, so a duplicated or
redelivered task finds nothing to claim and stops before any provider call. Counters change only when
the outcome's `sending -> <final>` update wins, so nothing counts twice. The task is a thin wrapper.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
import redis
import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatcher import conversations, keys, metrics, stats
from dispatcher.completion import finish_run
from dispatcher.config import Settings, get_settings
from dispatcher.contracts import SendRef
from dispatcher.db.models import Campaign, Message, MessageStatus, Sender, Template
from dispatcher.db.session import session_factory
from dispatcher.senders import sandbox_phone_number_id
from workers import limiter as lim
from workers.budget import record_outcome
from workers.providers.base import Ambiguous, Outbound, Permanent, ProviderError, TemplateCall, Throttled
from workers.providers.registry import UnknownProvider, provider_for

log = structlog.get_logger(__name__)

SENDER_CACHE_SECONDS = 30.0
# Pair-rate refusals (WhatsApp 131056) one message may get before it fails: ~22 minutes of backoff.
MAX_PAIR_THROTTLES = 8
# A paused campaign's queued messages wait here until resume republishes them (and renews the lease).
PARKED = timedelta(days=30)
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
    campaign_id: int
    account_id: int
    contact_id: int
    phone: str
    body: str
    params: tuple[str, ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class Context:
    """What one send needs besides the message: shared clients and settings."""

    session: Session
    client: httpx.Client
    r: redis.Redis
    limiter: lim.SenderLimiter
    settings: Settings


def sender_config(session: Session, sender_id: int) -> dict[str, Any]:
    """The sender's provider, rate and settings, cached briefly per process (read on every send otherwise)."""
    hit = _sender_cache.get(sender_id)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    sender = session.get_one(Sender, sender_id)
    defaults: dict[str, Any] = {"from": sender.label}
    if sender.provider == "sandbox" and sender.channel == "whatsapp":
        defaults["phone_number_id"] = sandbox_phone_number_id(sender.id)
    if sender.provider == "sandbox" and sender.channel == "sms":
        # The sandbox posts delivery receipts where a real Twilio account would: our webhook.
        defaults["status_callback"] = f"{get_settings().api_url}/v1/webhooks/twilio/{sender.id}"
    config = {
        "provider": sender.provider,
        "channel": sender.channel,
        "rate": sender.rate,
        "burst": sender.burst,
        "settings": {**defaults, **(sender.settings or {})},
    }
    _sender_cache[sender_id] = (time.monotonic() + SENDER_CACHE_SECONDS, config)
    return config


@lru_cache(maxsize=4096)
def campaign_content(session_url: str, campaign_id: int) -> tuple[TemplateCall | None, tuple[str, ...], str | None]:
    """What every message of a campaign shares: its template, conversation tags and trigger (immutable)."""
    with session_factory(session_url)() as session:
        campaign = session.get_one(Campaign, campaign_id)
        template = session.get(Template, campaign.template_id) if campaign.template_id else None
        call = TemplateCall(template.name, template.language, ()) if template else None
        return call, tuple(campaign.conversation_tags or ()), campaign.trigger


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with equal jitter: never zero, never more than the cap."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def send_one(ctx: Context, message_id: int, ref: SendRef | None = None) -> Outcome:
    ref = ref or _ref_of(ctx.session, message_id)
    if ref is None:
        return Outcome("gone")
    _, sender_id, campaign_id, cost = ref
    config = sender_config(ctx.session, sender_id)
    gate = _wait_for_slot(ctx, sender_id, campaign_id, cost, config)
    if gate is not None:
        if gate.status == "cancelled":
            _skip(ctx, message_id)
        elif gate.status == "paused":
            park(ctx.session, message_id)
        return gate
    msg = claim(ctx.session, message_id, timedelta(seconds=ctx.settings.send_lease_seconds))
    if msg is None:
        return Outcome("not-claimed", channel=config["channel"])
    template, tags, trigger = campaign_content(ctx.settings.database_url, campaign_id)
    if template is not None:
        template = TemplateCall(template.name, template.language, msg.params)
    started = time.monotonic()

    def final(status: str, code: str | None, text: str | None, provider_id: str | None = None) -> Outcome:
        call = (config["channel"], config["provider"], time.monotonic() - started)
        return _final(ctx, msg, status, code, text, call=call, provider_id=provider_id)

    try:
        provider = provider_for(config["provider"], config["channel"], ctx.client, config["settings"])
    except UnknownProvider as exc:
        return final(MessageStatus.FAILED, "config", f"unknown provider {exc}")
    except KeyError as exc:
        return final(MessageStatus.FAILED, "config", f"sender setting {exc} is missing")
    try:
        result = provider.send(Outbound(message_id=msg.id, to=msg.phone, body=msg.body, template=template))
    except Throttled as exc:
        if exc.sender_wide:
            pause = exc.retry_after or 1.0
            ctx.limiter.pause_sender(sender_id, pause)
            log.warning("sender throttled by provider; paused", sender_id=sender_id, seconds=pause, code=exc.code)
        else:  # one recipient over its pair rate: only this message waits (1, 4, 16, 64, 256 s)
            tries = _pair_throttles(ctx.r, msg.id)
            if tries > MAX_PAIR_THROTTLES:
                return final(
                    MessageStatus.FAILED, exc.code, f"gave up after {tries - 1} pair-rate refusals: {exc.text}"
                )
            pause = exc.retry_after or 4.0 ** min(tries - 1, 4)
        metrics.record_wait(ctx.r, sender_id, "throttled", pause)
        return _release(
            ctx, msg, exc, retry_in=pause + random.uniform(0, 0.5), attempt=False, channel=config["channel"]
        )
    except Permanent as exc:
        return final(MessageStatus.FAILED, exc.code, exc.text)
    except Ambiguous as exc:
        return final(MessageStatus.UNKNOWN, exc.code, exc.text)
    except ProviderError as exc:  # Transient
        if msg.attempts >= ctx.settings.max_send_attempts:
            return final(MessageStatus.FAILED, exc.code, f"gave up after {msg.attempts} attempts: {exc.text}")
        return _release(ctx, msg, exc, retry_in=backoff(msg.attempts), attempt=True, channel=config["channel"])
    outcome = final(MessageStatus.SENT, None, None, result.provider_message_id)
    if tags:
        conversations.tag_after_send(ctx.session, msg.account_id, sender_id, msg.contact_id, list(tags), trigger)
    return outcome


def _pair_throttles(r: redis.Redis, message_id: int) -> int:
    """Count this message's pair-rate refusals: a throttled call is not an attempt, so the attempt count
    cannot drive this backoff."""
    key = keys.message_pair_throttles(message_id)
    pipe = r.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 24 * 3600)
    return int(pipe.execute()[0])


def _wait_for_slot(ctx: Context, sender_id: int, campaign_id: int, cost: int, config: dict[str, Any]) -> Outcome | None:
    """None when this message may be sent now; otherwise what to do instead."""
    for _ in range(5):
        decision = ctx.limiter.acquire(sender_id, campaign_id, config["rate"], config["burst"], cost)
        if decision.code == lim.GO:
            return None
        if decision.code == lim.RESERVED:
            metrics.record_wait(ctx.r, sender_id, "reserved", decision.wait_seconds)
            time.sleep(decision.wait_seconds)  # our slot: sleeping keeps the rate exact
            # A pause or cancel during the sleep must still stop this send ("within a second").
            control = ctx.limiter.campaign_control(campaign_id)
            if control is None:
                return None
            return Outcome(control, channel=config["channel"])
        if decision.code == lim.CAMPAIGN_CANCELLED:
            return Outcome("cancelled", channel=config["channel"])
        if decision.code == lim.CAMPAIGN_PAUSED:
            return Outcome("paused", channel=config["channel"])
        if decision.wait_seconds > ctx.limiter.max_wait_ms / 1000:
            break
        time.sleep(decision.wait_seconds)  # a short provider pause: wait it out, then ask again
    # A long wait: go back to the broker rather than hold a worker thread.
    metrics.record_wait(ctx.r, sender_id, "deferred", decision.wait_seconds)
    return Outcome("deferred", retry_in=decision.wait_seconds + random.uniform(0, 1.0), channel=config["channel"])


def _ref_of(session: Session, message_id: int) -> SendRef | None:
    row = session.execute(
        select(Message.sender_id, Message.campaign_id, Message.segments).where(Message.id == message_id)
    ).first()
    return (message_id, row.sender_id, row.campaign_id, row.segments) if row else None


def claim(session: Session, message_id: int, lease: timedelta) -> Claimed | None:
    now = datetime.now(UTC)
    row = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.SENDING, attempts=Message.attempts + 1, lease_until=now + lease, updated_at=now)
        .returning(
            Message.run_id,
            Message.campaign_id,
            Message.account_id,
            Message.contact_id,
            Message.phone,
            Message.body,
            Message.template_params,
            Message.attempts,
        )
    ).first()
    session.commit()
    if row is None:
        return None
    return Claimed(
        message_id,
        row.run_id,
        row.campaign_id,
        row.account_id,
        row.contact_id,
        row.phone,
        row.body or "",
        tuple(row.template_params or ()),
        row.attempts,
    )


def _final(
    ctx: Context,
    msg: Claimed,
    status: str,
    code: str | None,
    text: str | None,
    *,
    call: tuple[str, str, float | None],
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
    won = ctx.session.execute(
        update(Message).where(Message.id == msg.id, Message.status == MessageStatus.SENDING).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    ctx.session.commit()
    if won:
        counts = record_outcome(ctx, msg.run_id, msg.campaign_id, status, code, text, call)
        if counts["pending"] == 0:
            finish_run(ctx.session, msg.run_id)
    return Outcome(status)


def _release(
    ctx: Context, msg: Claimed, exc: ProviderError, *, retry_in: float, attempt: bool, channel: str
) -> Outcome:
    """Put the message back to `queued` so the republished task can claim it again."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": MessageStatus.QUEUED,
        "lease_until": now + timedelta(seconds=retry_in + ctx.settings.send_lease_seconds),
        "error_code": exc.code,
        "error_text": exc.text,
        "updated_at": now,
    }
    if not attempt:
        values["attempts"] = Message.attempts - 1  # a throttled call is not an attempt
    ctx.session.execute(
        update(Message).where(Message.id == msg.id, Message.status == MessageStatus.SENDING).values(**values)
    )
    ctx.session.commit()
    return Outcome("throttled" if isinstance(exc, Throttled) else "retry", retry_in=retry_in, channel=channel)


def _skip(ctx: Context, message_id: int) -> None:
    """Cancelled: `cancel` skipped the queued rows, but a message released back to queued since then
    (a retry racing the cancel) is skipped here, so its run can finish."""
    row = ctx.session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        .values(
            status=MessageStatus.SKIPPED,
            error_code="cancelled",
            error_text="campaign cancelled",
            lease_until=None,
            updated_at=datetime.now(UTC),
        )
        .returning(Message.run_id)
    ).first()
    ctx.session.commit()
    if row is not None and stats.bump(ctx.r, row.run_id, "skipped")["pending"] == 0:
        finish_run(ctx.session, row.run_id)


def park(session: Session, message_id: int) -> None:
    """Keep a paused campaign's message out of the reconciler's way until resume."""
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        .values(lease_until=datetime.now(UTC) + PARKED)
    )
    session.commit()
