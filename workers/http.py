"""One httpx client per process, shared by every thread of the worker's pool."""

from __future__ import annotations

import os
from functools import lru_cache

import httpx

from dispatcher.config import Settings, get_settings
from workers import egress

KEEPALIVE_EXPIRY = 4.0  # seconds


@lru_cache(maxsize=2)
def _client(pid: int) -> httpx.Client:
    return build_client(get_settings())


def build_client(settings: Settings) -> httpx.Client:
    """The provider client: pooled keep-alive connections, egress-checked unless private URLs are allowed.

    Through `provider_proxy` workers connect only to the proxy (the operator's own, so trusted); the proxy
    resolves the provider's name, so refusing internal addresses is then the proxy's job."""
    size = settings.worker_concurrency
    # Idle connections are dropped before the common 5 s server idle timeout (uvicorn, Node): reusing
    # one the server is closing gives a reset after the request left, an ambiguous `unknown` outcome.
    limits = httpx.Limits(
        max_connections=size * 2, max_keepalive_connections=size * 2, keepalive_expiry=KEEPALIVE_EXPIRY
    )
    proxy = settings.provider_proxy or None
    transport = _guarded(settings, httpx.HTTPTransport(limits=limits, proxy=proxy), trusted=proxy)
    # The operator's sandbox is on our side of any proxy: reached directly.
    direct = {settings.sandbox_url: _guarded(settings, httpx.HTTPTransport(limits=limits))} if proxy else None
    return httpx.Client(
        timeout=httpx.Timeout(
            connect=settings.provider_connect_timeout,
            read=settings.provider_read_timeout,
            write=5.0,
            pool=5.0,
        ),
        transport=transport,
        mounts=direct,
        headers={"User-Agent": "campaign-dispatcher/0.1"},
    )


def _guarded(settings: Settings, transport: httpx.HTTPTransport, trusted: str | None = None) -> httpx.HTTPTransport:
    if settings.allow_private_provider_urls:
        return transport
    return egress.guard(transport, trusted_urls=[settings.sandbox_url, *([trusted] if trusted else [])])


def get_client() -> httpx.Client:
    # Keyed by pid: a connection pool must never be shared across fork().
    return _client(os.getpid())
