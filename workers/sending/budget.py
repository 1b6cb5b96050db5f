"""Recording final outcomes: counters, and the error budget that auto-pauses a failing campaign.

A run of consecutive permanent failures (a wrong sender, an expired token, a template problem) would
otherwise burn through a whole audience. After `error_budget` of them in a row, the campaign pauses
itself with the reason in its details; any success resets the count. The streak is kept in Redis as
each call ends (`Streaks`), not when its batch is counted: batches run side by side, and each must see
the others' failures at once, or every one of them would spend a whole budget of its own.
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
# One call for a batch's outcomes. KEYS: metrics `messages`, metrics `latency`, then each outcome's run
# counters. ARGV per outcome: outcome field, latency bucket field, latency sum field, latency, final
# status. Returns each outcome's run's pending count after it: total - sent - failed - skipped - unknown,
# at least 0 (`dispatcher.tracking.stats`), and 0 for counters Redis lost (no total): the caller then
# checks the database.
_RECORD = """
local out = {}
for j = 0, #ARGV / 5 - 1 do
  local a = 5 * j
  local run = KEYS[3 + j]
  redis.call('HINCRBY', KEYS[1], ARGV[a + 1], 1)
  if ARGV[a + 2] ~= '' then
    redis.call('HINCRBY', KEYS[2], ARGV[a + 2], 1)
    redis.call('HINCRBYFLOAT', KEYS[2], ARGV[a + 3], ARGV[a + 4])
  end
  redis.call('HINCRBY', run, ARGV[a + 5], 1)
  local c = redis.call('HMGET', run, 'total', 'sent', 'failed', 'skipped', 'unknown')
  local pending = tonumber(c[1] or '0')
  for i = 2, 5 do pending = pending - tonumber(c[i] or '0') end
  if pending < 0 then pending = 0 end
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


@lru_cache(maxsize=4)
def _script(r: redis.Redis) -> Any:
    # Registered once per client: the call is one EVALSHA (loaded again by redis-py if Redis restarted).
    return r.register_script(_RECORD)


def record_outcomes(r: redis.Redis, outcomes: Sequence[Recorded]) -> list[int]:
    """Count the outcomes and the cluster-wide metrics of their provider calls in one round trip; returns
    the runs that have nothing pending any more (to be finished, if their rows are all written)."""
    if not outcomes:
        return []
    keys_: list[str] = [keys.metrics("messages"), keys.metrics("latency")]
    args: list[Any] = []
    for o in outcomes:
        outcome_field, bucket_field, sum_field = metrics.send_fields(
            o.call.channel, o.call.provider, o.status, o.code, o.call.latency
        )
        keys_.append(keys.run_stats(o.run_id))
        args += [outcome_field, bucket_field or "", sum_field or "", o.call.latency or 0, o.status]
    pending: dict[int, int] = {}
    for o, left in zip(outcomes, _script(r)(keys=keys_, args=args), strict=True):
        pending[o.run_id] = int(left)  # the last one per run counts
    return [run_id for run_id, left in pending.items() if left == 0]


class Streaks:
    """Each campaign's run of consecutive permanent failures, shared by every worker in Redis and updated as
    each call ends: a permanent failure extends it (INCR), anything else that reached the provider resets
    it, a failure that is not the campaign's fault (a pair-rate throttle given up on) leaves it. The call
    that spends the budget pauses the campaign at once, and the calls still to come see it spent, so the
    budget is overshot only by calls already in flight."""

    def __init__(self, r: redis.Redis, limit: int, campaign_ids: Sequence[int]) -> None:
        self.limit = limit
        self._r = r
        ids = list(dict.fromkeys(campaign_ids))
        values: list[Any] = r.mget([keys.campaign_failures(c) for c in ids]) if limit and ids else []
        self._streak = {c: int(v or 0) for c, v in zip(ids, values, strict=False)}
        self._paused: set[int] = set()

    def exhausted(self, campaign_id: int) -> bool:
        return bool(self.limit) and self._streak.get(campaign_id, 0) >= self.limit

    def note(self, ctx: Context, campaign_id: int, final: Recorded) -> None:
        if not self.limit:
            return
        key = keys.campaign_failures(campaign_id)
        if final.status == MessageStatus.FAILED and final.budget:
            pipe = self._r.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, STREAK_TTL_SECONDS)
            self._streak[campaign_id] = int(pipe.execute()[0])
        elif final.status != MessageStatus.FAILED and self._streak.get(campaign_id, 0) > 0:
            # Only when this batch saw a streak: a reset per success would be a round trip per message.
            self._r.delete(key)
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
