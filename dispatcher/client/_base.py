"""Thin executors: the only code that differs between the sync and the async client.

A resource's calls are written once, as functions returning a `Call` (see `campaigns.py`). `sync_call`
and `async_call` turn such a function into a method of a sync or async resource with the same signature
(mypy sees it), whose body sends the request and hands the answer to the shared `handle`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from dispatcher.client._call import Call, handle
from dispatcher.client.errors import TransportError

P = ParamSpec("P")
T = TypeVar("T")


def _transport_error(call: Call[Any], exc: httpx.TransportError) -> TransportError:
    return TransportError(f"{call.method} {call.path} got no answer: {type(exc).__name__}: {exc}")


class SyncResource:
    """A group of calls sent through one shared `httpx.Client`."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _execute(self, call: Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        return handle(call, response)


class AsyncResource:
    """A group of calls sent through one shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _execute(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        return handle(call, response)


def sync_call(build: Callable[P, Call[T]]) -> Callable[Concatenate[SyncResource, P], T]:
    """A sync resource method taking `build`'s arguments and returning the call's result."""

    @functools.wraps(build)
    def method(self: SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._execute(build(*args, **kwargs))

    return method


def async_call(build: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncResource, P], Coroutine[Any, Any, T]]:
    """An async resource method taking `build`'s arguments and returning an awaitable of the call's result."""

    @functools.wraps(build)
    async def method(self: AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._execute(build(*args, **kwargs))

    return method
