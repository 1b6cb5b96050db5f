"""Send one message: take a slot from the sender's limiter, claim the message, call the provider, record.

Exactly-once rests on the claim: `queued -> sending` is one conditional UPDATE, so a duplicated or
redelivered task finds nothing to claim and stops before any provider call. Counters change only when
the outcome's `sending -> <final>` update wins, so nothing counts twice. The task is a thin wrapper.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import httpx
import redis
import structlog
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from dispatcher import keys
from dispatcher.audience import conversations
from dispatcher.audience.senders import sandbox_phone_number_id
from dispatcher.campaigns.completion import finish_run
from dispatcher.config import Settings
from dispatcher.contracts import SendRef
from dispatcher.db.models import Campaign, Message, MessageStatus, Sender, Template
from dispatcher.db.session import get_engine, session_factory
from dispatcher.tracking import metrics, stats
from workers.providers.base import (
    Ambiguous,
    Outbound,
    Permanent,
    Provider,
    ProviderError,
    TemplateCall,
    Throttled,
)
from workers.providers.registry import UnknownProvider, provider_for
from workers.sending import limiter as lim
from workers.sending import writes
from workers.sending.budget import record_outcome

log = structlog.get_logger(__name__)

SENDER_CACHE_SECONDS = 30.0
# Pair-rate refusals (WhatsApp 131056) one message may get before it fails: ~22 minutes of backoff.
MAX_PAIR_THROTTLES = 8
_sender_cache: dict[int, SenderConfig] = {}
_thread = threading.local()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened; `retry_in` asks the caller to publish the message again after that many seconds."""

    status: str
    retry_in: float | None = None
    channel: str = "sms"


@dataclass(slots=True)
class Context:
    """What one send needs besides the message: shared clients and settings, the worker thread's autocommit
    connection for the message's own writes, and an ORM session opened on first use for rare paths
    (finishing a run, the error budget, conversation tags)."""

    client: httpx.Client
    r: redis.Redis
    limiter: lim.SenderLimiter
    settings: Settings
    _session: Session | None = None

    def conn(self) -> Connection:
        return thread_connection(self.settings.database_url)

    def session(self) -> Session:
        if self._session is None:
            self._session = Session(get_engine(self.settings.database_url), expire_on_commit=False)
        return self._session

    def end_reads(self) -> None:
        """Give back the session's connection (and end its transaction) before a wait or a provider call:
        a session left open would hold a pooled connection idle in a transaction for that long."""
        if self._session is not None:
            self._session.close()

    def close(self) -> None:
        self.end_reads()


def thread_connection(url: str) -> Connection:
    """This thread's autocommit connection, kept from one send to the next: a pool checkout and return per
    message cost about a third of the claim. The autocommit pool holds at least one per worker thread
    (`get_engine`), and `message_writes.run` reconnects one the server closed."""
    conns: dict[tuple[str, int], Connection] | None = getattr(_thread, "conns", None)
    if conns is None:
        conns = _thread.conns = {}
    key = (url, os.getpid())  # never a connection inherited across a fork
    conn = conns.get(key)
    if conn is not None and (conn.closed or conn.invalidated):
        # Dropped by a failed reconnect: an invalidated connection refuses statements until rolled back.
        conn.close()
        conn = None
    if conn is None:
        conn = conns[key] = get_engine(url, autocommit=True).connect()
    return conn


@dataclass(slots=True)
class SenderConfig:
    """A sender's provider, rate and settings, and its adapter built once per process (per entry)."""

    provider: str
    channel: str
    rate: float
    burst: int
    settings: dict[str, Any]
    expires: float
    _adapter: tuple[httpx.Client, Provider] | None = None

    def adapter(self, client: httpx.Client) -> Provider:
        """`provider_for` of this sender; raises what it raises (an unknown provider, a missing setting)."""
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
    ref = ref or _ref_of(ctx.session(), message_id)
    if ref is None:
        return Outcome("gone")
    _, sender_id, campaign_id, cost = ref
    config = sender_config(ctx, sender_id)
    # Read before the limiter grants a slot, so a granted slot never waits on the database.
    template, tags, trigger = campaign_content(ctx.settings.database_url, campaign_id)
    ctx.end_reads()
    gate = _wait_for_slot(ctx, sender_id, campaign_id, cost, config)
    if gate is not None:
        if gate.status == "cancelled":
            _skip(ctx, message_id)
        elif gate.status == "paused":
            writes.park(ctx.conn(), message_id)
        return gate
    msg = writes.claim(ctx.conn(), message_id, timedelta(seconds=ctx.settings.send_lease_seconds))
    if msg is None:
        return Outcome("not-claimed", channel=config.channel)
    if template is not None:
        template = TemplateCall(template.name, template.language, msg.params)
    started = time.monotonic()

    def final(
        status: str, code: str | None, text: str | None, provider_id: str | None = None, *, budget: bool = True
    ) -> Outcome:
        call = (config.channel, config.provider, time.monotonic() - started)
        return _final(ctx, msg, status, code, text, call=call, provider_id=provider_id, budget=budget)

    try:
        provider = config.adapter(ctx.client)
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
                # Throttling is never a permanent failure of the campaign: not counted by the error budget.
                text = f"gave up after {tries - 1} pair-rate refusals: {exc.text}"
                return final(MessageStatus.FAILED, exc.code, text, budget=False)
            pause = exc.retry_after or 4.0 ** min(tries - 1, 4)
        metrics.record_wait(ctx.r, sender_id, "throttled", pause)
        return _release(ctx, msg, exc, retry_in=pause + random.uniform(0, 0.5), attempt=False, channel=config.channel)
    except Permanent as exc:
        return final(MessageStatus.FAILED, exc.code, exc.text)
    except Ambiguous as exc:
        return final(MessageStatus.UNKNOWN, exc.code, exc.text)
    except ProviderError as exc:  # Transient
        if msg.attempts >= ctx.settings.max_send_attempts:
            # Counted by the error budget: a provider down for longer than the backoff would otherwise
            # burn the whole audience; pausing lets the user resume once it is back.
            return final(MessageStatus.FAILED, exc.code, f"gave up after {msg.attempts} attempts: {exc.text}")
        return _release(ctx, msg, exc, retry_in=backoff(msg.attempts), attempt=True, channel=config.channel)
    outcome = final(MessageStatus.SENT, None, None, result.provider_message_id)
    if tags:
        conversations.tag_after_send(ctx.session(), msg.account_id, sender_id, msg.contact_id, list(tags), trigger)
    return outcome


def _pair_throttles(r: redis.Redis, message_id: int) -> int:
    """Count this message's pair-rate refusals: a throttled call is not an attempt, so the attempt count
    cannot drive this backoff."""
    key = keys.message_pair_throttles(message_id)
    pipe = r.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 24 * 3600)
    return int(pipe.execute()[0])


def _wait_for_slot(ctx: Context, sender_id: int, campaign_id: int, cost: int, config: SenderConfig) -> Outcome | None:
    """None when this message may be sent now; otherwise what to do instead."""
    for _ in range(5):
        decision = ctx.limiter.acquire(sender_id, campaign_id, config.rate, config.burst, cost)
        if decision.code == lim.GO:
            return None
        if decision.code == lim.RESERVED:
            metrics.record_wait(ctx.r, sender_id, "reserved", decision.wait_seconds)
            time.sleep(decision.wait_seconds)  # our slot: sleeping keeps the rate exact
            # A pause or cancel during the sleep must still stop this send ("within a second").
            control = ctx.limiter.campaign_control(campaign_id)
            if control is None:
                return None
            return Outcome(control, channel=config.channel)
        if decision.code == lim.CAMPAIGN_CANCELLED:
            return Outcome("cancelled", channel=config.channel)
        if decision.code == lim.CAMPAIGN_PAUSED:
            return Outcome("paused", channel=config.channel)
        if decision.wait_seconds > ctx.limiter.max_wait_ms / 1000:
            break
        time.sleep(decision.wait_seconds)  # a short provider pause: wait it out, then ask again
    # A long wait: go back to the broker rather than hold a worker thread.
    metrics.record_wait(ctx.r, sender_id, "deferred", decision.wait_seconds)
    return Outcome("deferred", retry_in=decision.wait_seconds + random.uniform(0, 1.0), channel=config.channel)


def _ref_of(session: Session, message_id: int) -> SendRef | None:
    row = session.execute(
        select(Message.sender_id, Message.campaign_id, Message.segments).where(Message.id == message_id)
    ).first()
    return (message_id, row.sender_id, row.campaign_id, row.segments) if row else None


def _final(
    ctx: Context,
    msg: writes.Claimed,
    status: str,
    code: str | None,
    text: str | None,
    *,
    call: tuple[str, str, float | None],
    provider_id: str | None = None,
    budget: bool = True,
) -> Outcome:
    """`budget=False`: a failure that is not the campaign's (one recipient's pair rate) leaves the streak as is."""
    if writes.finish(ctx.conn(), msg.id, status, code, text, provider_id):
        if record_outcome(ctx, msg.run_id, msg.campaign_id, status, code, text, call, budget=budget) == 0:
            finish_run(ctx.session(), msg.run_id)
    return Outcome(status)


def _release(
    ctx: Context, msg: writes.Claimed, exc: ProviderError, *, retry_in: float, attempt: bool, channel: str
) -> Outcome:
    """Put the message back to `queued` so the republished task can claim it again."""
    lease = timedelta(seconds=retry_in + ctx.settings.send_lease_seconds)
    writes.release(ctx.conn(), msg.id, lease, exc.code, exc.text, attempt=attempt)
    return Outcome("throttled" if isinstance(exc, Throttled) else "retry", retry_in=retry_in, channel=channel)


def _skip(ctx: Context, message_id: int) -> None:
    """Cancelled: `cancel` skipped the queued rows, but a message released back to queued since then
    (a retry racing the cancel) is skipped here, so its run can finish."""
    run_id = writes.skip(ctx.conn(), message_id)
    if run_id is not None and stats.bump(ctx.r, run_id, "skipped")["pending"] == 0:
        finish_run(ctx.session(), run_id)


def warm(settings: Settings) -> None:
    """Open the pools' connections and compile the claim once, so the first sends pay for neither."""
    engine = get_engine(settings.database_url, autocommit=True)
    size = max(1, min(settings.worker_concurrency, getattr(engine.pool, "size", lambda: 1)()))
    with ExitStack() as stack:
        conns = [stack.enter_context(engine.connect()) for _ in range(size)]
        # Message 0 does not exist: the claim compiles and matches nothing.
        writes.claim(conns[0], 0, timedelta(seconds=settings.send_lease_seconds))
    with get_engine(settings.database_url).connect():
        pass
