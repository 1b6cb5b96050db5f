"""The process's Redis client: one factory, called where a process starts its work (a route's dependency,
a task) and passed down to the code that needs it, so the domain never reaches for a global."""

from __future__ import annotations

import os
from functools import lru_cache

import redis

from dispatcher.config import get_settings


@lru_cache(maxsize=4)
def _client(url: str, pid: int) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


def get_redis(url: str | None = None) -> redis.Redis:
    """A thread-safe pool per URL and pid (no socket crosses a fork); strings, not bytes, in replies."""
    return _client(url or get_settings().redis_url, os.getpid())
