"""One rate limit per sender, shared by every worker process and host: GCRA in one Lua script.

Celery's own `rate_limit` is per worker and is not used. Each send asks the script once, with Redis
time (so worker clocks do not matter), and in the same round trip the script checks the sender's
throttle pause and the campaign's pause/cancel flag.

GCRA with reservation: the theoretical arrival time (TAT) moves by `cost / rate` seconds per message
(cost = SMS segments); a message may go when TAT - burst/rate <= now. A caller that would wait at most
`max_wait` seconds reserves its slot (TAT moves) and sleeps; a caller that would wait longer reserves
nothing and is republished with a countdown. So a sender's backlog stays in the broker, and worker
threads only ever sleep for slots they own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from dispatcher import keys
from dispatcher.campaigns import control
from dispatcher.campaigns.control import Control

# Returns {code, milliseconds}: 0 go now, 1 reserved (sleep ms then go), 2 too far (retry in ms, nothing
# reserved), 3 sender paused by the provider (ms left), 4 campaign paused, 5 campaign cancelled.
# ARGV[5], ARGV[6]: the flag's cancelled and paused values (`control.Control`).
_SCRIPT = """
local control = redis.call('GET', KEYS[3])
if control == ARGV[5] then return {5, 0} end
if control == ARGV[6] then return {4, 0} end
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {3, pause} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local cost = interval * tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + cost
local wait = new_tat - tolerance - now
if wait > max_wait then return {2, math.ceil(wait)} end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
if wait <= 0 then return {0, 0} end
return {1, math.ceil(wait)}
"""

# Only ever lengthens a pause: a short Retry-After must not cut a longer one another worker set.
_PAUSE_SCRIPT = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) return 1 end
return 0
"""

GO, RESERVED, TOO_FAR, SENDER_PAUSED, CAMPAIGN_PAUSED, CAMPAIGN_CANCELLED = range(6)


@dataclass(frozen=True, slots=True)
class Decision:
    code: int
    wait_seconds: float = 0.0


class SenderLimiter:
    """Acquire a sending slot for one message of a sender and campaign."""

    def __init__(self, client: redis.Redis, max_wait: float = 2.0) -> None:
        self.client = client
        self.max_wait_ms = int(max_wait * 1000)
        self._acquire: Any = client.register_script(_SCRIPT)
        self._pause: Any = client.register_script(_PAUSE_SCRIPT)

    def acquire(self, sender_id: int, campaign_id: int, rate: float, burst: int, cost: int = 1) -> Decision:
        interval_ms = 1000.0 / rate
        code, ms = self._acquire(
            keys=[keys.sender_limiter(sender_id), keys.sender_pause(sender_id), keys.campaign_control(campaign_id)],
            args=[interval_ms, max(1, burst), max(1, cost), self.max_wait_ms, Control.CANCELLED, Control.PAUSED],
        )
        return Decision(int(code), int(ms) / 1000.0)

    def pause_sender(self, sender_id: int, seconds: float) -> bool:
        """Stop every worker from sending for this sender for `seconds` (the provider said so)."""
        return bool(self._pause(keys=[keys.sender_pause(sender_id)], args=[max(1, int(seconds * 1000))]))

    def campaign_control(self, campaign_id: int) -> Control | None:
        return control.flag(self.client, campaign_id)
