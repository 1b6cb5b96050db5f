"""The send path's per-thread autocommit connection: reused across sends, replaced when it breaks."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from dispatcher.db.session import get_engine
from workers.sending import writes
from workers.sending.context import thread_connection

LEASE = timedelta(seconds=60)


def test_each_thread_keeps_one_connection(db_url: str) -> None:
    mine = thread_connection(db_url)
    assert thread_connection(db_url) is mine
    theirs: list[object] = []
    worker = threading.Thread(target=lambda: theirs.append(thread_connection(db_url)))
    worker.start()
    worker.join()
    assert theirs and theirs[0] is not mine


def test_an_invalidated_connection_is_replaced(db_url: str) -> None:
    conn = thread_connection(db_url)
    conn.invalidate()
    fresh = thread_connection(db_url)
    assert fresh is not conn
    assert writes.claim(fresh, [0], LEASE) == {}  # message 0 does not exist: runs, matches nothing


def test_a_connection_the_server_killed_is_reconnected_by_the_next_write(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("needs a server that can end a session")
    conn = thread_connection(db_url)
    backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with get_engine(db_url).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        admin.commit()
    # The first statement fails on the dead socket; `writes.run` reconnects and runs it again.
    assert writes.claim(thread_connection(db_url), [0], LEASE) == {}
    again = thread_connection(db_url)
    assert again.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend


def test_more_threads_than_the_pool_never_wait_for_a_connection(db_url: str) -> None:
    """`celery worker -c 40` with the concurrency setting at its default: every thread keeps its own."""
    threads, barrier = 40, threading.Barrier(40, timeout=60)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            writes.claim(thread_connection(db_url), [0], LEASE)
            barrier.wait()  # all 40 hold their connection at once
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            failures.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=send) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=90)
    assert failures == []
