"""The counters and the error budget's streak, on a real Redis: a batch is counted in one call and says which
runs are done; permanent failures extend the shared streak as each call ends, a success resets it, and a
failure that is not the campaign's fault (a pair-rate throttle given up on) leaves it alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import redis

from dispatcher import keys
from workers.sending.budget import ProviderCall, Recorded, Streaks, record_outcomes

CALL = ProviderCall("sms", "sandbox", 0.02)


def _failed(run_id: int, campaign_id: int, *, budget: bool = True) -> Recorded:
    return Recorded(run_id, campaign_id, "failed", "21610", "refused", CALL, budget=budget)


def test_a_batch_is_counted_in_one_call_and_tells_which_runs_are_done(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    done_run, open_run, campaign_id = 990_011, 990_012, 990_011
    r.hset(keys.run_stats(done_run), "total", 2)
    r.hset(keys.run_stats(open_run), "total", 5)
    try:
        finished = record_outcomes(
            r,
            [
                _failed(done_run, campaign_id),
                _failed(open_run, campaign_id),
                Recorded(done_run, campaign_id, "sent", None, None, CALL),
            ],
        )
        assert finished == [done_run]
        assert r.hgetall(keys.run_stats(done_run)) == {"total": "2", "failed": "1", "sent": "1"}
        assert r.hget(keys.metrics("messages"), "sms|sandbox|failed|21610") is not None
    finally:
        r.delete(keys.run_stats(done_run), keys.run_stats(open_run))


def test_the_streak_is_shared_as_each_call_ends_and_only_permanent_failures_extend_it(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    run_id, campaign_id = 990_001, 990_001
    ctx: Any = SimpleNamespace(r=r)
    streak = keys.campaign_failures(campaign_id)
    try:
        # Two batches side by side, each seeing the other's failures at once
        first, second = Streaks(r, 4, [campaign_id]), Streaks(r, 4, [campaign_id])
        first.note(ctx, campaign_id, _failed(run_id, campaign_id))
        second.note(ctx, campaign_id, _failed(run_id, campaign_id))
        assert r.get(streak) == "2"
        # Given up after pair-rate refusals: not the campaign's fault
        first.note(ctx, campaign_id, _failed(run_id, campaign_id, budget=False))
        assert r.get(streak) == "2"
        # A success resets it for everyone
        second.note(ctx, campaign_id, Recorded(run_id, campaign_id, "sent", None, None, CALL))
        assert r.get(streak) is None
        # A batch that starts later reads the streak where the others left it
        first.note(ctx, campaign_id, _failed(run_id, campaign_id))
        assert Streaks(r, 1, [campaign_id]).exhausted(campaign_id)
        assert not Streaks(r, 2, [campaign_id]).exhausted(campaign_id)
    finally:
        r.delete(streak)
