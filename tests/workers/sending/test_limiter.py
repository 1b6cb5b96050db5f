"""The sender limiter's batch call on a real Redis: one round trip, the same decisions as one call per
message, and a batch never goes past rate + burst."""

from __future__ import annotations

import uuid

import redis

from dispatcher import keys
from dispatcher.campaigns.control import Control
from workers.sending import limiter as lim


def _ids() -> tuple[int, int]:
    n = uuid.uuid4().int % 10**8 + 10**9
    return n, n + 1


def test_a_batch_reserves_up_to_burst_then_spaced_slots_then_defers_the_rest(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    sender, campaign = _ids()
    limiter = lim.SenderLimiter(r, max_wait=1.0)
    try:
        # 10 msg/s, burst 5: five go now, the next ones are 100 ms apart up to the 1 s horizon, then deferred
        decisions = limiter.acquire_batch(sender, 10, 5, [(campaign, 1)] * 20)
        codes = [d.code for d in decisions]
        assert codes[:5] == [lim.GO] * 5
        assert codes[5:15] == [lim.RESERVED] * 10
        assert codes[15:] == [lim.TOO_FAR] * 5
        waits = [d.wait_seconds for d in decisions]
        assert all(0.05 <= waits[i + 1] - waits[i] <= 0.15 for i in range(5, 19))
        # Deferred ones come back spread out, after the reserved slots
        assert waits[15] > waits[14]
        # The reserved slots are taken for everyone: a single call now waits behind them
        assert limiter.acquire(sender, campaign, 10, 5).code == lim.TOO_FAR
    finally:
        r.delete(keys.sender_limiter(sender))


def test_pauses_and_cancels_are_per_campaign_and_a_sender_pause_stops_all(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    sender, paused = _ids()
    cancelled, open_campaign = paused + 10, paused + 11
    limiter = lim.SenderLimiter(r)
    r.set(keys.campaign_control(paused), Control.PAUSED)
    r.set(keys.campaign_control(cancelled), Control.CANCELLED)
    try:
        asks = [(paused, 1), (open_campaign, 2), (cancelled, 1), (open_campaign, 1)]
        codes = [d.code for d in limiter.acquire_batch(sender, 100, 10, asks)]
        assert codes == [lim.CAMPAIGN_PAUSED, lim.GO, lim.CAMPAIGN_CANCELLED, lim.GO]
        limiter.pause_sender(sender, 5)
        decisions = limiter.acquire_batch(sender, 100, 10, [(open_campaign, 1)])
        assert decisions[0].code == lim.SENDER_PAUSED and 4 < decisions[0].wait_seconds <= 5
    finally:
        r.delete(*(keys.campaign_control(c) for c in (paused, cancelled)), keys.sender_limiter(sender))
        r.delete(keys.sender_pause(sender))
