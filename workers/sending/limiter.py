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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from dispatcher import keys
from dispatcher.campaigns.control import Control

# Only ever lengthens a pause: a short Retry-After must not cut a longer one another worker set.
_PAUSE_SCRIPT = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) return 1 end
return 0
"""

# A batch's messages of one sender, in one call, message by message in order (one message: a batch of one).
# Codes: 0 go now, 1 reserved (sleep ms then go), 2 too far (retry in ms, nothing reserved), 3 sender
# paused by the provider (ms left), 4 campaign paused, 5 campaign cancelled.
# KEYS: TAT, sender pause, then the control flag of each distinct campaign of the batch.
# ARGV: interval ms, burst, max wait ms, the flag's cancelled and paused values, then per message the
# index of its campaign among the flags (1-based) and its cost. Returns code, ms per message.
# Slots are reserved for every message up to the first that would wait too long; the ones after it
# get their estimated wait (cumulated, nothing reserved), so they come back spread out, not together.
_BATCH_SCRIPT = """
local out = {}
local controls = {}
for i = 3, #KEYS do
  local c = redis.call('GET', KEYS[i])
  if c == ARGV[4] then controls[i - 2] = 5 elseif c == ARGV[5] then controls[i - 2] = 4 else controls[i - 2] = 0 end
end
local pause = redis.call('PTTL', KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local far_tat = nil
local reserved = false
for j = 0, (#ARGV - 5) / 2 - 1 do
  local control = controls[tonumber(ARGV[6 + 2 * j])]
  local cost = interval * tonumber(ARGV[7 + 2 * j])
  if control ~= 0 then
    out[#out + 1] = control; out[#out + 1] = 0
  elseif pause > 0 then
    out[#out + 1] = 3; out[#out + 1] = pause
  elseif far_tat then
    far_tat = far_tat + cost
    out[#out + 1] = 2; out[#out + 1] = math.ceil(far_tat - tolerance - now)
  else
    local wait = tat + cost - tolerance - now
    if wait > max_wait then
      far_tat = tat + cost
      out[#out + 1] = 2; out[#out + 1] = math.ceil(wait)
    else
      tat = tat + cost
      reserved = true
      if wait <= 0 then out[#out + 1] = 0; out[#out + 1] = 0 else out[#out + 1] = 1; out[#out + 1] = math.ceil(wait) end
    end
  end
end
if reserved then redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000) end
return out
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
        self._pause: Any = client.register_script(_PAUSE_SCRIPT)
        self._acquire_batch: Any = client.register_script(_BATCH_SCRIPT)

    def acquire(self, sender_id: int, campaign_id: int, rate: float, burst: int, cost: int = 1) -> Decision:
        """One message's decision: a batch of one."""
        return self.acquire_batch(sender_id, rate, burst, [(campaign_id, cost)])[0]

    def acquire_batch(self, sender_id: int, rate: float, burst: int, asks: Sequence[tuple[int, int]]) -> list[Decision]:
        """One decision per `(campaign id, cost)` of a batch's messages of this sender, in order, in one
        round trip. The same rules as `acquire`: a batch never goes past rate + burst."""
        campaigns = list(dict.fromkeys(campaign_id for campaign_id, _ in asks))
        index = {campaign_id: i + 1 for i, campaign_id in enumerate(campaigns)}
        args: list[Any] = [1000.0 / rate, max(1, burst), self.max_wait_ms, Control.CANCELLED, Control.PAUSED]
        for campaign_id, cost in asks:
            args += [index[campaign_id], max(1, cost)]
        flags = [keys.campaign_control(campaign_id) for campaign_id in campaigns]
        reply = self._acquire_batch(
            keys=[keys.sender_limiter(sender_id), keys.sender_pause(sender_id), *flags], args=args
        )
        return [Decision(int(reply[i]), int(reply[i + 1]) / 1000.0) for i in range(0, len(reply), 2)]

    def pause_sender(self, sender_id: int, seconds: float) -> bool:
        """Stop every worker from sending for this sender for `seconds` (the provider said so)."""
        return bool(self._pause(keys=[keys.sender_pause(sender_id)], args=[max(1, int(seconds * 1000))]))
