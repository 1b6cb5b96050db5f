"""What a batch of sends needs besides its messages: shared clients and settings, and the worker thread's
own database connection, event loop and HTTP client."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import redis
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from dispatcher.config import Settings
from dispatcher.db.session import get_engine
from workers import http
from workers.sending import limiter as lim

_thread = threading.local()
T = TypeVar("T")


@dataclass(slots=True)
class Context:
    """What a batch needs besides its messages: the thread's event loop and the HTTP client bound to it,
    shared clients and settings, the thread's autocommit connection for the batch's writes, and an ORM
    session opened on first use for rare paths (finishing a run, the error budget, conversation tags)."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    r: redis.Redis
    limiter: lim.SenderLimiter
    settings: Settings
    _session: Session | None = None

    @classmethod
    def for_thread(cls, r: redis.Redis, limiter: lim.SenderLimiter, settings: Settings) -> Context:
        loop, client = thread_loop(settings)
        return cls(loop, client, r, limiter, settings)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run the batch's provider calls on this thread's loop (the client's connections live there)."""
        return self.loop.run_until_complete(coroutine)

    def conn(self) -> Connection:
        return thread_connection(self.settings.database_url)

    def session(self) -> Session:
        if self._session is None:
            self._session = Session(get_engine(self.settings.database_url), expire_on_commit=False)
        return self._session

    def end_reads(self) -> None:
        """Give back the session's connection (and end its transaction) before a wait or a provider call:
        a session left open would hold a pooled connection idle in a transaction for that long."""
        if self._session is not None:
            self._session.close()

    def close(self) -> None:
        self.end_reads()


def thread_connection(url: str) -> Connection:
    """This thread's autocommit connection, kept from one send to the next: a pool checkout and return per
    message cost about a third of the claim. The autocommit pool holds at least one per worker thread
    (`get_engine`), and `writes.run` reconnects one the server closed."""
    conns: dict[tuple[str, int], Connection] | None = getattr(_thread, "conns", None)
    if conns is None:
        conns = _thread.conns = {}
    key = (url, os.getpid())  # never a connection inherited across a fork
    conn = conns.get(key)
    if conn is not None and (conn.closed or conn.invalidated):
        # Dropped by a failed reconnect: an invalidated connection refuses statements until rolled back.
        conn.close()
        conn = None
    if conn is None:
        conn = conns[key] = get_engine(url, autocommit=True).connect()
    return conn


def thread_loop(settings: Settings) -> tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]:
    """This thread's event loop and the provider client bound to it, kept across batches so keep-alive
    connections are reused; never shared across a fork."""
    runtimes: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] | None = getattr(_thread, "loops", None)
    if runtimes is None:
        runtimes = _thread.loops = {}
    runtime = runtimes.get(os.getpid())
    if runtime is None:
        loop = asyncio.new_event_loop()
        runtime = runtimes[os.getpid()] = (loop, http.build_async_client(settings))
    return runtime
