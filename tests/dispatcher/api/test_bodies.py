"""`dispatcher.api.bodies.BodyLimit`: 413 for bodies over the limit, declared or chunked, without reading the rest.

First the middleware alone around a plain ASGI app (every message counted), then the real API on uvicorn with
`DISPATCHER_MAX_BODY_MB=1`, spoken to over a socket so that nothing but the bytes we choose is sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from dispatcher.api.bodies import MB, BodyLimit, BodyLimits
from dispatcher.config import get_settings
from tests.support.processes import free_port, live_api
from tests.support.tenants import Tenant, ci_phone

LIMIT = 100


class Echo:
    """An app that reads its whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise OSError("client went away")  # what a real app makes of a body cut short
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def call(
    app: Any, chunks: list[bytes], *, length: int | None = None, path: str = "/v1/contacts"
) -> tuple[list[Message], int]:
    """Run one request through `app`: the sent messages, and how many body messages the server gave it."""
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    given = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal given
        given += 1
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, given


def status_and_body(sent: list[Message]) -> tuple[int, Any]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read() -> None:
    echo = Echo()
    sent, given = call(BodyLimit(echo, BodyLimits(default=LIMIT)), [b"x" * 101], length=101)
    status, body = status_and_body(sent)
    assert (status, given, echo.calls) == (413, 0, 0)
    assert body == {
        "detail": [
            {
                "loc": ["body"],
                "msg": "the request body is larger than 100 bytes, the most this route reads",
                "type": "too_large",
            }
        ]
    }
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    # Given a body without Content-Length in five chunks of 40 bytes, and a limit of 100
    echo = Echo()
    sent, given = call(BodyLimit(echo, BodyLimits(default=LIMIT)), [b"x" * 40] * 5)
    # Then the third chunk (120 bytes) gets the 413, the last two are never read, and the app's own
    # answer to the cut-short body (here an exception) goes nowhere
    status, body = status_and_body(sent)
    assert (status, body["detail"][0]["type"], given, echo.calls) == (413, "too_large", 3, 1)
    assert len(sent) == 2


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_of_exactly_the_limit_passes(declared: bool) -> None:
    chunks = [b"x" * 50, b"x" * 50]
    sent, given = call(BodyLimit(Echo(), BodyLimits(default=LIMIT)), chunks, length=100 if declared else None)
    assert (sent[0]["status"], sent[1]["body"], given) == (200, b"100", 2)


def test_paths_in_the_table_get_their_own_limit() -> None:
    limits = BodyLimits(default=LIMIT, by_prefix={"/v1/contacts/imports": 10 * LIMIT, "/v1/uploads/": None})
    assert [limits.for_path(p) for p in ("/v1/contacts", "/v1/contacts/imports", "/v1/uploads/x")] == [
        LIMIT,
        10 * LIMIT,
        None,
    ]
    app = BodyLimit(Echo(), limits)
    assert call(app, [b"x" * 900], length=900, path="/v1/contacts/imports")[0][0]["status"] == 200
    assert call(app, [b"x" * 900], length=900, path="/v1/contacts")[0][0]["status"] == 413
    assert call(app, [b"x" * 100_000], path="/v1/uploads/x")[0][0]["status"] == 200
    assert BodyLimits(default=MB).for_path("/v1/webhooks/twilio/1") == MB  # the providers' callbacks too


# --- the real API over a socket ---------------------------------------------------------------------------


@pytest.fixture
def small_api(tenant: Tenant) -> Iterator[int]:
    """The API with `DISPATCHER_MAX_BODY_MB=1`, served by uvicorn on a free port; yields the port."""
    os.environ["DISPATCHER_MAX_BODY_MB"] = "1"
    get_settings.cache_clear()
    try:
        port = free_port()
        with live_api(port):
            yield port
    finally:
        del os.environ["DISPATCHER_MAX_BODY_MB"]
        get_settings.cache_clear()


def exchange(port: int, head: str, parts: list[bytes]) -> tuple[int, dict[str, Any], bool]:
    """Send `head` and `parts` as they are, then read the answer: its status, its JSON and whether the
    server closed the connection after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        for part in parts:
            sock.sendall(part)
        answer, closed = b"", False
        while not closed:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            answer += data
            closed = not data
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body), closed


def head(extra: str) -> str:
    return f"POST /v1/contacts HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n{extra}\r\n"


def test_the_api_refuses_a_declared_length_over_the_limit_without_waiting_for_the_body(small_api: int) -> None:
    # The body is never sent: the answer comes from the headers alone.
    status, body, closed = exchange(small_api, head(f"Content-Length: {MB + 1}\r\n"), [])
    assert status == 413 and closed
    assert body == {
        "detail": [
            {
                "loc": ["body"],
                "msg": "the request body is larger than 1 MB, the most this route reads",
                "type": "too_large",
            }
        ]
    }


def test_the_api_refuses_a_chunked_body_once_past_the_limit(small_api: int) -> None:
    # 17 chunks of 64 KiB pass 1 MiB by one chunk; the terminating chunk is never sent, the answer comes anyway.
    chunk = b"%x\r\n" % (64 * 1024) + b" " * (64 * 1024) + b"\r\n"
    status, body, closed = exchange(small_api, head("Transfer-Encoding: chunked\r\n"), [chunk] * 17)
    assert (status, body["detail"][0]["type"], closed) == (413, "too_large", True)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_just_under_the_limit_reaches_the_route(small_api: int, tenant: Tenant, chunked: bool) -> None:
    # A valid JSON body padded with blanks to the limit exactly: the route reads it and creates the contact.
    phone = ci_phone(97_000 + chunked)
    payload = json.dumps({"phone": phone}).encode()
    body = payload + b" " * (MB - len(payload))
    content: Any = iter([body[: MB // 2], body[MB // 2 :]]) if chunked else body
    response = httpx.post(
        f"http://127.0.0.1:{small_api}/v1/contacts",
        content=content,
        headers={"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["phone"] == "+" + phone
    assert ("content-length" in response.request.headers) is not chunked
