"""Thin executors: the only code that differs between the sync and the async client.

A resource's calls are written once, as functions returning a `Call` (see `campaigns.py`). `sync_call`
and `async_call` turn such a function into a method of a sync or async resource with the same signature
(mypy sees it), whose body sends the request and hands the answer to the shared `handle`. A call whose
answer is a file (the CSV export) is sent by `_stream` instead, which yields the body as it arrives.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from time import sleep
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import httpx

from dispatcher.client._call import UPLOAD_PIECE, Call, check_streamed, handle
from dispatcher.client.errors import TransportError

P = ParamSpec("P")
T = TypeVar("T")


class Ending(Protocol):
    """A result that tells whether what it describes is over (a campaign, an import)."""

    @property
    def is_final(self) -> bool: ...


E = TypeVar("E", bound=Ending)


def _transport_error(call: Call[Any], exc: httpx.TransportError, *, answered: bool = False) -> TransportError:
    what = "'s answer was cut short" if answered else " got no answer"
    return TransportError(f"{call.method} {call.path}{what}: {type(exc).__name__}: {exc}")


def _method_signature(build: Callable[..., Any]) -> inspect.Signature:
    """`build`'s signature with `self` first and the call's result as return type, for `help()` and IDEs
    (without it, `inspect` reads the wrapped builder and drops its first parameter as if it were `self`)."""
    signature = inspect.signature(build)
    returns = signature.return_annotation
    if isinstance(returns, str) and returns.startswith("Call[") and returns.endswith("]"):
        returns = returns[len("Call[") : -1]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[self_param, *signature.parameters.values()], return_annotation=returns)


def _pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while piece := file.read(UPLOAD_PIECE):
            yield piece


async def _async_pieces(path: Path) -> AsyncIterator[bytes]:
    # Reads in a worker thread: a slow disk does not stall the event loop.
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while piece := await asyncio.to_thread(file.read, UPLOAD_PIECE):
            yield piece
    finally:
        file.close()


class SyncResource:
    """A group of calls sent through one shared `httpx.Client`."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _execute(self, call: Call[T]) -> T:
        kwargs = call.request_kwargs()
        if call.upload is not None:
            kwargs["content"] = _pieces(call.upload.path)
        try:
            response = self._http.request(call.method, call.path, **kwargs)
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        return handle(call, response)

    def _stream(self, call: Call[Any]) -> Iterator[bytes]:
        """The answer's body, chunk by chunk as it arrives. The request is sent when iteration starts, and
        errors (typed, as `_execute`'s) are raised then; an answer cut short is a `TransportError`."""
        answered = False
        try:
            with self._http.stream(call.method, call.path, **call.request_kwargs()) as response:
                answered = True
                if response.status_code >= 400:
                    response.read()
                check_streamed(call, response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise _transport_error(call, exc, answered=answered) from exc

    def _poll(self, call: Call[E], interval: float) -> Iterator[E]:
        """The call's answer every `interval` seconds until it is final; the last one yielded is."""
        while True:
            result = self._execute(call)
            yield result
            if result.is_final:
                return
            sleep(interval)


class AsyncResource:
    """A group of calls sent through one shared `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _execute(self, call: Call[T]) -> T:
        kwargs = call.request_kwargs()
        if call.upload is not None:
            kwargs["content"] = _async_pieces(call.upload.path)
        try:
            response = await self._http.request(call.method, call.path, **kwargs)
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        return handle(call, response)

    async def _stream(self, call: Call[Any]) -> AsyncIterator[bytes]:
        """The answer's body, chunk by chunk as it arrives (as `SyncResource._stream`), for `async for`."""
        answered = False
        try:
            async with self._http.stream(call.method, call.path, **call.request_kwargs()) as response:
                answered = True
                if response.status_code >= 400:
                    await response.aread()
                check_streamed(call, response)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.TransportError as exc:
            raise _transport_error(call, exc, answered=answered) from exc

    async def _poll(self, call: Call[E], interval: float) -> AsyncIterator[E]:
        """The call's answer every `interval` seconds until it is final, as `async for`."""
        while True:
            result = await self._execute(call)
            yield result
            if result.is_final:
                return
            await asyncio.sleep(interval)


def sync_call(build: Callable[P, Call[T]]) -> Callable[Concatenate[SyncResource, P], T]:
    """A sync resource method taking `build`'s arguments and returning the call's result."""

    @functools.wraps(build)
    def method(self: SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._execute(build(*args, **kwargs))

    method.__signature__ = _method_signature(build)  # type: ignore[attr-defined]
    return method


def async_call(build: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncResource, P], Coroutine[Any, Any, T]]:
    """An async resource method taking `build`'s arguments and returning an awaitable of the call's result."""

    @functools.wraps(build)
    async def method(self: AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._execute(build(*args, **kwargs))

    method.__signature__ = _method_signature(build)  # type: ignore[attr-defined]
    return method
