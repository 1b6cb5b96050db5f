"""Recording a final outcome: counters, and the error budget that auto-pauses a failing campaign.

A run of consecutive permanent failures (a wrong sender, an expired token, a template problem) would
otherwise burn through a whole audience. After `error_budget` of them in a row, the campaign pauses
itself with the reason in its details; any success resets the count.
"""

from __future__ import annotations

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
# KEYS: metrics `messages`, metrics `latency`, the run's counters, the campaign's failure streak.
# ARGV: outcome field, latency bucket field, latency sum field, latency, final status, streak (1 counts a
# permanent failure, 0 resets it, '-' leaves it: a failure that is not the campaign's fault),
# streak TTL. Returns {streak, pending}; pending = total - sent - failed - skipped - unknown, at least 0
# (`dispatcher.tracking.stats`), and 0 for counters Redis lost (no total), so the caller checks the database.
_RECORD = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[3], ARGV[4])
end
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
local streak = 0
if ARGV[6] == '1' then
  streak = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[7])
elseif ARGV[6] == '0' then
  redis.call('DEL', KEYS[4])
end
local c = redis.call('HMGET', KEYS[3], 'total', 'sent', 'failed', 'skipped', 'unknown')
local pending = tonumber(c[1] or '0')
for i = 2, 5 do pending = pending - tonumber(c[i] or '0') end
if pending < 0 then pending = 0 end
return {streak, pending}
"""


class ProviderCall(NamedTuple):
    """The provider call an outcome came from, for the metrics (no latency: no call was made)."""

    channel: str
    provider: str
    latency: float | None


@lru_cache(maxsize=4)
def _script(r: redis.Redis) -> Any:
    # Registered once per client: the call is one EVALSHA (loaded again by redis-py if Redis restarted).
    return r.register_script(_RECORD)


def record_outcome(
    ctx: Context,
    run_id: int,
    campaign_id: int,
    status: str,
    code: str | None,
    text: str | None,
    call: ProviderCall,
    *,
    budget: bool = True,
) -> int:
    """Count the outcome, the cluster-wide metrics of the provider call and consecutive permanent failures,
    in one round trip; returns the run's pending count. A failure with `budget=False` (a pair-rate
    throttle given up on) neither extends nor resets the streak."""
    outcome_field, bucket_field, sum_field = metrics.send_fields(
        call.channel, call.provider, status, code, call.latency
    )
    failed = status == MessageStatus.FAILED and budget
    streak_arg = "1" if failed else ("-" if status == MessageStatus.FAILED else "0")
    streak, pending = _script(ctx.r)(
        keys=[
            keys.metrics("messages"),
            keys.metrics("latency"),
            keys.run_stats(run_id),
            keys.campaign_failures(campaign_id),
        ],
        args=[
            outcome_field,
            bucket_field or "",
            sum_field or "",
            call.latency or 0,
            status,
            streak_arg,
            STREAK_TTL_SECONDS,
        ],
    )
    limit = ctx.settings.error_budget
    # At or past the budget (not only equal): failures in flight when the budget was hit, or a streak
    # that kept growing while a pause lost a race, must still stop the campaign.
    if failed and limit and int(streak) >= limit:
        _auto_pause(ctx, campaign_id, limit, code, text)
    return int(pending)


def _auto_pause(ctx: Context, campaign_id: int, budget: int, code: str | None, text: str | None) -> None:
    session = ctx.session()
    campaign = session.get_one(Campaign, campaign_id, populate_existing=True)
    if campaign.status != CampaignStatus.PENDING:
        return  # already paused (an earlier failure of the streak) or finished
    reason = f"auto-paused after {budget} consecutive permanent failures (last: {code}: {text})"
    try:
        control.pause(session, ctx.r, campaign, reason=reason)
    except Conflict:
        return  # already paused or finished
    log.warning("campaign auto-paused", campaign_id=campaign_id, reason=reason)
