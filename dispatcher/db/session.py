"""Engines and sessions. One engine per (process, URL); SQLite gets the pragmas that make it a fair shared store."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import get_settings


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while workers write; busy_timeout makes writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    # hide_parameters: a failed statement's message (logged, shown by Celery) must not carry tokens or phones.
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    pool_size = 20 if url.startswith("sqlite") else 10
    if autocommit:
        # Nothing to roll back when a connection returns to the pool: every statement committed itself.
        # No ping per checkout either (a round trip per message): its users run a statement again on a
        # fresh connection when the pooled one turns out dead (`workers.sending.writes`).
        options.update(isolation_level="AUTOCOMMIT", pool_reset_on_return=None, pool_pre_ping=False)
        # Each worker thread keeps one connection across its sends (`workers.sending.context.thread_connection`)
        # and never returns it, so the pool must never make a thread wait: sized to the concurrency setting,
        # and without an overflow limit for a worker started with more threads (`celery worker -c 64`).
        pool_size = max(pool_size, get_settings().worker_concurrency)
        options["max_overflow"] = -1
    if url.startswith("sqlite"):
        options.pop("pool_pre_ping")
        connect_args = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, connect_args=connect_args, pool_size=pool_size, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=pool_size, **{"max_overflow": 20, **options})


_ENGINES_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _engine_for(url: str, pid: int, autocommit: bool) -> Engine:
    # Keyed by pid: a pooled connection must never cross a fork (prefork pools, uvicorn reloads).
    return make_engine(url, autocommit=autocommit)


def get_engine(url: str | None = None, *, autocommit: bool = False) -> Engine:
    """The process's engine for `url`. `autocommit=True` is a separate engine (its own pool) whose every
    statement commits on its own: for single conditional UPDATEs that need no BEGIN/COMMIT round trips."""
    # Locked: worker threads asking at once would each build an engine (and a pool) before one is cached.
    with _ENGINES_LOCK:
        return _engine_for(url or get_settings().database_url, os.getpid(), autocommit)


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
