"""The provider clients over real loopback sockets. Where a rule holds for both, the test runs on the sync
client (httpx on httpcore) and the async one (httpx on aiohttp): each failure must raise the same httpx
class from both, since that class decides whether a message may be sent again."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dispatcher.config import Settings
from tests.support.loopback import Forward, Provider, Refuses, fake_dns, serve
from tests.support.processes import free_port
from workers import egress, http
from workers.http import AiohttpTransport, ClientPolicy, build_async_client, build_client
from workers.providers.base import Ambiguous, Outbound, Permanent, ProviderError, Transient, transport_error
from workers.providers.twilio import TwilioSms

Post = Callable[[Settings, str], httpx.Response]
OPEN = Settings(allow_private_provider_urls=True, provider_read_timeout=0.3, provider_connect_timeout=0.3)
# Guarded, with a sandbox on a port nothing uses (tests that need the sandbox trusted set their own).
GUARDED = Settings(allow_private_provider_urls=False, sandbox_port=1)


def post_sync(settings: Settings, url: str) -> httpx.Response:
    with build_client(settings) as client:
        return client.post(url, data={"To": "+2250707123456"})


def post_async(settings: Settings, url: str) -> httpx.Response:
    async def post() -> httpx.Response:
        async with build_async_client(settings) as client:
            return await client.post(url, data={"To": "+2250707123456"})

    return asyncio.run(post())


@pytest.fixture(params=[post_sync, post_async], ids=["sync", "async"])
def post(request: pytest.FixtureRequest) -> Post:
    return request.param  # type: ignore[no-any-return]


def failure(post: Post, settings: Settings, url: str) -> tuple[httpx.TransportError, ProviderError]:
    """The httpx error POSTing `url` raises, and its class in the adapters' taxonomy."""
    with pytest.raises(httpx.TransportError) as failed:
        post(settings, url)
    assert failed.value.__cause__ is not None  # the client's own exception, kept for the logs
    return failed.value, transport_error(failed.value)


def test_a_request_and_its_answer_cross_intact(local_provider: int) -> None:
    async def send() -> str:
        async with build_async_client(OPEN) as client:
            twilio = TwilioSms(client, {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": base})
            return (await twilio.send(Outbound(7, "+2250707123456", "Prix: 10€"))).provider_message_id

    base = f"http://127.0.0.1:{local_provider}"
    assert asyncio.run(send()) == "SM1"
    (seen,) = Provider.seen
    assert seen.path == "/2010-04-01/Accounts/AC1/Messages.json"
    assert seen.headers["authorization"].startswith("Basic ") and seen.headers["idempotency-key"] == "msg-7"
    assert seen.headers["user-agent"] == "campaign-dispatcher/0.1" and "cookie" not in seen.headers
    assert dict(httpx.QueryParams(seen.body.decode())) == {"To": "+2250707123456", "From": "X", "Body": "Prix: 10€"}


@pytest.mark.parametrize(("path", "sid"), [("gzip", "SM-gzip"), ("chunked", "SM-ch")])
def test_an_answer_is_read_as_httpx_reads_it(post: Post, local_provider: int, path: str, sid: str) -> None:
    answer = post(OPEN, f"http://127.0.0.1:{local_provider}/{path}")
    assert (answer.status_code, answer.reason_phrase, answer.http_version) == (201, "Created", "HTTP/1.1")
    assert answer.json() == {"sid": sid}  # httpx decodes the gzip body: aiohttp hands it over as it came


def test_idle_connections_are_reused_until_the_keepalive_expiry(
    local_provider: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "KEEPALIVE_EXPIRY", 0.3)

    async def three_posts() -> None:
        async with build_async_client(OPEN) as client:
            for pause in (0.0, 0.0, 0.6):
                await asyncio.sleep(pause)
                (await client.post(f"http://127.0.0.1:{local_provider}/")).raise_for_status()

    asyncio.run(three_posts())
    first, second, third = (seen.client_port for seen in Provider.seen)
    assert first == second != third  # reused while fresh, dropped once idle past the expiry


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs, so connecting times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        time.sleep(0.1)
        yield port
        for filler in fillers:
            filler.close()


@pytest.mark.parametrize(
    ("case", "error", "kind"),
    [
        pytest.param("refused", httpx.ConnectError, Transient, id="connection-refused"),
        pytest.param("unanswered", httpx.ConnectTimeout, Transient, id="connect-timeout"),
        pytest.param("hangup", httpx.RemoteProtocolError, Ambiguous, id="closed-after-reading-the-request"),
        pytest.param("reset", httpx.RemoteProtocolError, Ambiguous, id="reset-mid-answer"),
        pytest.param("truncated", httpx.RemoteProtocolError, Ambiguous, id="truncated-body"),
        pytest.param("bad-status", httpx.RemoteProtocolError, Ambiguous, id="invalid-status-line"),
        pytest.param("slow", httpx.ReadTimeout, Ambiguous, id="read-timeout"),
    ],
)
def test_failures_before_the_request_left_are_transient_and_after_ambiguous(
    post: Post, local_provider: int, unanswered_port: int, case: str, error: type, kind: type
) -> None:
    special = {"refused": f"http://127.0.0.1:{free_port()}/", "unanswered": f"http://127.0.0.1:{unanswered_port}/"}
    raised, classified = failure(post, OPEN, special.get(case, f"http://127.0.0.1:{local_provider}/{case}"))
    assert type(raised) is error and isinstance(classified, kind)


def test_waiting_too_long_for_a_pooled_connection_is_transient(local_provider: int) -> None:
    # httpcore raises PoolTimeout; aiohttp bounds the wait for a slot and the connect together: ConnectTimeout.
    async def two_at_once() -> list[Any]:
        transport = AiohttpTransport(ClientPolicy.of(OPEN), limit_per_host=1)
        timeout = httpx.Timeout(5.0, connect=0.2, pool=0.1)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            url = f"http://127.0.0.1:{local_provider}/slow"
            return await asyncio.gather(client.post(url), client.post(url), return_exceptions=True)

    first, second = asyncio.run(two_at_once())
    assert first.status_code == 201
    assert type(second) is httpx.ConnectTimeout and isinstance(transport_error(second), Transient)


def test_an_async_client_belongs_to_the_loop_it_first_ran_on(local_provider: int) -> None:
    client, url = build_async_client(OPEN), f"http://127.0.0.1:{local_provider}/"
    first, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(client.post(url)).status_code == 201
        with pytest.raises(RuntimeError, match="event loop"):
            other.run_until_complete(client.post(url))
        first.run_until_complete(client.aclose())
    finally:
        first.close()
        other.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1", "[::1]"])
def test_a_provider_on_our_network_is_refused_as_a_permanent_error(post: Post, local_provider: int, host: str) -> None:
    url = f"http://{host}:{local_provider}/"
    if host in ("localhost", "127.0.0.1"):
        assert post(OPEN, url).status_code == 201  # allowed, it answers
    raised, classified = failure(post, GUARDED, url)
    assert isinstance(raised.__cause__, egress.EgressRefused)
    assert isinstance(classified, Permanent) and classified.code == "egress" and host.strip("[]") in classified.text


def test_a_name_is_refused_if_any_of_its_addresses_is_private(post: Post, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"split.example": ["93.184.216.34", "10.0.0.5"]})  # refused before connecting
    _, classified = failure(post, GUARDED, "https://split.example/")
    assert isinstance(classified, Permanent) and classified.code == "egress" and "10.0.0.5" in classified.text


def test_the_operators_sandbox_is_reached_as_configured(post: Post, local_provider: int) -> None:
    settings = Settings(allow_private_provider_urls=False, sandbox_port=local_provider)
    assert post(settings, f"{settings.sandbox_url}/").status_code == 201
    # Only that host and port: another port of the same machine stays refused
    _, classified = failure(post, settings, f"http://127.0.0.1:{free_port()}/")
    assert isinstance(classified, Permanent) and classified.code == "egress"


def test_through_the_operators_proxy_workers_connect_only_to_the_proxy(
    post: Post, local_provider: int, forward_proxy: int
) -> None:
    settings = Settings(
        provider_proxy=f"http://ops:secret@127.0.0.1:{forward_proxy}", allow_private_provider_urls=False, sandbox_port=1
    )
    # localhost, refused when connecting directly: the proxy fetches it (where it may go is then its job)
    assert post(settings, f"http://localhost:{local_provider}/").status_code == 201
    assert Forward.seen == [f"http://localhost:{local_provider}/"]
    assert Forward.proxy_auth == ["Basic b3BzOnNlY3JldA=="]  # the proxy URL's credentials


def test_with_a_proxy_the_operators_sandbox_is_still_reached_directly(
    post: Post, local_provider: int, forward_proxy: int
) -> None:
    proxy = f"http://127.0.0.1:{forward_proxy}"
    settings = Settings(provider_proxy=proxy, allow_private_provider_urls=False, sandbox_port=local_provider)
    assert post(settings, f"http://127.0.0.1:{local_provider}/").status_code == 201
    assert Forward.seen == [] and len(Provider.seen) == 1


def test_a_tunnel_the_proxy_refuses_is_a_transient_error_not_an_unknown_outcome(post: Post) -> None:
    for port in serve(Refuses):
        settings = Settings(provider_proxy=f"http://127.0.0.1:{port}", allow_private_provider_urls=False)
        raised, classified = failure(post, settings, "https://api.twilio.example/")
        assert type(raised) is httpx.ProxyError
        assert isinstance(classified, Transient) and classified.code == "proxy" and "502" in classified.text


def test_a_proxy_that_cannot_be_reached_is_a_transient_error(post: Post) -> None:
    settings = Settings(provider_proxy=f"http://127.0.0.1:{free_port()}", allow_private_provider_urls=False)
    _, classified = failure(post, settings, "https://api.twilio.example/")
    # httpcore cannot tell the proxy from the provider ("network"); aiohttp can ("proxy")
    assert isinstance(classified, Transient) and classified.code in ("network", "proxy")


def test_proxies_from_the_environment_are_not_used(
    post: Post, local_provider: int, forward_proxy: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{forward_proxy}")
    assert post(OPEN, f"http://localhost:{local_provider}/").status_code == 201
    assert Forward.seen == []
