"""Where workers may connect: provider calls never reach our own network unless the operator allows it.

A sender's `base_url` is checked when it is saved, but only IP literals can be checked then: a name
can resolve to 10.0.0.5 or 169.254.169.254 (a tenant's own DNS, a wildcard service such as nip.io, or
a record changed after the check). So the worker's HTTP client resolves each name itself when it
opens a connection, refuses the connection if any address is private, and connects to the address it
checked (never resolving twice, so a rebinding DNS cannot answer differently the second time). TLS
still verifies the certificate against the name: httpcore starts TLS with the origin's host name.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import httpcore
import httpx

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


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, if none of them is private; else EgressRefused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    refused = [a for a in addresses if private_address(a)]
    if refused or not addresses:
        raise EgressRefused(f"{host} resolves to a private, loopback or link-local address ({', '.join(refused)})")
    return addresses


def guard(transport: httpx.HTTPTransport, trusted_urls: Iterable[str] = ()) -> httpx.HTTPTransport:
    """Make `transport` connect through GuardedBackend. `trusted_urls` are the operator's own (the sandbox
    gateway's URL comes from settings, not from a tenant): their host and port are reached as they are.

    httpx has no public setting for httpcore's network backend; tests/unit/test_egress.py fails if this
    private attribute ever moves."""
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore's pool has no _network_backend: update workers/egress.py")
    pool._network_backend = GuardedBackend(trusted=[_host_port(url) for url in trusted_urls])
    return transport


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)
