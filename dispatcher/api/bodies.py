"""Refuses, before any route runs, bodies too large to read and values we cannot store.

`BodyLimit`: a body larger than its route's limit (`DISPATCHER_MAX_BODY_MB` unless `body_limits` gives the
route another) is a 413 in the shape of every other error, `{"detail": [{"loc": ["body"], "msg": ...,
"type": "too_large"}]}`, and the rest of it is not read.

`BodyGuard`: NaN, ±Infinity (or a number so large it becomes infinity), NUL characters and bytes that are
not UTF-8 in JSON bodies and query strings get a 422 naming the field, in the same shape as every other
validation error, instead of a 500 when PostgreSQL refuses the row (or FastAPI's bare 400). Provider
webhooks are left alone: their signature covers the raw bytes and their route decides what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.config import Settings
from dispatcher.errors import Loc, item
from dispatcher.inputs import json_problem

MB = 2**20

# Only a body holding one of these can hold a refused value, so most bodies are not decoded twice.
_SUSPECT = re.compile(rb"NaN|Infinity|\\u0000|[eE][+]?0*\d{3}|\d{300}")
_EXEMPT_PREFIXES = ("/v1/webhooks/",)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The most bytes a request body may have: `default`, except under the path prefixes of `by_prefix`
    (the longest matching one wins), where None means no limit here: that route counts its own bytes."""

    default: int
    by_prefix: Mapping[str, int | None] = field(default_factory=dict)

    def for_path(self, path: str) -> int | None:
        matching = [prefix for prefix in self.by_prefix if path.startswith(prefix)]
        return self.by_prefix[max(matching, key=len)] if matching else self.default


def body_limits(settings: Settings) -> BodyLimits:
    """Every route's body limit: `DISPATCHER_MAX_BODY_MB` for the JSON API and the providers' webhooks.

    The one place a route gets another limit. A route taking uploads larger than a JSON body, like the contact
    import (`POST /v1/contacts/imports`, CSV files), adds its path here with a setting of its own, e.g.
    `by_prefix={"/v1/contacts/imports": settings.max_import_body_mb * MB}`, or `None` if it reads the upload
    as a stream and enforces its own limit while it counts.
    """
    return BodyLimits(default=settings.max_body_mb * MB)


class BodyLimit:
    """ASGI middleware: a body over its route's limit gets a 413, and the rest of it is not read.

    A `Content-Length` over the limit is answered before any of the body is read. A body without one
    (chunked) is counted as it arrives and answered as soon as it passes the limit; the app then sees the
    client disconnect, and what it answers to that is dropped. Either answer closes the connection.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.for_path(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
        elif (_content_length(scope) or 0) > limit:
            await too_large(limit)(scope, receive, send)
        else:
            await _CountedBody(scope, receive, send, limit).run(self.app)


class _CountedBody:
    """One request whose body is counted as the app reads it."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.scope, self._receive, self._send, self.limit = scope, receive, send, limit
        self.read = 0
        self.over = False  # the body passed the limit: nothing more of it is read
        self.started = False  # the app's answer has begun
        self.refused = False  # we answered 413: the app's answer goes nowhere

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            # The app saw its body cut short (a disconnect); whatever it made of that, the client has its 413.
            if not self.refused:
                raise

    async def receive(self) -> Message:
        if self.over:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            if self.read > self.limit:
                self.over = True
                if not self.started:
                    await too_large(self.limit)(self.scope, self._receive, self._send)
                    self.refused = True
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


def too_large(limit: int) -> JSONResponse:
    size = f"{limit // MB} MB" if limit % MB == 0 else f"{limit:,} bytes"
    detail = [item(("body",), f"the request body is larger than {size}, the most this route reads", "too_large")]
    # Connection: close: the rest of the body was never read, so the connection cannot carry another request.
    return JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length", "").strip()
    # Anything but digits is the server's to refuse; it is not ours to guess at.
    return int(value) if value.isascii() and value.isdigit() else None


class BodyGuard:
    """ASGI middleware: reads a JSON body whole, checks it, then replays it to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        problem = query_problem(scope.get("query_string", b""))
        if problem is None and _is_json(scope):
            body, receive = await _buffer(receive)
            problem = body_problem(body)
        if problem is None:
            await self.app(scope, receive, send)
            return
        loc, msg = problem
        response = JSONResponse({"detail": [item(loc, msg)]}, status_code=422)
        await response(scope, receive, send)


def body_problem(body: bytes) -> tuple[Loc, str] | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # FastAPI would answer a bare 400 "error parsing the body", naming nothing.
        return ("body",), f"must be JSON encoded in UTF-8 (invalid byte at position {exc.start})"
    if not _SUSPECT.search(body):
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None  # FastAPI answers invalid (or absurdly nested) JSON itself, with a 4xx
    found = json_problem(value)
    return None if found is None else (("body", *found[0]), found[1])


def query_problem(query: bytes) -> tuple[Loc, str] | None:
    if b"%00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return ("query", name), "must not contain NUL (\\u0000) characters"
    return None


def _is_json(scope: Scope) -> bool:
    # The first Content-Type, as Starlette (and so FastAPI) reads it; a dict of the raw list keeps the last.
    content_type = Headers(scope=scope).get("content-type", "").encode("latin-1").split(b";")[0].strip().lower()
    # FastAPI reads a body without a Content-Type as JSON too.
    json_type = content_type in (b"", b"application/json") or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )
    return scope["method"] in ("POST", "PUT", "PATCH") and json_type


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    chunks: list[bytes] = []
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return b"".join(chunks), replay
