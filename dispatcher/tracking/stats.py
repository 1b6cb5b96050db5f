"""Live run counters in Redis. Writers change them only after winning a state transition in the database.

A run's hash holds `total` and one field per final outcome. `pending` is derived, never stored:
pending = total - sent - failed - skipped - unknown. `delivered` and `read` count messages already
counted as sent (they are later stages of a sent message).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from dispatcher import keys

FINAL_FIELDS = ("sent", "failed", "skipped", "unknown")
FIELDS = ("total", *FINAL_FIELDS, "delivered", "read")
# Counters of a finished run stay readable this long; the database snapshot outlives them.
FINISHED_TTL_SECONDS = 7 * 24 * 3600


def as_counts(raw: Mapping[str, str | int | None]) -> dict[str, int]:
    counts = {f: int(raw.get(f) or 0) for f in FIELDS}
    counts["pending"] = max(0, counts["total"] - sum(counts[f] for f in FINAL_FIELDS))
    return counts


def bump(r: redis.Redis, run_id: int, field: str, by: int = 1, *, undo: str | None = None) -> dict[str, int]:
    """Add to one counter (and optionally take one from `undo`) and return the run's counts, in one round trip."""
    key = keys.run_stats(run_id)
    pipe = r.pipeline(transaction=True)
    pipe.hincrby(key, field, by)
    if undo:
        pipe.hincrby(key, undo, -by)
    pipe.hgetall(key)
    return as_counts(pipe.execute()[-1])


def bump_many(r: redis.Redis, run_id: int, deltas: Mapping[str, int]) -> None:
    """Add to several counters of a run in one round trip (the fan-out's totals, chunk by chunk)."""
    pipe = r.pipeline(transaction=True)
    for field, by in deltas.items():
        if by:
            pipe.hincrby(keys.run_stats(run_id), field, by)
    pipe.execute()


def read(r: redis.Redis, run_ids: Iterable[int]) -> dict[int, dict[str, int] | None]:
    """Counts per run; None where Redis has no counters (expired or lost: use the database snapshot).

    A hash without `total` is lost too: after a Redis restart, a send's HINCRBY recreates the hash
    with only its own field, and the reconciler must still rebuild it.
    """
    ids = list(run_ids)
    pipe = r.pipeline(transaction=False)
    for run_id in ids:
        pipe.hgetall(keys.run_stats(run_id))
    replies = zip(ids, pipe.execute(), strict=True)
    return {run_id: (as_counts(raw) if raw and "total" in raw else None) for run_id, raw in replies}


def overwrite(r: redis.Redis, run_id: int, counts: Mapping[str, int], *, finished: bool = False) -> None:
    """Replace a run's counters (a rebuild from the database, or the final snapshot)."""
    key = keys.run_stats(run_id)
    pipe = r.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={f: int(counts.get(f, 0)) for f in FIELDS})
    if finished:
        pipe.expire(key, FINISHED_TTL_SECONDS)
    pipe.execute()


def total(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out = dict.fromkeys((*FIELDS, "pending"), 0)
    for c in counts:
        for f in out:
            out[f] += int(c.get(f, 0))
    return out


_BUMP_IF_PRESENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


def bump_if_present(r: redis.Redis, run_id: int, deltas: Mapping[str, int]) -> bool:
    """Apply deltas only to live counters; False when Redis has none (the caller rebuilds them)."""
    args: list[str | int] = []
    for field, delta in deltas.items():
        args += [field, delta]
    return bool(r.eval(_BUMP_IF_PRESENT, 1, keys.run_stats(run_id), *args))
