"""The batch writes on SQLite and PostgreSQL: one claim and one final write per batch, each telling
which rows it won, so a message is sent and counted once whatever races it."""

from __future__ import annotations

from datetime import timedelta

import redis
from sqlalchemy import select

from dispatcher.db.models import Message, MessageStatus
from dispatcher.db.session import get_engine, session_factory
from tests.support.databases import started_run
from workers.sending import writes

LEASE = timedelta(seconds=60)


def _ids(db_url: str, run_id: int) -> list[int]:
    with session_factory(db_url)() as session:
        return list(session.scalars(select(Message.id).where(Message.run_id == run_id).order_by(Message.id)))


def _rows(db_url: str, ids: list[int]) -> dict[int, Message]:
    with session_factory(db_url)() as session:
        return {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}


def test_a_claim_wins_once_and_the_final_write_tells_its_winners(db_url: str, redis_url: str) -> None:
    _campaign, run_id = started_run(db_url, redis.Redis.from_url(redis_url), 4)
    ids = _ids(db_url, run_id)
    with get_engine(db_url, autocommit=True).connect() as conn:
        claimed = writes.claim(conn, ids[:3], LEASE)
        assert sorted(claimed) == ids[:3] and claimed[ids[0]].attempts == 1 and claimed[ids[0]].body == "Promo"
        # A duplicated batch finds nothing to claim
        assert writes.claim(conn, ids, LEASE).keys() == {ids[3]}
        finals = [
            writes.Final(ids[0], MessageStatus.SENT, provider_id="SM1"),
            writes.Final(ids[1], MessageStatus.FAILED, "21211", "invalid number"),
            writes.Final(ids[2], MessageStatus.UNKNOWN, "network", "read timeout"),
        ]
        assert writes.finish(conn, finals) == set(ids[:3])
        # Written once: a second final write (a reconciler, a redelivery) wins nothing
        assert writes.finish(conn, finals) == set()
    rows = _rows(db_url, ids)
    assert (rows[ids[0]].status, rows[ids[0]].provider_message_id, rows[ids[0]].error_code) == ("sent", "SM1", None)
    assert rows[ids[0]].sent_at is not None and rows[ids[0]].lease_until is None
    assert (rows[ids[1]].status, rows[ids[1]].error_code, rows[ids[1]].error_text) == (
        "failed",
        "21211",
        "invalid number",
    )
    assert rows[ids[1]].sent_at is None and rows[ids[1]].provider_message_id is None
    assert rows[ids[2]].status == "unknown"


def test_release_gives_back_the_attempt_of_a_throttle_but_not_of_a_retry(db_url: str, redis_url: str) -> None:
    _campaign, run_id = started_run(db_url, redis.Redis.from_url(redis_url), 2)
    ids = _ids(db_url, run_id)
    with get_engine(db_url, autocommit=True).connect() as conn:
        writes.claim(conn, ids, LEASE)
        writes.release(
            conn,
            [
                writes.Release(ids[0], LEASE, "429", "slow down", attempt=False),
                writes.Release(ids[1], LEASE, "503", "unavailable", attempt=True),
            ],
        )
    rows = _rows(db_url, ids)
    assert [(rows[i].status, rows[i].attempts, rows[i].error_code) for i in ids] == [
        ("queued", 0, "429"),
        ("queued", 1, "503"),
    ]
    with get_engine(db_url, autocommit=True).connect() as conn:
        # Queued again, so the republished task claims it again; then a cancel skips what is queued
        assert writes.skip(conn, ids, "cancelled by the user") == [run_id, run_id]
        assert writes.claim(conn, ids, LEASE) == {}


def test_final_writes_come_in_a_few_padded_sizes() -> None:
    # One compiled statement per padded size, not per batch size (128 sizes cost 182 MiB of RSS)
    assert [writes._padded(n) for n in (1, 2, 3, 5, 64, 65, 128)] == [1, 2, 4, 8, 64, 128, 128]
