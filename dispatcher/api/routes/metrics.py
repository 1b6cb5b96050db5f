"""`GET /metrics`: Prometheus text format, cluster-wide (see `dispatcher.tracking.metrics`)."""

from __future__ import annotations

from functools import lru_cache

import redis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from dispatcher import redis_client
from dispatcher.config import get_settings
from dispatcher.tracking.metrics import DispatcherCollector

router = APIRouter(tags=["health"])


@lru_cache(maxsize=4)
def _registry(redis_url: str, broker_url: str, database_url: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    broker = redis.Redis.from_url(broker_url, decode_responses=True)
    registry.register(DispatcherCollector(redis_client.get_redis(redis_url), broker, database_url))
    return registry


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Messages by channel, provider, outcome and code; send latency; limiter waits and provider pauses;
    queue lengths; runs by status."""
    settings = get_settings()
    registry = _registry(settings.redis_url, settings.broker_url, settings.database_url)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
