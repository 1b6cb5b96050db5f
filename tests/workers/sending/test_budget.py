"""The error budget's streak, on a real Redis: permanent failures extend it, a success resets it, and a
failure that is not the campaign's fault (one recipient's pair-rate throttle given up on) leaves it alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import redis

from dispatcher import keys
from workers.sending.budget import ProviderCall, Recorded, record_outcomes

CALL = ProviderCall("sms", "sandbox", 0.02)


def test_only_permanent_failures_count_toward_the_budget(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ctx: Any = SimpleNamespace(r=r, settings=SimpleNamespace(error_budget=1000))
    run_id, campaign_id = 990_001, 990_001
    r.hset(keys.run_stats(run_id), "total", 10)
    streak = keys.campaign_failures(campaign_id)

    def record(status: str, *, budget: bool = True) -> int:
        outcome = Recorded(run_id, campaign_id, status, "21610", "refused", CALL, budget=budget)
        record_outcomes(ctx, [outcome])
        return 10 - sum(int(v) for k, v in r.hgetall(keys.run_stats(run_id)).items() if k != "total")

    record("failed")
    record("failed")
    assert r.get(streak) == "2"
    # Given up after pair-rate refusals: counted as failed, not as the campaign's fault
    assert record("failed", budget=False) == 10 - 3
    assert r.get(streak) == "2"
    assert r.hget(keys.run_stats(run_id), "failed") == "3"
    record("sent")
    assert r.get(streak) is None
    r.delete(keys.run_stats(run_id), streak)


def test_a_batch_is_counted_in_one_call_in_order_and_tells_which_runs_are_done(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ctx: Any = SimpleNamespace(r=r, settings=SimpleNamespace(error_budget=1000))
    done_run, open_run, campaign_id = 990_011, 990_012, 990_011
    r.hset(keys.run_stats(done_run), "total", 2)
    r.hset(keys.run_stats(open_run), "total", 5)
    streak = keys.campaign_failures(campaign_id)
    try:
        tally = record_outcomes(
            ctx,
            [
                Recorded(done_run, campaign_id, "failed", "21211", "invalid number", CALL),
                Recorded(open_run, campaign_id, "failed", "21211", "invalid number", CALL),
                Recorded(done_run, campaign_id, "sent", None, None, CALL),
                Recorded(open_run, campaign_id, "failed", "21211", "invalid number", CALL),
            ],
        )
        assert tally.finished_runs == [done_run] and tally.paused_campaigns == []
        # In order: two failures, a success (reset), a failure
        assert r.get(streak) == "1"
        assert r.hgetall(keys.run_stats(done_run)) == {"total": "2", "failed": "1", "sent": "1"}
        assert r.hget(keys.metrics("messages"), "sms|sandbox|failed|21211") is not None
    finally:
        r.delete(keys.run_stats(done_run), keys.run_stats(open_run), streak)
