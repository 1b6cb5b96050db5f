"""Send a batch of messages: slots from each sender's limiter, one claim, the provider calls side by side
on one event loop, one final write, one counting call.

Exactly-once rests on the claim: `queued -> sending` is one conditional UPDATE for the batch that returns
the rows it won, so a duplicated or redelivered message finds nothing to claim and is never sent. Counters
change only for the rows the final `sending -> <final>` update won, so nothing counts twice. The caller
acks the batch's messages only after `send_batch` returns, that is after the final write committed.

A single message (the per-message `dispatcher.send_message` task) is a batch of one: there is one path.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import httpx
import redis
import structlog
from sqlalchemy import select
from sqlalchemy.exc import NoResultFound

from dispatcher import keys
from dispatcher.audience import conversations
from dispatcher.audience.senders import sandbox_phone_number_id
from dispatcher.campaigns import control, leases
from dispatcher.campaigns.completion import finish_run
from dispatcher.campaigns.control import Control
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
from workers.providers.registry import ProviderConfigError, provider_for
from workers.sending import limiter as lim
from workers.sending import writes
from workers.sending.budget import ProviderCall, Recorded, Streaks, record_outcomes
from workers.sending.context import Context

log = structlog.get_logger(__name__)

SENDER_CACHE_SECONDS = 30.0
# Pair-rate refusals (WhatsApp 131056) one message may get before it fails: ~22 minutes of backoff.
MAX_PAIR_THROTTLES = 8
# A campaign's pause/cancel flag, read again after a reserved slot's sleep, is trusted this long.
FLAG_FRESH_SECONDS = 0.02
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
    """A sender's provider, rate and settings, and its adapter built once per HTTP client."""

    id: int
    provider: str
    channel: str
    rate: float
    burst: int
    settings: dict[str, Any]
    expires: float
    _adapters: dict[int, Provider] = field(default_factory=dict)

    def adapter(self, client: httpx.AsyncClient) -> Provider:
        """`provider_for` of this sender; raises `ProviderConfigError` as it does. Each worker thread has
        its own client (one per event loop), hence one adapter per client."""
        adapter = self._adapters.get(id(client))
        if adapter is None:
            adapter = self._adapters[id(client)] = provider_for(self.provider, self.channel, client, self.settings)
        return adapter


@dataclass(slots=True)
class Job:
    """One message of a batch, from its slot to its settlement."""

    ref: SendRef
    config: SenderConfig
    content: CampaignContent | None = None  # read once claimed, from the claimed row's campaign
    decision: lim.Decision = lim.Decision(lim.GO)
    msg: writes.Claimed | None = None
    final: writes.Final | None = None
    release: writes.Release | None = None
    call: ProviderCall | None = None
    budget: bool = True
    verdict: Verdict | None = None
    retry_in: float | None = None

    def settle(self, verdict: Verdict, code: str | None = None, text: str | None = None, **kw: Any) -> None:
        """A final status (sent, failed, unknown) for the batch's final write."""
        assert self.msg is not None
        self.verdict, self.final = verdict, writes.Final(self.msg.id, verdict, code, text, kw.get("provider_id"))
        self.budget = kw.get("budget", True)

    def put_back(self, verdict: Verdict, retry_in: float, lease: float, exc: ProviderError | None = None) -> None:
        """Back to `queued` (a throttle or a retry), to be published again in `retry_in` seconds."""
        assert self.msg is not None
        attempt = verdict == Verdict.RETRY
        code, text = (exc.code, exc.text) if exc is not None else (None, None)
        self.release = writes.Release(self.msg.id, leases.retry(retry_in, lease), code, text, attempt)
        self.verdict, self.retry_in = verdict, retry_in

    def park(self) -> None:
        """Claimed, but its campaign is paused: back to `queued` until the resume (not an attempt)."""
        assert self.msg is not None
        self.release = writes.Release(self.msg.id, leases.PARKED, None, None, attempt=False)
        self.verdict = Verdict.PAUSED

    @property
    def outcome(self) -> Outcome:
        assert self.verdict is not None
        return Outcome(self.verdict, self.config.channel, self.retry_in)


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
        sender.id,
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


def send_batch(ctx: Context, refs: Sequence[SendRef]) -> list[Outcome]:
    """Send what can be sent now of `refs`; one outcome per ref, in order. Every write has committed when
    this returns, so the caller may ack; outcomes with `retry_in` are for the caller to publish again."""
    jobs = [Job(ref, config) for ref in _complete(ctx, refs).values() if (config := _config(ctx, ref)) is not None]
    # Read before the limiter grants slots, so a granted slot never waits on the database.
    ctx.end_reads()
    _gate(ctx, jobs)
    _claim(ctx, [job for job in jobs if job.verdict is None])
    calls = [job for job in jobs if job.msg is not None]
    if calls:
        ctx.run(_call_all(ctx, calls))
    _settle(ctx, jobs)
    by_id = {job.ref.message_id: job.outcome for job in jobs}
    return [by_id.get(ref.message_id, Outcome(Verdict.GONE, "")) for ref in refs]


def _complete(ctx: Context, refs: Sequence[SendRef]) -> dict[int, SendRef]:
    """The batch's refs by message id; a task that carried only the message id (an old one) is looked up."""
    found = {ref.message_id: ref for ref in refs if ref.sender_id and ref.campaign_id}
    bare = [ref.message_id for ref in refs if ref.message_id not in found]
    if bare:
        rows = ctx.session().execute(
            select(Message.id, Message.sender_id, Message.campaign_id, Message.segments).where(Message.id.in_(bare))
        )
        found.update({row.id: SendRef(row.id, row.sender_id, row.campaign_id, row.segments) for row in rows})
    return found


def _config(ctx: Context, ref: SendRef) -> SenderConfig | None:
    """The sender of a ref; None (the message is gone) for a sender that no longer exists."""
    try:
        return sender_config(ctx, ref.sender_id)
    except NoResultFound:
        return None


def _gate(ctx: Context, jobs: list[Job]) -> None:
    """One limiter call per sender: slots for those that may go, and what to do with the others."""
    by_sender: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        by_sender[job.ref.sender_id].append(job)
    paused: list[Job] = []
    cancelled: list[Job] = []
    for sender_id, group in by_sender.items():
        config = group[0].config
        asks = [(job.ref.campaign_id, job.ref.cost) for job in group]
        decisions = ctx.limiter.acquire_batch(sender_id, config.rate, config.burst, asks)
        waits: dict[str, list[float]] = defaultdict(list)
        for job, decision in zip(group, decisions, strict=True):
            job.decision = decision
            if decision.code == lim.CAMPAIGN_PAUSED:
                paused.append(job)
            elif decision.code == lim.CAMPAIGN_CANCELLED:
                cancelled.append(job)
            elif decision.code in (lim.TOO_FAR, lim.SENDER_PAUSED):
                # Too long to hold a batch for: back to the broker with a countdown.
                job.verdict, job.retry_in = Verdict.DEFERRED, _deferral(ctx, decision)
                waits["deferred"].append(decision.wait_seconds)
            elif decision.code == lim.RESERVED:
                waits["reserved"].append(decision.wait_seconds)
        for kind, seconds in waits.items():
            metrics.record_wait(ctx.r, sender_id, kind, sum(seconds), len(seconds))
    if paused:
        writes.park(ctx.conn(), [job.ref.message_id for job in paused])
        for job in paused:
            job.verdict = Verdict.PAUSED
    _skip_cancelled(ctx, cancelled, claimed=False)


def _deferral(ctx: Context, decision: lim.Decision) -> float:
    """When a deferred message comes back. For its slot, half the limiter's horizon early: it can reserve
    that far ahead, so it is there when its slot comes and the sender's rate has no gaps. For a provider's
    pause, after it, spread over a second."""
    if decision.code == lim.TOO_FAR:
        early = ctx.limiter.max_wait_ms / 2000
        return max(0.0, decision.wait_seconds - early) + random.uniform(0, 0.1)
    return decision.wait_seconds + random.uniform(0, 1.0)


def _skip_cancelled(ctx: Context, jobs: list[Job], *, claimed: bool) -> None:
    """Cancelled: `cancel` skipped the queued rows, but a message released back to queued since then (a
    retry racing the cancel), or claimed by this batch, is skipped here with the campaign's reason, so
    its run can finish."""
    by_campaign: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        job.verdict = Verdict.CANCELLED
        by_campaign[job.ref.campaign_id].append(job)
    for campaign_id, group in by_campaign.items():
        campaign = ctx.session().get(Campaign, campaign_id)
        reason = (campaign.status_reason if campaign is not None else None) or "cancelled"
        runs = writes.skip(ctx.conn(), [job.ref.message_id for job in group], reason, claimed=claimed)
        for run_id in set(runs):
            if stats.bump(ctx.r, run_id, "skipped", runs.count(run_id))["pending"] == 0:
                finish_run(ctx.session(), ctx.r, run_id)


def _claim(ctx: Context, jobs: list[Job]) -> None:
    won = writes.claim(ctx.conn(), [job.ref.message_id for job in jobs], leases.send(ctx.settings.send_lease_seconds))
    for job in jobs:
        job.msg = won.get(job.ref.message_id)
        if job.msg is None:
            job.verdict = Verdict.NOT_CLAIMED
        else:
            job.content = campaign_content(ctx.settings.database_url, job.msg.campaign_id)


async def _call_all(ctx: Context, jobs: list[Job]) -> None:
    flags = _Flags(ctx.r)
    streaks = Streaks(ctx.r, ctx.settings.error_budget, [job.ref.campaign_id for job in jobs])
    await asyncio.gather(*(_call(ctx, job, flags, streaks) for job in jobs))


async def _call(ctx: Context, job: Job, flags: _Flags, streaks: Streaks) -> None:
    """One provider call; never raises: every end is recorded on the job for the batch's writes."""
    assert job.msg is not None
    campaign_id = job.ref.campaign_id
    if job.decision.code == lim.RESERVED:
        await asyncio.sleep(job.decision.wait_seconds)  # our slot: sleeping keeps the rate exact
        # A pause or cancel during the sleep must still stop this send ("within a second").
        flag = flags.get(campaign_id)
        if flag is not None:
            if flag == Control.PAUSED:
                job.park()
            else:
                job.verdict = Verdict.CANCELLED  # skipped with the batch's writes
            return
    if streaks.exhausted(campaign_id):
        # The error budget is spent: the counting call pauses the campaign; this one waits for the resume.
        job.park()
        return
    await _send(ctx, job)
    if job.final is not None:
        streaks.note(ctx, campaign_id, _recorded(job))


async def _send(ctx: Context, job: Job) -> None:
    assert job.msg is not None
    config, msg = job.config, job.msg
    assert job.content is not None
    template = job.content.template
    if template is not None:
        template = TemplateCall(template.name, template.language, msg.params)
    started = time.monotonic()
    try:
        provider = config.adapter(ctx.client)
        result = await provider.send(Outbound(message_id=msg.id, to=msg.phone, body=msg.body, template=template))
    except ProviderConfigError as exc:
        job.settle(Verdict.FAILED, "config", str(exc))
    except ProviderError as exc:
        _classify(ctx, job, exc)
    except Exception as exc:  # a bug, not the provider: never re-sent blindly, and never lost in a log
        log.exception("send failed unexpectedly", message_id=msg.id)
        job.settle(Verdict.UNKNOWN, "internal", f"{type(exc).__name__}: {exc}")
    else:
        job.settle(Verdict.SENT, provider_id=result.provider_message_id)
    job.call = ProviderCall(config.channel, config.provider, time.monotonic() - started)


def _classify(ctx: Context, job: Job, exc: ProviderError) -> None:
    """What the error taxonomy (`workers.providers.base`) says to do with this message."""
    assert job.msg is not None
    lease = ctx.settings.send_lease_seconds
    if isinstance(exc, Throttled):
        sender_id = job.ref.sender_id
        if exc.sender_wide:
            pause = exc.retry_after or 1.0
            ctx.limiter.pause_sender(sender_id, pause)
            log.warning("sender throttled by provider; paused", sender_id=sender_id, seconds=pause, code=exc.code)
        else:  # one recipient over its pair rate: only this message waits (1, 4, 16, 64, 256 s)
            tries = _pair_throttles(ctx.r, job.msg.id)
            if tries > MAX_PAIR_THROTTLES:
                # Throttling is never a permanent failure of the campaign: not counted by the error budget.
                text = f"gave up after {tries - 1} pair-rate refusals: {exc.text}"
                job.settle(Verdict.FAILED, exc.code, text, budget=False)
                return
            pause = exc.retry_after or 4.0 ** min(tries - 1, 4)
        metrics.record_wait(ctx.r, sender_id, "throttled", pause)
        job.put_back(Verdict.THROTTLED, pause + random.uniform(0, 0.5), lease, exc)
    elif isinstance(exc, Permanent):
        job.settle(Verdict.FAILED, exc.code, exc.text)
    elif isinstance(exc, Ambiguous):
        job.settle(Verdict.UNKNOWN, exc.code, exc.text)
    elif job.msg.attempts >= ctx.settings.max_send_attempts:  # Transient, and no attempt left
        # Counted by the error budget: a provider down for longer than the backoff would otherwise
        # burn the whole audience; pausing lets the user resume once it is back.
        job.settle(Verdict.FAILED, exc.code, f"gave up after {job.msg.attempts} attempts: {exc.text}")
    else:
        job.put_back(Verdict.RETRY, backoff(job.msg.attempts), lease, exc)


def _pair_throttles(r: redis.Redis, message_id: int) -> int:
    """Count this message's pair-rate refusals: a throttled call is not an attempt, so the attempt count
    cannot drive this backoff."""
    key = keys.message_pair_throttles(message_id)
    pipe = r.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 24 * 3600)
    return int(pipe.execute()[0])


class _Flags:
    """Campaigns' pause/cancel flags, read at most every FLAG_FRESH_SECONDS during one batch."""

    def __init__(self, r: redis.Redis) -> None:
        self._r = r
        self._seen: dict[int, tuple[float, Control | None]] = {}

    def get(self, campaign_id: int) -> Control | None:
        hit = self._seen.get(campaign_id)
        now = time.monotonic()
        if hit is None or now - hit[0] > FLAG_FRESH_SECONDS:
            hit = self._seen[campaign_id] = (now, control.flag(self._r, campaign_id))
        return hit[1]


def _settle(ctx: Context, jobs: list[Job]) -> None:
    """The batch's writes, then its counting: only the rows whose final write won are counted."""
    conn = ctx.conn()
    won = writes.finish(conn, [job.final for job in jobs if job.final is not None])
    writes.release(conn, [job.release for job in jobs if job.release is not None])
    _skip_cancelled(ctx, [j for j in jobs if j.verdict == Verdict.CANCELLED and j.msg is not None], claimed=True)
    counted = [job for job in jobs if job.final is not None and job.final.message_id in won]
    for run_id in record_outcomes(ctx.r, [_recorded(job) for job in counted]):
        finish_run(ctx.session(), ctx.r, run_id)
    for job in counted:
        if job.verdict == Verdict.SENT and job.content is not None and job.content.tags:
            assert job.msg is not None
            tags, trigger = list(job.content.tags), job.content.trigger
            conversations.tag_after_send(
                ctx.session(), job.msg.account_id, job.ref.sender_id, job.msg.contact_id, tags, trigger
            )


def _recorded(job: Job) -> Recorded:
    assert job.msg is not None and job.final is not None and job.call is not None
    final = job.final
    return Recorded(job.msg.run_id, job.msg.campaign_id, final.status, final.code, final.text, job.call, job.budget)


def warm(settings: Settings) -> None:
    """Open the pools' connections and compile the claim once, so the first sends pay for neither."""
    engine = get_engine(settings.database_url, autocommit=True)
    size = max(1, min(settings.worker_concurrency, getattr(engine.pool, "size", lambda: 1)()))
    with ExitStack() as stack:
        conns = [stack.enter_context(engine.connect()) for _ in range(size)]
        # Message 0 does not exist: the claim compiles and matches nothing.
        writes.claim(conns[0], [0], leases.send(settings.send_lease_seconds))
    with get_engine(settings.database_url).connect():
        pass
