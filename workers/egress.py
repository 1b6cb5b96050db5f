"""Where workers may connect: provider calls never reach our own network unless the operator allows it.

A sender's `base_url` is checked when it is saved, but only IP literals can be checked then: a name
can resolve to 10.0.0.5 or 169.254.169.254 (a tenant's own DNS, a wildcard service such as nip.io, or
a record changed after the check). So the worker's HTTP client resolves each name itself when it
opens a connection, refuses the connection if any address is private, and connects to the address it
checked (never resolving twice, so a rebinding DNS cannot answer differently the second time). TLS
still verifies the certificate against the name: httpcore starts TLS with the origin's host name.

The same rule guards both clients: `GuardedBackend` is httpcore's (the sync `httpx.Client`), `GuardedResolver`
is aiohttp's (the async transport in `workers.http`; aiohttp connects to the addresses its resolver returned
and verifies TLS against the URL's name too).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from dispatcher.inputs import private_address


class EgressRefused(httpcore.ConnectError):
    """The provider URL leads to an address workers must not reach; never worth a retry."""


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to public addresses."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None, trusted: Iterable[tuple[str, int]] = ()) -> None:
        self._inner = inner or httpcore.SyncBackend()
        self._trusted = frozenset(trusted)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = [host] if (host, port) in self._trusted else public_addresses(host, port)
        for address in addresses[:-1]:  # every checked address in turn, as the resolver ordered them
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue
        return self._inner.connect_tcp(addresses[-1], port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused("provider calls do not use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, answering only with public addresses (a trusted host and port as it resolves).

    aiohttp asks no resolver for an IP literal: the transport calls `check_literal` before sending."""

    def __init__(self, inner: AbstractResolver, trusted: Iterable[tuple[str, int]] = ()) -> None:
        self._inner = inner
        self._trusted = frozenset(trusted)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # A lookup failure stays an OSError, which aiohttp reports as a DNS error (worth a retry).
        results = await self._inner.resolve(host, port, family)
        if (host, port) not in self._trusted:
            checked(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        await self._inner.close()

    def check_literal(self, host: str, port: int) -> None:
        """EgressRefused if `host` is an IP literal workers must not reach."""
        # aiohttp's own test for "connect without resolving" (aiohttp.helpers.is_ip_address); a host
        # looking like one that is not a valid address is refused too (`private_address`).
        literal = ":" in host or host.replace(".", "").isdigit()
        if literal and (host, port) not in self._trusted:
            checked(host, [host])


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, if none of them is private; else EgressRefused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return checked(host, [str(info[4][0]) for info in infos])


def checked(host: str, addresses: Iterable[str]) -> list[str]:
    """`addresses` (what `host` resolved to), once each, if none of them is private; else EgressRefused."""
    unique = list(dict.fromkeys(addresses))
    refused = [a for a in unique if private_address(a)]
    if refused or not unique:
        raise EgressRefused(f"{host} resolves to a private, loopback or link-local address ({', '.join(refused)})")
    return unique


def guard(transport: httpx.HTTPTransport, trusted_urls: Iterable[str] = ()) -> httpx.HTTPTransport:
    """Make `transport` connect through GuardedBackend. `trusted_urls` are the operator's own (the sandbox
    gateway's URL comes from settings, not from a tenant): their host and port are reached as they are.

    httpx has no public setting for httpcore's network backend; tests/workers/test_http.py fails if this
    private attribute ever moves."""
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore's pool has no _network_backend: update workers/egress.py")
    pool._network_backend = GuardedBackend(trusted=[host_port(url) for url in trusted_urls])
    return transport


def host_port(url: str | httpx.URL) -> tuple[str, int]:
    """The host and port a URL connects to, as the guards compare them."""
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)
