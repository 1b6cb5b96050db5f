"""Pause, resume and cancel on a real database and Redis: the flag every send checks, the one lease a
resume writes, and the one shape of a cancelled message, whoever skips it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatcher import keys
from dispatcher.campaigns import control, leases
from dispatcher.config import Settings
from dispatcher.db.models import Campaign, Message, MessageStatus, Run, RunStatus
from dispatcher.db.session import get_engine, session_factory
from tests.support.databases import started_run
from workers import fanout
from workers.sending import limiter as lim
from workers.sending import writes

RATE = 10.0
SETTINGS = Settings(send_lease_seconds=120)


@dataclass
class Running:
    session: Session
    r: redis.Redis
    campaign: Campaign
    run_id: int


@pytest.fixture
def running(db_url: str, redis_url: str) -> Iterator[Running]:
    """A started SMS campaign of 30 queued messages whose sends were never published."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    campaign_id, run_id = started_run(db_url, r, 30, rate=RATE, burst=1)
    with session_factory(db_url)() as session:
        yield Running(session, r, session.get_one(Campaign, campaign_id), run_id)
    r.delete(keys.campaign_control(campaign_id), keys.run_stats(run_id))


def queued_leases(session: Session, run_id: int) -> set[datetime]:
    rows = session.scalars(
        select(Message.lease_until).where(Message.run_id == run_id, Message.status == MessageStatus.QUEUED)
    )
    return {lease.replace(tzinfo=UTC) if lease.tzinfo is None else lease for lease in rows}


def test_the_flag_pause_sets_is_the_one_the_limiter_stops_on(running: Running) -> None:
    limiter = lim.SenderLimiter(running.r)
    control.pause(running.session, running.r, running.campaign)
    assert control.flag(running.r, running.campaign.id) is control.Control.PAUSED
    decision = limiter.acquire(running.campaign.sender_id, running.campaign.id, RATE, 1)
    assert decision.code == lim.CAMPAIGN_PAUSED


def test_a_resume_leases_the_backlog_once_and_the_resume_task_publishes_without_leasing(running: Running) -> None:
    control.pause(running.session, running.r, running.campaign)
    resumed: list[int] = []
    before = datetime.now(UTC)
    assert control.resume(running.session, running.r, running.campaign, SETTINGS, resumed.append) == 1
    assert resumed == [running.run_id] and control.flag(running.r, running.campaign.id) is None
    # One lease for the whole backlog: the sender's rate needs 30 / 10 s to reach its last message.
    (lease,) = queued_leases(running.session, running.run_id)
    expected = leases.backlog(before, SETTINGS.send_lease_seconds, 30, RATE)
    assert abs((lease - expected).total_seconds()) < 5
    published: list[int] = []
    assert fanout.resume_run(running.session, running.run_id, lambda refs, _ch: published.extend(refs)) == 30
    assert queued_leases(running.session, running.run_id) == {lease}


def test_a_run_firing_while_paused_is_held_by_the_one_rule(running: Running) -> None:
    run = Run(campaign_id=running.campaign.id, account_id=running.campaign.account_id, fire_at=datetime.now(UTC))
    control.hold_while_paused(run, running.campaign, datetime.now(UTC))
    assert run.status == RunStatus.SCHEDULED and run.started_at is None


def test_cancel_and_a_late_send_skip_messages_the_same_way(running: Running) -> None:
    session, run_id = running.session, running.run_id
    first = session.scalars(select(Message.id).where(Message.run_id == run_id).order_by(Message.id)).first()
    assert first is not None
    # One message is in flight when the cancel comes: cancel skips only the queued ones.
    session.execute(update(Message).where(Message.id == first).values(status=MessageStatus.SENDING))
    session.commit()
    assert control.cancel(session, running.r, running.campaign, reason="wrong audience") == 29
    # The in-flight one is released back to queued by a retry, and the next send finds the flag.
    session.execute(update(Message).where(Message.id == first).values(status=MessageStatus.QUEUED))
    session.commit()
    with get_engine(str(session.get_bind().url), autocommit=True).connect() as conn:
        assert writes.skip(conn, [first], "wrong audience") == [run_id]
    rows = session.execute(
        select(Message.status, Message.error_code, Message.error_text, Message.lease_until).where(
            Message.run_id == run_id
        )
    ).all()
    assert {tuple(row) for row in rows} == {(MessageStatus.SKIPPED, control.CANCELLED_CODE, "wrong audience", None)}


def test_leases_are_one_formula_each() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert leases.backlog(now, 120, 50, 10) == now + timedelta(seconds=125)
    assert leases.retry(4, 120) == timedelta(seconds=124)
    assert leases.send(120) == timedelta(seconds=120)
