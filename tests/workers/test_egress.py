"""Workers connect only to public addresses unless allowed: names are resolved and checked at connect time."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from dispatcher.config import Settings
from workers import egress
from workers.http import build_client
from workers.providers.base import Outbound, Permanent, Transient
from workers.providers.twilio import TwilioSms


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"sid": "SM1"}'
        self.send_response(201)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


class _Forward(BaseHTTPRequestHandler):
    """A forward proxy for plain http: the request line carries the absolute URL to fetch."""

    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Forward.seen.append(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
        upstream = httpx.post(self.path, content=body, headers=headers)
        self.send_response(upstream.status_code)
        self.send_header("content-length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *_args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_provider() -> Iterator[int]:
    yield from _serve(_Ok)


@pytest.fixture
def forward_proxy() -> Iterator[int]:
    _Forward.seen = []
    yield from _serve(_Forward)


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


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


def test_a_guarded_client_refuses_a_provider_on_our_network_as_a_permanent_error(local_provider: int) -> None:
    settings = {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": f"http://localhost:{local_provider}"}
    open_client = httpx.Client(transport=httpx.HTTPTransport())
    assert TwilioSms(open_client, settings).send(Outbound(1, "+2250707123456", "hi")).provider_message_id == "SM1"

    guarded = httpx.Client(transport=egress.guard(httpx.HTTPTransport()))
    with pytest.raises(Permanent) as refused:
        TwilioSms(guarded, settings).send(Outbound(1, "+2250707123456", "hi"))
    assert refused.value.code == "egress" and "localhost" in refused.value.text


def test_the_operators_own_sandbox_url_is_reached_as_configured(local_provider: int) -> None:
    sandbox_url = f"http://127.0.0.1:{local_provider}"
    settings = {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": sandbox_url}
    guarded = httpx.Client(transport=egress.guard(httpx.HTTPTransport(), trusted_urls=[sandbox_url]))
    assert TwilioSms(guarded, settings).send(Outbound(1, "+2250707123456", "hi")).provider_message_id == "SM1"
    # Only that host and port: another port of the same machine stays refused
    with pytest.raises(Permanent):
        TwilioSms(guarded, {**settings, "base_url": "http://127.0.0.1:1"}).send(Outbound(1, "+2250707123456", "hi"))


def test_through_the_operators_proxy_workers_connect_only_to_the_proxy(local_provider: int, forward_proxy: int) -> None:
    settings = Settings(
        provider_proxy=f"http://127.0.0.1:{forward_proxy}", allow_private_provider_urls=False, sandbox_port=1
    )
    twilio = {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": f"http://localhost:{local_provider}"}
    with build_client(settings) as client:
        assert TwilioSms(client, twilio).send(Outbound(1, "+2250707123456", "hi")).provider_message_id == "SM1"
    # The proxy fetched it (checking where it may go is then the proxy's job); without one it is refused.
    assert _Forward.seen == [f"http://localhost:{local_provider}/2010-04-01/Accounts/AC1/Messages.json"]
    with build_client(Settings(allow_private_provider_urls=False, sandbox_port=1)) as direct:
        with pytest.raises(Permanent):
            TwilioSms(direct, twilio).send(Outbound(1, "+2250707123456", "hi"))


def test_with_a_proxy_the_operators_sandbox_is_still_reached_directly(local_provider: int, forward_proxy: int) -> None:
    proxy = f"http://127.0.0.1:{forward_proxy}"
    settings = Settings(provider_proxy=proxy, allow_private_provider_urls=False, sandbox_port=local_provider)
    sandbox = {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": f"http://127.0.0.1:{local_provider}"}
    with build_client(settings) as client:
        assert TwilioSms(client, sandbox).send(Outbound(1, "+2250707123456", "hi")).provider_message_id == "SM1"
    assert _Forward.seen == []


class _Refuses(BaseHTTPRequestHandler):
    """A proxy that refuses every tunnel, as one does when its upstream is down or the host is denied."""

    def do_CONNECT(self) -> None:  # noqa: N802
        self.send_response(502)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_a_tunnel_the_proxy_refuses_is_a_transient_error_not_an_unknown_outcome() -> None:
    for port in _serve(_Refuses):
        settings = Settings(provider_proxy=f"http://127.0.0.1:{port}", allow_private_provider_urls=False)
        twilio = {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": "https://api.twilio.example"}
        with build_client(settings) as client, pytest.raises(Transient) as refused:
            TwilioSms(client, twilio).send(Outbound(1, "+2250707123456", "hi"))
        assert refused.value.code == "proxy" and "502" in refused.value.text


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "proxy.internal:3128", "http://", "http://proxy:abc"])
def test_a_proxy_that_is_not_an_http_url_is_a_settings_error(proxy: str) -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        Settings(provider_proxy=proxy)
