"""Recording a final outcome: counters, and the error budget that auto-pauses a failing campaign.

A run of consecutive permanent failures (a wrong sender, an expired token, a template problem) would
otherwise burn through a whole audience. After `error_budget` of them in a row, the campaign pauses
itself with the reason in its details; any success resets the count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from dispatcher import control, keys, metrics, stats
from dispatcher.db.models import Campaign, CampaignStatus, MessageStatus
from dispatcher.errors import Conflict

if TYPE_CHECKING:
    from workers.sending import Context

log = structlog.get_logger(__name__)


def record_outcome(
    ctx: Context,
    run_id: int,
    campaign_id: int,
    status: str,
    code: str | None,
    text: str | None,
    call: tuple[str, str, float | None],
) -> dict[str, int]:
    """Count the outcome, the cluster-wide metrics of the provider call (`call` = channel, provider, latency)
    and consecutive permanent failures, in one round trip; returns the run's counts."""
    pipe = ctx.r.pipeline(transaction=True)
    metrics.record_send(pipe, call[0], call[1], status, code, call[2])
    pipe.hincrby(keys.run_stats(run_id), status, 1)
    streak_key = keys.campaign_failures(campaign_id)
    if status == MessageStatus.FAILED:
        pipe.incr(streak_key)
        pipe.expire(streak_key, 24 * 3600)
    else:
        pipe.delete(streak_key)
    pipe.hgetall(keys.run_stats(run_id))
    results = pipe.execute()
    budget = ctx.settings.error_budget
    streak = results[-3] if status == MessageStatus.FAILED else 0
    # At or past the budget (not only equal): failures in flight when the budget was hit, or a streak
    # that kept growing while a pause lost a race, must still stop the campaign.
    if status == MessageStatus.FAILED and budget and int(streak) >= budget:
        _auto_pause(ctx, campaign_id, budget, code, text)
    return stats.as_counts(results[-1])


def _auto_pause(ctx: Context, campaign_id: int, budget: int, code: str | None, text: str | None) -> None:
    campaign = ctx.session.get_one(Campaign, campaign_id, populate_existing=True)
    if campaign.status != CampaignStatus.PENDING:
        return  # already paused (an earlier failure of the streak) or finished
    reason = f"auto-paused after {budget} consecutive permanent failures (last: {code}: {text})"
    try:
        control.pause(ctx.session, campaign, reason=reason)
    except Conflict:
        return  # already paused or finished
    log.warning("campaign auto-paused", campaign_id=campaign_id, reason=reason)
