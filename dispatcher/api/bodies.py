"""Refuses, before any route runs, JSON bodies and query strings holding values we cannot store.

One place for every route: NaN, ±Infinity (or a number so large it becomes infinity), NUL
characters and bytes that are not UTF-8 get a 422 naming the field, in the same shape as every other
validation error, instead of a 500 when PostgreSQL refuses the row (or FastAPI's bare 400). Provider
webhooks are left alone: their signature covers the raw bytes and their route decides what to do.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.errors import Loc, item
from dispatcher.inputs import json_problem

# Only a body holding one of these can hold a refused value, so most bodies are not decoded twice.
_SUSPECT = re.compile(rb"NaN|Infinity|\\u0000|[eE][+]?0*\d{3}|\d{300}")
_EXEMPT_PREFIXES = ("/v1/webhooks/",)


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
