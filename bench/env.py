"""Where the benchmarks run: one Redis database only (14, or DISPATCHER_BENCH_REDIS_DB), and the environment
every process of a run shares. Two benchmark runs on one Redis need two databases: each run's workers take
the tasks on its queues, and each run empties its database of our keys and queues.

`configure()` must run before anything imports `workers.app` (the Celery app reads its broker URL at
import time); `bench.__main__` calls it first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from bench import procfs
from bench.report import say
from tests.support.redis_keys import delete_ours

# Another database with DISPATCHER_BENCH_REDIS_DB (two runs side by side must not share one).
DB = str(int(os.environ.get("DISPATCHER_BENCH_REDIS_DB", "14")))
REDIS_URL = f"redis://127.0.0.1:6379/{DB}"
# How long a run waits for another one's workers to leave database 14 before refusing to start.
CLAIM_WAIT = 600.0
# What a client blocked on a queue is doing (a Celery worker's consumer connection).
CONSUMING = ("brpop", "blpop", "blmove", "brpoplpush")
# Queues only the benchmarks use: the bare baseline's own queue and the wire check's.
BARE_QUEUE = "bench.bare"
WIRE_QUEUE = "bench.wire"
BENCH_QUEUES = (BARE_QUEUE, WIRE_QUEUE)
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
        delete_ours(r, BENCH_QUEUES)
    finally:
        r.close()


# Set by a run after its first flush and checked while it waits: every benchmark on this machine shares
# database 14, and another run's flush empties our queues mid-round (its messages then never arrive).
SENTINEL = "dsp:bench:run"


class Interfered(RuntimeError):
    """Database 14 was emptied under this run, or another live run owns it: the figures would be void."""


def foreign_clients(r: redis.Redis) -> list[str]:
    """Clients of database 14 that are not this process's (a worker or a run of someone else's): what
    they are doing, e.g. `brpop`."""
    clients = r.client_list()
    own = procfs.local_ports(os.getpid())  # after the call: it may have opened our connection
    return [
        str(c.get("cmd"))
        for c in clients
        if str(c.get("db")) == DB and int(str(c["addr"]).rsplit(":", 1)[1]) not in own
    ]


def claim(wait: float = CLAIM_WAIT) -> None:
    """Empty database 14 of our keys and mark it as this run's, once no other process consumes from it: a
    worker of another run would take our sends. Waits up to `wait` seconds, then refuses. Other clients
    (another run publishing) only add noise, and a flush of theirs is caught by `check`."""
    r = client()
    try:
        deadline, told = time.monotonic() + wait, False
        while consumers := [cmd for cmd in foreign_clients(r) if cmd in CONSUMING]:
            if time.monotonic() > deadline:
                raise Interfered(f"{len(consumers)} other consumers on Redis database 14 (another run's workers?)")
            if not told:
                say(f"waiting for {len(consumers)} other consumers of Redis database 14 to go (another run?)")
                told = True
            time.sleep(5)
        if others := foreign_clients(r):
            say(f"note: {len(others)} other clients on Redis database 14 (another run?): figures may be noisier")
        flush()
        r.set(SENTINEL, os.getpid())
    finally:
        r.close()


def check(r: redis.Redis) -> None:
    """Raise if database 14 was emptied since `claim()` (another run's flush, or someone's FLUSHDB)."""
    if r.get(SENTINEL) is None:
        raise Interfered("Redis database 14 was emptied during this run (another benchmark on this machine?)")


def release() -> None:
    """Flush, unless another run emptied database 14 and marked it since: its keys are not ours to delete."""
    r = client()
    try:
        owner = r.get(SENTINEL)
    finally:
        r.close()
    if owner is None or int(owner) == os.getpid():
        flush()
