"""What a send needs besides its message: shared clients and settings, the thread's own connection."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import httpx
import redis
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from dispatcher.config import Settings
from dispatcher.db.session import get_engine
from workers.sending import limiter as lim

_thread = threading.local()


@dataclass(slots=True)
class Context:
    """What one send needs besides the message: shared clients and settings, the worker thread's autocommit
    connection for the message's own writes, and an ORM session opened on first use for rare paths
    (finishing a run, the error budget, conversation tags)."""

    client: httpx.AsyncClient
    r: redis.Redis
    limiter: lim.SenderLimiter
    settings: Settings
    _session: Session | None = None

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
