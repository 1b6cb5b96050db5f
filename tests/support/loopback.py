"""Small HTTP servers on 127.0.0.1 for the provider clients' tests: a provider that answers (or misbehaves,
by path) and forward proxies. Each runs in its own thread, as a real peer would."""

from __future__ import annotations

import contextlib
import gzip
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import httpx
import pytest


class Seen(NamedTuple):
    """One request as the provider received it."""

    client_port: int
    path: str
    headers: dict[str, str]
    body: bytes


class Provider(BaseHTTPRequestHandler):
    """Answers like Twilio (201 {"sid": "SM1"}) on keep-alive connections, except on the paths below, where it
    fails the way a real server or network can once the request has arrived."""

    protocol_version = "HTTP/1.1"
    seen: list[Seen] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Provider.seen.append(
            Seen(self.client_address[1], self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        behaviours = {
            "gzip": self._gzip,
            "chunked": self._chunked,
            "slow": self._slow,
            "hangup": self._hangup,
            "reset": self._reset,
            "truncated": self._truncated,
            "bad-status": self._bad_status,
        }
        behaviours.get(self.path.strip("/").split("/")[0], self._ok)()

    def _ok(self) -> None:
        self._answer(201, b'{"sid": "SM1"}')

    def _gzip(self) -> None:
        self._answer(201, gzip.compress(b'{"sid": "SM-gzip"}'), ("content-encoding", "gzip"))

    def _chunked(self) -> None:
        self.send_response(201)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.write(b'8\r\n{"sid": \r\n8\r\n"SM-ch"}\r\n0\r\n\r\n')

    def _slow(self) -> None:
        time.sleep(1.0)
        with contextlib.suppress(OSError):  # the client has given up waiting
            self._ok()

    def _hangup(self) -> None:
        self.close_connection = True  # read the request, never answer

    def _reset(self) -> None:
        # Half an answer, then SO_LINGER 0: the connection ends with a TCP reset, not a clean end of stream.
        self.wfile.write(b"HTTP/1.1 201 Created\r\ncontent-le")
        self.wfile.flush()
        time.sleep(0.05)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _truncated(self) -> None:
        self.wfile.write(b"HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\n" + b'{"sid": "SM')
        self.close_connection = True

    def _bad_status(self) -> None:
        self.wfile.write(b"NONSENSE\r\n\r\n")
        self.close_connection = True

    def _answer(self, status: int, body: bytes, *headers: tuple[str, str]) -> None:
        self.send_response(status)
        for name, value in (("content-type", "application/json"), ("content-length", str(len(body))), *headers):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


class Forward(BaseHTTPRequestHandler):
    """A forward proxy for plain http: the request line carries the absolute URL to fetch."""

    seen: list[str] = []
    proxy_auth: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Forward.seen.append(self.path)
        Forward.proxy_auth.append(self.headers.get("proxy-authorization"))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
        upstream = httpx.post(self.path, content=body, headers=headers)
        self.send_response(upstream.status_code)
        self.send_header("content-length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *_args: Any) -> None:
        pass


class Refuses(BaseHTTPRequestHandler):
    """A proxy that refuses every tunnel, as one does when its upstream is down or the host is denied."""

    def do_CONNECT(self) -> None:  # noqa: N802
        self.send_response(502)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Make `socket.getaddrinfo` answer `answers[host]` for these hosts (both clients resolve through it)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on a free loopback port (yielded) until the generator is closed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True  # a keep-alive connection left open must not block the shutdown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
