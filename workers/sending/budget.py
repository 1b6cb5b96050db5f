"""Recording a final outcome: counters, and the error budget that auto-pauses a failing campaign.

A run of consecutive permanent failures (a wrong sender, an expired token, a template problem) would
otherwise burn through a whole audience. After `error_budget` of them in a row, the campaign pauses
itself with the reason in its details; any success resets the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import redis
import structlog

from dispatcher import keys
from dispatcher.campaigns import control
from dispatcher.db.models import Campaign, CampaignStatus, MessageStatus
from dispatcher.errors import Conflict
from dispatcher.tracking import metrics
from workers.sending.context import Context

log = structlog.get_logger(__name__)

STREAK_TTL_SECONDS = 24 * 3600
# One call for a batch's outcomes. KEYS: metrics `messages`, metrics `latency`, then per outcome its run's
# counters and its campaign's failure streak. ARGV per outcome: outcome field, latency bucket field,
# latency sum field, latency, final status, streak (1 counts a permanent failure, 0 resets it, '-' leaves
# it: a failure that is not the campaign's fault). Last ARGV: the streak TTL. Outcomes are applied in
# order; returns {streak, pending} after each one. pending = total - sent - failed - skipped - unknown, at
# least 0 (`dispatcher.tracking.stats`), and 0 for counters Redis lost (no total): the caller then checks
# the database.
_RECORD = """
local ttl = ARGV[#ARGV]
local out = {}
for j = 0, (#ARGV - 1) / 6 - 1 do
  local a = 6 * j
  local run, streak_key = KEYS[3 + 2 * j], KEYS[4 + 2 * j]
  redis.call('HINCRBY', KEYS[1], ARGV[a + 1], 1)
  if ARGV[a + 2] ~= '' then
    redis.call('HINCRBY', KEYS[2], ARGV[a + 2], 1)
    redis.call('HINCRBYFLOAT', KEYS[2], ARGV[a + 3], ARGV[a + 4])
  end
  redis.call('HINCRBY', run, ARGV[a + 5], 1)
  local streak = 0
  if ARGV[a + 6] == '1' then
    streak = redis.call('INCR', streak_key)
    redis.call('EXPIRE', streak_key, ttl)
  elseif ARGV[a + 6] == '0' then
    redis.call('DEL', streak_key)
  end
  local c = redis.call('HMGET', run, 'total', 'sent', 'failed', 'skipped', 'unknown')
  local pending = tonumber(c[1] or '0')
  for i = 2, 5 do pending = pending - tonumber(c[i] or '0') end
  if pending < 0 then pending = 0 end
  out[#out + 1] = streak
  out[#out + 1] = pending
end
return out
"""


class ProviderCall(NamedTuple):
    """The provider call an outcome came from, for the metrics (no latency: no call was made)."""

    channel: str
    provider: str
    latency: float | None


class Recorded(NamedTuple):
    """One final outcome whose write won, to be counted."""

    run_id: int
    campaign_id: int
    status: str
    code: str | None
    text: str | None
    call: ProviderCall
    budget: bool = True  # False: a failure that is not the campaign's (a pair-rate throttle given up on)


class Tally(NamedTuple):
    """What a batch's counting found: runs with nothing pending any more (to be finished), and the
    campaigns the error budget paused."""

    finished_runs: list[int]
    paused_campaigns: list[int]


@lru_cache(maxsize=4)
def _script(r: redis.Redis) -> Any:
    # Registered once per client: the call is one EVALSHA (loaded again by redis-py if Redis restarted).
    return r.register_script(_RECORD)


def record_outcomes(ctx: Context, outcomes: Sequence[Recorded]) -> Tally:
    """Count the outcomes, the cluster-wide metrics of their provider calls and each campaign's consecutive
    permanent failures, in one round trip; then pause the campaigns that reached the error budget."""
    if not outcomes:
        return Tally([], [])
    keys_: list[str] = [keys.metrics("messages"), keys.metrics("latency")]
    args: list[Any] = []
    for o in outcomes:
        outcome_field, bucket_field, sum_field = metrics.send_fields(
            o.call.channel, o.call.provider, o.status, o.code, o.call.latency
        )
        keys_ += [keys.run_stats(o.run_id), keys.campaign_failures(o.campaign_id)]
        args += [outcome_field, bucket_field or "", sum_field or "", o.call.latency or 0, o.status, _streak_arg(o)]
    reply = _script(ctx.r)(keys=keys_, args=[*args, STREAK_TTL_SECONDS])
    pending: dict[int, int] = {}
    streaks: dict[int, tuple[int, Recorded]] = {}
    for k, o in enumerate(outcomes):
        streak, pending[o.run_id] = int(reply[2 * k]), int(reply[2 * k + 1])  # the last one per run counts
        if _counts_for_budget(o) and streak > streaks.get(o.campaign_id, (0, o))[0]:
            streaks[o.campaign_id] = (streak, o)
    limit = ctx.settings.error_budget
    # At or past the budget (not only equal): failures in flight when the budget was hit, or a streak
    # that kept growing while a pause lost a race, must still stop the campaign.
    paused = [
        campaign_id
        for campaign_id, (streak, last) in streaks.items()
        if limit and streak >= limit and _auto_pause(ctx, campaign_id, limit, last.code, last.text)
    ]
    return Tally([run_id for run_id, left in pending.items() if left == 0], paused)


def _counts_for_budget(o: Recorded) -> bool:
    return o.status == MessageStatus.FAILED and o.budget


def _streak_arg(o: Recorded) -> str:
    return _streak_step(o.status, o.budget)


def _streak_step(status: str, budget: bool) -> str:
    """What an outcome does to its campaign's streak: '1' extends it (a permanent failure), '0' resets it
    (anything that reached the provider otherwise), '-' leaves it (a failure that is not the campaign's)."""
    if status == MessageStatus.FAILED:
        return "1" if budget else "-"
    return "0"


class Streaks:
    """Each campaign's streak as one batch sees it: read once when its calls start, followed as they end.
    The counting call pauses a campaign only once the batch is over, so without this a batch would go on
    calling for a campaign that already reached the budget; with it, the budget is overshot at most by
    calls already in flight (of this batch, started together, and of batches running beside it)."""

    def __init__(self, r: redis.Redis, limit: int, campaign_ids: Sequence[int]) -> None:
        self.limit = limit
        self._paused: set[int] = set()
        ids = list(dict.fromkeys(campaign_ids))
        values: list[Any] = r.mget([keys.campaign_failures(c) for c in ids]) if limit and ids else []
        self._streak = {c: int(v or 0) for c, v in zip(ids, values, strict=False)}

    def exhausted(self, campaign_id: int) -> bool:
        return bool(self.limit) and self._streak.get(campaign_id, 0) >= self.limit

    def note(self, ctx: Context, campaign_id: int, final: Recorded) -> None:
        """Follow the streak; the call that spends the budget pauses the campaign at once, so the batches
        running beside this one see the pause in the limiter instead of sending on."""
        step = _streak_step(final.status, final.budget)
        if step == "1":
            self._streak[campaign_id] = self._streak.get(campaign_id, 0) + 1
        elif step == "0":
            self._streak[campaign_id] = 0
        if self.exhausted(campaign_id) and campaign_id not in self._paused:
            self._paused.add(campaign_id)
            _auto_pause(ctx, campaign_id, self.limit, final.code, final.text)


def _auto_pause(ctx: Context, campaign_id: int, budget: int, code: str | None, text: str | None) -> bool:
    session = ctx.session()
    campaign = session.get_one(Campaign, campaign_id, populate_existing=True)
    if campaign.status != CampaignStatus.PENDING:
        return False  # already paused (an earlier failure of the streak) or finished
    reason = f"auto-paused after {budget} consecutive permanent failures (last: {code}: {text})"
    try:
        control.pause(session, ctx.r, campaign, reason=reason)
    except Conflict:
        return False  # already paused or finished
    log.warning("campaign auto-paused", campaign_id=campaign_id, reason=reason)
    return True
