"""Send one message: take a slot from the sender's limiter, claim the message, call the provider, record.

Exactly-once rests on the claim: `queued -> sending` is one conditional UPDATE, so a duplicated or
redelivered task finds nothing to claim and stops before any provider call. Counters change only when
the outcome's `sending -> <final>` update wins, so nothing counts twice. The task is a thin wrapper.
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import httpx
import redis
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher import keys
from dispatcher.audience import conversations
from dispatcher.audience.senders import sandbox_phone_number_id
from dispatcher.campaigns import leases
from dispatcher.campaigns.completion import finish_run
from dispatcher.campaigns.control import Control
from dispatcher.config import Settings
from dispatcher.contracts import SendRef
from dispatcher.db.models import Campaign, Message, MessageStatus, Sender, Template
from dispatcher.db.session import get_engine, session_factory
from dispatcher.tracking import metrics, stats
from workers.http import build_async_client
from workers.providers.base import (
    Ambiguous,
    Outbound,
    Permanent,
    Provider,
    ProviderError,
    TemplateCall,
    Throttled,
)
from workers.providers.registry import ProviderConfigError, provider_for
from workers.sending import limiter as lim
from workers.sending import writes
from workers.sending.budget import ProviderCall, record_outcome
from workers.sending.context import Context

log = structlog.get_logger(__name__)

SENDER_CACHE_SECONDS = 30.0
# Pair-rate refusals (WhatsApp 131056) one message may get before it fails: ~22 minutes of backoff.
MAX_PAIR_THROTTLES = 8
_sender_cache: dict[int, SenderConfig] = {}


class Verdict(enum.StrEnum):
    """How one send ended: a final message status, or why it did not reach one (yet)."""

    SENT = MessageStatus.SENT
    FAILED = MessageStatus.FAILED
    UNKNOWN = MessageStatus.UNKNOWN  # ambiguous: the provider may have it; never sent again
    GONE = "gone"  # the message no longer exists
    NOT_CLAIMED = "not-claimed"  # another task has (or had) it: a duplicate or redelivered task
    PAUSED = Control.PAUSED  # parked until resume
    CANCELLED = Control.CANCELLED  # skipped
    DEFERRED = "deferred"  # the sender's next slot is too far: published again for later
    THROTTLED = "throttled"  # the provider said slow down: published again, not an attempt
    RETRY = "retry"  # a transient error: published again with backoff


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened; `retry_in` asks the caller to publish the message again after that many seconds, on
    the queue of `channel`."""

    verdict: Verdict
    channel: str
    retry_in: float | None = None


class CampaignContent(NamedTuple):
    """What every message of a campaign shares (immutable once submitted)."""

    template: TemplateCall | None
    tags: tuple[str, ...]
    trigger: str | None


@dataclass(slots=True)
class SenderConfig:
    """A sender's provider, rate and settings, and its adapter built once per process (per entry)."""

    provider: str
    channel: str
    rate: float
    burst: int
    settings: dict[str, Any]
    expires: float
    _adapter: tuple[httpx.AsyncClient, Provider] | None = None

    def adapter(self, client: httpx.AsyncClient) -> Provider:
        """`provider_for` of this sender; raises `ProviderConfigError` as it does."""
        cached = self._adapter
        if cached is not None and cached[0] is client:
            return cached[1]
        adapter = provider_for(self.provider, self.channel, client, self.settings)
        self._adapter = (client, adapter)
        return adapter


def sender_config(ctx: Context, sender_id: int) -> SenderConfig:
    """The sender's configuration, cached briefly per process (read on every send otherwise)."""
    hit = _sender_cache.get(sender_id)
    if hit is not None and hit.expires > time.monotonic():
        return hit
    sender = ctx.session().get_one(Sender, sender_id)
    defaults: dict[str, Any] = {"from": sender.label}
    if sender.provider == "sandbox" and sender.channel == "whatsapp":
        defaults["phone_number_id"] = sandbox_phone_number_id(sender.id)
    if sender.provider == "sandbox" and sender.channel == "sms":
        # The sandbox posts delivery receipts where a real Twilio account would: our webhook.
        defaults["status_callback"] = f"{ctx.settings.api_url}/v1/webhooks/twilio/{sender.id}"
    config = SenderConfig(
        sender.provider,
        sender.channel,
        sender.rate,
        sender.burst,
        {**defaults, **(sender.settings or {})},
        time.monotonic() + SENDER_CACHE_SECONDS,
    )
    _sender_cache[sender_id] = config
    return config


@lru_cache(maxsize=4096)
def campaign_content(session_url: str, campaign_id: int) -> CampaignContent:
    with session_factory(session_url)() as session:
        campaign = session.get_one(Campaign, campaign_id)
        template = session.get(Template, campaign.template_id) if campaign.template_id else None
        call = TemplateCall(template.name, template.language, ()) if template else None
        return CampaignContent(call, tuple(campaign.conversation_tags or ()), campaign.trigger)


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with equal jitter: never zero, never more than the cap."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def send_one(ctx: Context, message_id: int, ref: SendRef | None = None) -> Outcome:
    ref = ref or _ref_of(ctx.session(), message_id)
    if ref is None:
        return Outcome(Verdict.GONE, "")
    sender_id, campaign_id = ref.sender_id, ref.campaign_id
    config = sender_config(ctx, sender_id)
    # Read before the limiter grants a slot, so a granted slot never waits on the database.
    content = campaign_content(ctx.settings.database_url, campaign_id)
    ctx.end_reads()
    gate = _wait_for_slot(ctx, ref, config)
    if gate is not None:
        if gate.verdict == Verdict.CANCELLED:
            _skip(ctx, message_id, campaign_id)
        elif gate.verdict == Verdict.PAUSED:
            writes.park(ctx.conn(), message_id)
        return gate
    msg = writes.claim(ctx.conn(), message_id, leases.send(ctx.settings.send_lease_seconds))
    if msg is None:
        return Outcome(Verdict.NOT_CLAIMED, config.channel)
    template = content.template
    if template is not None:
        template = TemplateCall(template.name, template.language, msg.params)
    started = time.monotonic()

    def final(
        status: Verdict, code: str | None, text: str | None, provider_id: str | None = None, *, budget: bool = True
    ) -> Outcome:
        call = ProviderCall(config.channel, config.provider, time.monotonic() - started)
        return _final(ctx, msg, status, code, text, call=call, provider_id=provider_id, budget=budget)

    try:
        provider = config.adapter(ctx.client)
    except ProviderConfigError as exc:
        return final(Verdict.FAILED, "config", str(exc))
    try:
        outbound = Outbound(message_id=msg.id, to=msg.phone, body=msg.body, template=template)
        result = _bridge(ctx.settings).loop.run_until_complete(provider.send(outbound))  # bridge until the batch engine
    except Throttled as exc:
        if exc.sender_wide:
            pause = exc.retry_after or 1.0
            ctx.limiter.pause_sender(sender_id, pause)
            log.warning("sender throttled by provider; paused", sender_id=sender_id, seconds=pause, code=exc.code)
        else:  # one recipient over its pair rate: only this message waits (1, 4, 16, 64, 256 s)
            tries = _pair_throttles(ctx.r, msg.id)
            if tries > MAX_PAIR_THROTTLES:
                # Throttling is never a permanent failure of the campaign: not counted by the error budget.
                text = f"gave up after {tries - 1} pair-rate refusals: {exc.text}"
                return final(Verdict.FAILED, exc.code, text, budget=False)
            pause = exc.retry_after or 4.0 ** min(tries - 1, 4)
        metrics.record_wait(ctx.r, sender_id, "throttled", pause)
        return _release(ctx, msg, exc, retry_in=pause + random.uniform(0, 0.5), attempt=False, channel=config.channel)
    except Permanent as exc:
        return final(Verdict.FAILED, exc.code, exc.text)
    except Ambiguous as exc:
        return final(Verdict.UNKNOWN, exc.code, exc.text)
    except ProviderError as exc:  # Transient
        if msg.attempts >= ctx.settings.max_send_attempts:
            # Counted by the error budget: a provider down for longer than the backoff would otherwise
            # burn the whole audience; pausing lets the user resume once it is back.
            return final(Verdict.FAILED, exc.code, f"gave up after {msg.attempts} attempts: {exc.text}")
        return _release(ctx, msg, exc, retry_in=backoff(msg.attempts), attempt=True, channel=config.channel)
    outcome = final(Verdict.SENT, None, None, result.provider_message_id)
    if content.tags:
        tags, trigger = list(content.tags), content.trigger
        conversations.tag_after_send(ctx.session(), msg.account_id, sender_id, msg.contact_id, tags, trigger)
    return outcome


# bridge until the batch engine
@dataclass(frozen=True, slots=True)
class _Bridge:
    """A worker thread runs each async provider call on a loop of its own, with a client made for that
    loop (a client belongs to the loop it first ran on)."""

    pid: int
    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient


_bridges = threading.local()


def thread_client(settings: Settings) -> httpx.AsyncClient:
    """This worker thread's provider client (bridge until the batch engine)."""
    return _bridge(settings).client


def _bridge(settings: Settings) -> _Bridge:  # bridge until the batch engine
    bridge: _Bridge | None = getattr(_bridges, "current", None)
    if bridge is None or bridge.pid != os.getpid():  # never a loop or pool inherited across a fork
        bridge = _bridges.current = _Bridge(os.getpid(), asyncio.new_event_loop(), build_async_client(settings))
    return bridge


def _pair_throttles(r: redis.Redis, message_id: int) -> int:
    """Count this message's pair-rate refusals: a throttled call is not an attempt, so the attempt count
    cannot drive this backoff."""
    key = keys.message_pair_throttles(message_id)
    pipe = r.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 24 * 3600)
    return int(pipe.execute()[0])


def _wait_for_slot(ctx: Context, ref: SendRef, config: SenderConfig) -> Outcome | None:
    """None when this message may be sent now; otherwise what to do instead."""
    sender_id = ref.sender_id
    for _ in range(5):
        decision = ctx.limiter.acquire(sender_id, ref.campaign_id, config.rate, config.burst, ref.cost)
        if decision.code == lim.GO:
            return None
        if decision.code == lim.RESERVED:
            metrics.record_wait(ctx.r, sender_id, "reserved", decision.wait_seconds)
            time.sleep(decision.wait_seconds)  # our slot: sleeping keeps the rate exact
            # A pause or cancel during the sleep must still stop this send ("within a second").
            control = ctx.limiter.campaign_control(ref.campaign_id)
            if control is None:
                return None
            return Outcome(Verdict(control), config.channel)
        if decision.code == lim.CAMPAIGN_CANCELLED:
            return Outcome(Verdict.CANCELLED, config.channel)
        if decision.code == lim.CAMPAIGN_PAUSED:
            return Outcome(Verdict.PAUSED, config.channel)
        if decision.wait_seconds > ctx.limiter.max_wait_ms / 1000:
            break
        time.sleep(decision.wait_seconds)  # a short provider pause: wait it out, then ask again
    # A long wait: go back to the broker rather than hold a worker thread.
    metrics.record_wait(ctx.r, sender_id, "deferred", decision.wait_seconds)
    return Outcome(Verdict.DEFERRED, config.channel, retry_in=decision.wait_seconds + random.uniform(0, 1.0))


def _ref_of(session: Session, message_id: int) -> SendRef | None:
    row = session.execute(
        select(Message.sender_id, Message.campaign_id, Message.segments).where(Message.id == message_id)
    ).first()
    return SendRef(message_id, row.sender_id, row.campaign_id, row.segments) if row else None


def _final(
    ctx: Context,
    msg: writes.Claimed,
    status: Verdict,
    code: str | None,
    text: str | None,
    *,
    call: ProviderCall,
    provider_id: str | None = None,
    budget: bool = True,
) -> Outcome:
    """`budget=False`: a failure that is not the campaign's (one recipient's pair rate) leaves the streak as is."""
    if writes.finish(ctx.conn(), msg.id, status, code, text, provider_id):
        if record_outcome(ctx, msg.run_id, msg.campaign_id, status, code, text, call, budget=budget) == 0:
            finish_run(ctx.session(), ctx.r, msg.run_id)
    return Outcome(status, call.channel)


def _release(
    ctx: Context, msg: writes.Claimed, exc: ProviderError, *, retry_in: float, attempt: bool, channel: str
) -> Outcome:
    """Put the message back to `queued` so the republished task can claim it again."""
    lease = leases.retry(retry_in, ctx.settings.send_lease_seconds)
    writes.release(ctx.conn(), msg.id, lease, exc.code, exc.text, attempt=attempt)
    verdict = Verdict.THROTTLED if isinstance(exc, Throttled) else Verdict.RETRY
    return Outcome(verdict, channel, retry_in=retry_in)


def _skip(ctx: Context, message_id: int, campaign_id: int) -> None:
    """Cancelled: `cancel` skipped the queued rows, but a message released back to queued since then
    (a retry racing the cancel) is skipped here, with the campaign's reason, so its run can finish."""
    reason = ctx.session().get_one(Campaign, campaign_id).status_reason or "cancelled"
    run_id = writes.skip(ctx.conn(), message_id, reason)
    if run_id is not None and stats.bump(ctx.r, run_id, "skipped")["pending"] == 0:
        finish_run(ctx.session(), ctx.r, run_id)


def warm(settings: Settings) -> None:
    """Open the pools' connections and compile the claim once, so the first sends pay for neither."""
    engine = get_engine(settings.database_url, autocommit=True)
    size = max(1, min(settings.worker_concurrency, getattr(engine.pool, "size", lambda: 1)()))
    with ExitStack() as stack:
        conns = [stack.enter_context(engine.connect()) for _ in range(size)]
        # Message 0 does not exist: the claim compiles and matches nothing.
        writes.claim(conns[0], 0, leases.send(settings.send_lease_seconds))
    with get_engine(settings.database_url).connect():
        pass
