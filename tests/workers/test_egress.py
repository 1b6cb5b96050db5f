"""Workers connect only to public addresses unless allowed: names are resolved and checked at connect time.

These are the guards' own tests; both clients, guarded, over real sockets are in tests/workers/test_http.py."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpcore
import pytest
from aiohttp.abc import AbstractResolver

from dispatcher.config import Settings
from tests.support.loopback import fake_dns
from workers import egress


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "0.0.0.0"])
def test_private_addresses_are_refused(host: str) -> None:
    with pytest.raises(egress.EgressRefused):
        egress.public_addresses(host, 443)


def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"metadata.nip.example": ["169.254.169.254"], "split.example": ["93.184.216.34", "10.0.0.5"]})
    for host in ("metadata.nip.example", "split.example"):
        with pytest.raises(egress.EgressRefused, match=host):
            egress.public_addresses(host, 443)


def test_the_checked_addresses_are_the_ones_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rebinding DNS answering differently on a second lookup gains nothing: there is no second lookup.
    fake_dns(monkeypatch, {"provider.example": ["93.184.216.34", "93.184.216.35"]})
    connected: list[str] = []

    class Recorder(httpcore.SyncBackend):
        def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
            connected.append(host)
            raise httpcore.ConnectError("not really connecting")

    with pytest.raises(httpcore.ConnectError):
        egress.GuardedBackend(Recorder()).connect_tcp("provider.example", 443)
    assert connected == ["93.184.216.34", "93.184.216.35"]  # each in turn, then the last error


class Fixed(AbstractResolver):
    """A resolver answering what it was given, for every name."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 6, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def _resolved(resolver: egress.GuardedResolver, host: str, port: int = 443) -> list[str]:
    return [result["host"] for result in asyncio.run(resolver.resolve(host, port))]


def test_the_async_resolver_answers_only_with_public_addresses() -> None:
    assert _resolved(egress.GuardedResolver(Fixed("93.184.216.34", "93.184.216.35")), "provider.example") == [
        "93.184.216.34",
        "93.184.216.35",
    ]
    for answer in (("93.184.216.34", "10.0.0.5"), ("169.254.169.254",), ("::1",), ()):
        with pytest.raises(egress.EgressRefused, match="provider.example"):
            _resolved(egress.GuardedResolver(Fixed(*answer)), "provider.example")


def test_the_async_resolver_answers_a_trusted_host_and_port_as_it_resolves() -> None:
    resolver = egress.GuardedResolver(Fixed("127.0.0.1"), trusted=[("sandbox.internal", 8025)])
    assert _resolved(resolver, "sandbox.internal", 8025) == ["127.0.0.1"]
    with pytest.raises(egress.EgressRefused):
        _resolved(resolver, "sandbox.internal", 8026)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "::1", "fe80::1%eth0", "127.1", "2130706433", "999.1.1.1"])
def test_an_ip_literal_aiohttp_would_not_resolve_is_checked_as_it_is(host: str) -> None:
    with pytest.raises(egress.EgressRefused):
        egress.GuardedResolver(Fixed()).check_literal(host, 443)


def test_a_public_literal_a_name_or_a_trusted_literal_passes_the_literal_check() -> None:
    resolver = egress.GuardedResolver(Fixed(), trusted=[("127.0.0.1", 8025)])
    for host, port in (("93.184.216.34", 443), ("2606:2800:220:1::", 443), ("localhost", 443), ("127.0.0.1", 8025)):
        resolver.check_literal(host, port)  # names are the resolver's to check


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "proxy.internal:3128", "http://", "http://proxy:abc"])
def test_a_proxy_that_is_not_an_http_url_is_a_settings_error(proxy: str) -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        Settings(provider_proxy=proxy)
