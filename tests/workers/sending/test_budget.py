"""The error budget's streak, on a real Redis: permanent failures extend it, a success resets it, and a
failure that is not the campaign's fault (one recipient's pair-rate throttle given up on) leaves it alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import redis

from dispatcher import keys
from workers.sending.budget import ProviderCall, record_outcome

CALL = ProviderCall("sms", "sandbox", 0.02)


def test_only_permanent_failures_count_toward_the_budget(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ctx: Any = SimpleNamespace(r=r, settings=SimpleNamespace(error_budget=1000))
    run_id, campaign_id = 990_001, 990_001
    r.hset(keys.run_stats(run_id), "total", 10)
    streak = keys.campaign_failures(campaign_id)

    def record(status: str, *, budget: bool = True) -> int:
        return record_outcome(ctx, run_id, campaign_id, status, "21610", "refused", CALL, budget=budget)

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
