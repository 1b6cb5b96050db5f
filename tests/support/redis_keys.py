"""Cleaning up after tests and benchmarks: delete the keys this project made, nothing else."""

from __future__ import annotations

import redis

from dispatcher import contracts, keys

BATCH = 500


def delete_ours(r: redis.Redis, extra_queues: tuple[str, ...] = ()) -> int:
    """Unlink every key matching `keys.owned_patterns` (our queues plus `extra_queues`); returns how many."""
    deleted = 0
    for pattern in keys.owned_patterns((*contracts.ALL_QUEUES, *extra_queues)):
        batch: list[bytes | str] = []
        for key in r.scan_iter(match=pattern, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                deleted += int(r.unlink(*batch))
                batch = []
        if batch:
            deleted += int(r.unlink(*batch))
    return deleted
