"""Where the benchmarks run: one Redis database only (14, or DISPATCHER_BENCH_REDIS_DB), and the environment
every process of a run shares. Two benchmark runs on one Redis need two databases: each run's workers take
the tasks on its queues, and each run empties its database of our keys and queues.

`configure()` must run before anything imports `workers.app` (the Celery app reads its broker URL at
import time); `bench.__main__` calls it first.
"""

from __future__ import annotations

import os
from pathlib import Path

import redis

from tests.support.redis_keys import delete_ours

REDIS_URL = f"redis://127.0.0.1:6379/{int(os.environ.get('DISPATCHER_BENCH_REDIS_DB', '14'))}"
ROOT = Path(__file__).resolve().parents[1]


def configure(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Point this process (and the processes it starts with `process_env()`) at the benchmarks' database."""
    env = {
        "DISPATCHER_REDIS_URL": REDIS_URL,
        "DISPATCHER_BROKER_URL": REDIS_URL,
        # The sandbox provider runs on loopback, which workers refuse to reach by default.
        "DISPATCHER_ALLOW_PRIVATE_PROVIDER_URLS": "true",
        **(extra or {}),
    }
    os.environ.update(env)
    from dispatcher.campaigns import enqueue
    from dispatcher.config import get_settings

    get_settings.cache_clear()
    enqueue.producer_app.cache_clear()
    return env


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child process: ours plus `extra`, and `bench` importable from the root."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **extra, "PYTHONPATH": path}


def client() -> redis.Redis:
    url = os.environ.get("DISPATCHER_BROKER_URL", REDIS_URL)
    if url != REDIS_URL:
        raise RuntimeError(f"the benchmarks only use {REDIS_URL}, not {url}")
    return redis.Redis.from_url(REDIS_URL)


def flush() -> None:
    """Delete what the benchmarks made in their database (our keys and our queues' only)."""
    r = client()
    try:
        delete_ours(r)
    finally:
        r.close()
