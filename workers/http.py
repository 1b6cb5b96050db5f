"""Provider clients: httpx's API for every adapter, sync or async, built from one `ClientPolicy`.

* `build_async_client(settings)`: an `httpx.AsyncClient` on `AiohttpTransport`, for sends that run
  concurrently on an event loop. One client per loop, used and closed (`await client.aclose()`) on it.
* `build_client(settings)` / `get_client()`: the pooled sync client, one per process.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import lru_cache

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver

from dispatcher.config import Settings, get_settings
from workers import egress

# Idle connections are dropped before the common 5 s server idle timeout (uvicorn, Node): reusing
# one the server is closing gives a reset after the request left, an ambiguous `unknown` outcome.
KEEPALIVE_EXPIRY = 4.0  # seconds
# A loop's concurrency is its batch (up to 128 calls), not the worker's thread count: these only cap a
# runaway, a batch never waits for a slot.
CONNECTIONS_PER_HOST = 256
MAX_CONNECTIONS = 2 * CONNECTIONS_PER_HOST
HEADERS = {"User-Agent": "campaign-dispatcher/0.1"}


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """How provider calls leave the worker, read from settings once for both clients."""

    timeout: httpx.Timeout
    # Every call goes through the proxy (the operator's own, so trusted), except to `direct_url`: the
    # operator's sandbox is on our side of any proxy. The proxy resolves the provider's name, so
    # refusing internal addresses is then the proxy's job.
    proxy: str | None
    direct_url: str
    # What the egress guard lets through as configured; None: no guard (private URLs allowed).
    trusted_urls: tuple[str, ...] | None

    @classmethod
    def of(cls, settings: Settings) -> ClientPolicy:
        proxy = settings.provider_proxy or None
        trusted = (settings.sandbox_url, *([proxy] if proxy else []))
        timeout = httpx.Timeout(
            connect=settings.provider_connect_timeout, read=settings.provider_read_timeout, write=5.0, pool=5.0
        )
        return cls(timeout, proxy, settings.sandbox_url, None if settings.allow_private_provider_urls else trusted)


@lru_cache(maxsize=2)
def _client(pid: int) -> httpx.Client:
    return build_client(get_settings())


def get_client() -> httpx.Client:
    # Keyed by pid: a connection pool must never be shared across fork().
    return _client(os.getpid())


def build_client(settings: Settings) -> httpx.Client:
    """The sync provider client: pooled keep-alive connections, egress-checked unless private URLs are allowed."""
    policy = ClientPolicy.of(settings)
    size = settings.worker_concurrency
    limits = httpx.Limits(
        max_connections=size * 2, max_keepalive_connections=size * 2, keepalive_expiry=KEEPALIVE_EXPIRY
    )
    transport = _guarded(policy, httpx.HTTPTransport(limits=limits, proxy=policy.proxy))
    direct = {policy.direct_url: _guarded(policy, httpx.HTTPTransport(limits=limits))} if policy.proxy else None
    return httpx.Client(timeout=policy.timeout, transport=transport, mounts=direct, headers=HEADERS)


def _guarded(policy: ClientPolicy, transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    if policy.trusted_urls is None:
        return transport
    return egress.guard(transport, trusted_urls=policy.trusted_urls)


def build_async_client(settings: Settings) -> httpx.AsyncClient:
    """The async provider client, for one event loop: build it anywhere, use and `aclose()` it on one loop.

    Its limits are the transport's (httpx ignores `AsyncClient(limits=...)` beside a transport), and no
    environment proxy is read: `provider_proxy` is the only one."""
    policy = ClientPolicy.of(settings)
    return httpx.AsyncClient(
        timeout=policy.timeout, transport=AiohttpTransport(policy), headers=HEADERS, trust_env=False
    )


# What an aiohttp failure becomes, first match wins. The class decides whether the provider may have the
# message (`workers.providers.base.transport_error`): connector failures happen before a byte of the
# request leaves; anything later is ambiguous. aiohttp does not tell a failed write from a failed read,
# so a request cut while sending is ambiguous too (never re-sent blindly) and WriteError is never raised.
ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (egress.EgressRefused, httpx.ConnectError),  # kept as __cause__: transport_error makes it permanent
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),  # the proxy answered CONNECT with an error
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),  # the proxy cannot be reached
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # connecting, or waiting for a pool slot
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # DNS failure, refused, TLS handshake
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),  # closed before or during the answer
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # a truncated or malformed body
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # an invalid status line or header
    (aiohttp.ClientError, httpx.ReadError),  # reset while sending or reading
)
_MAPPED = tuple(raised for raised, _ in ERRORS)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's async transport on one aiohttp session (one connector, one pool), with the egress guard and
    the proxy of `policy`.

    The session is opened by the first request, in the running loop, and the transport belongs to that
    loop from then on: a request from another loop raises RuntimeError. Each answer is read whole before
    it is returned (provider answers are small). aiohttp has no write timeout: httpx's is ignored."""

    def __init__(self, policy: ClientPolicy, *, limit_per_host: int = CONNECTIONS_PER_HOST) -> None:
        self._policy = policy
        self._direct = _origin(httpx.URL(policy.direct_url))
        self._limit_per_host = limit_per_host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._guard: egress.GuardedResolver | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session_here()
        proxy = None if _origin(request.url) == self._direct else self._policy.proxy
        try:
            if proxy is None and self._guard is not None:
                self._guard.check_literal(*egress.host_port(request.url))
            async with session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=[(key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw],
                data=await request.aread() or None,
                proxy=proxy,
                timeout=_timeout(request),
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
        except _MAPPED as exc:
            raise _mapped(exc, request) from exc
        return httpx.Response(answer.status, headers=answer.raw_headers, content=content, extensions=_about(answer))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None:
            self._loop, self._session = loop, self._open()
        elif loop is not self._loop:
            raise RuntimeError("an AiohttpTransport is used only from the event loop it first ran on")
        return self._session

    def _open(self) -> aiohttp.ClientSession:
        resolver: AbstractResolver = aiohttp.ThreadedResolver()
        if self._policy.trusted_urls is not None:
            trusted = [egress.host_port(url) for url in self._policy.trusted_urls]
            resolver = self._guard = egress.GuardedResolver(resolver, trusted)
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS,
            limit_per_host=self._limit_per_host,
            keepalive_timeout=KEEPALIVE_EXPIRY,
            resolver=resolver,
            ssl=httpx.create_ssl_context(),  # the certificates the sync client trusts
        )
        # httpx keeps the cookies and decodes the body: aiohttp does neither.
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False
        )


def _mapped(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    mapped = next(error for raised, error in ERRORS if isinstance(exc, raised))
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError) and not isinstance(exc.message, str):
        text = "Server disconnected mid-answer"  # aiohttp's message is then the answer's parsed head
    return mapped(text, request=request)


def _about(answer: aiohttp.ClientResponse) -> dict[str, bytes]:
    """The response extensions httpx reads (`Response.http_version`, `reason_phrase`)."""
    version = answer.version or aiohttp.HttpVersion11
    return {
        "http_version": f"HTTP/{version.major}.{version.minor}".encode(),
        "reason_phrase": (answer.reason or "").encode("latin-1", "replace"),
    }


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's timeouts for this request (the client's, or a call's `timeout=`) in aiohttp's terms."""
    given = request.extensions.get("timeout", {})
    return _client_timeout(given.get("connect"), given.get("read"), given.get("pool"))


@lru_cache(maxsize=32)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's `connect` bounds waiting for a pool slot and connecting together; `sock_connect` one socket.
    both = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(total=None, connect=both, sock_connect=connect, sock_read=read)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return (url.scheme, *egress.host_port(url))
