"""`dispatcher.tracking.receipts`: the times receipts leave on a message (`delivered_at`, `read_at`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis
from sqlalchemy import insert, select, update

from dispatcher.db.models import Message
from dispatcher.db.session import get_engine, session_scope
from dispatcher.tracking import receipts
from dispatcher.tracking.receipts import StatusEvent
from tests.support.databases import sandbox_account
from tests.support.messages import seed_campaign


def sent_message(db_url: str, provider_id: str | None) -> tuple[int, int]:
    """A sent message with this provider id: (its id, its sender)."""
    account_id, _, sender_id = sandbox_account(db_url, "receipts")
    campaign = seed_campaign(db_url, account_id, sender_id, 0)
    row = {
        "run_id": campaign.run_ids[0],
        "campaign_id": campaign.campaign_id,
        "account_id": account_id,
        "sender_id": sender_id,
        "contact_id": 1,
        "phone": "+2250700000001",
        "status": "sent",
        "provider_message_id": provider_id,
        "sent_at": datetime.now(UTC),
    }
    with get_engine(db_url).begin() as connection:
        message_id = connection.execute(insert(Message).returning(Message.id), [row]).scalar_one()
    return message_id, sender_id


def times(db_url: str, message_id: int) -> tuple[str, datetime | None, datetime | None]:
    with session_scope(db_url) as session:
        row = session.execute(
            select(Message.status, Message.delivered_at, Message.read_at).where(Message.id == message_id)
        ).one()
    return row.status, row.delivered_at, row.read_at


def test_delivered_then_read_keeps_the_delivery_time(db_url: str, redis_url: str) -> None:
    message_id, sender_id = sent_message(db_url, "SM-times-1")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with session_scope(db_url) as session:
        assert receipts.apply(session, r, sender_id, StatusEvent("SM-times-1", "delivered"))
        delivered = times(db_url, message_id)[1]
        assert receipts.apply(session, r, sender_id, StatusEvent("SM-times-1", "read"))
        assert not receipts.apply(session, r, sender_id, StatusEvent("SM-times-1", "delivered"))  # late: no change
    status, delivered_at, read_at = times(db_url, message_id)
    assert status == "read" and delivered_at == delivered
    assert delivered is not None and read_at is not None and delivered <= read_at


def test_read_without_a_delivery_receipt_was_delivered_when_read(db_url: str, redis_url: str) -> None:
    message_id, sender_id = sent_message(db_url, "SM-times-2")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with session_scope(db_url) as session:
        assert receipts.apply(session, r, sender_id, StatusEvent("SM-times-2", "read"))
    status, delivered_at, read_at = times(db_url, message_id)
    assert status == "read" and read_at is not None and delivered_at == read_at


def test_an_early_receipt_keeps_the_time_it_arrived(db_url: str, redis_url: str) -> None:
    # Given a delivery receipt that arrives before the worker stored the provider's id
    message_id, sender_id = sent_message(db_url, None)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with session_scope(db_url) as session:
        before = datetime.now(UTC)
        assert not receipts.apply(session, r, sender_id, StatusEvent("SM-times-3", "delivered"))
        time.sleep(0.05)
        # When the id is stored and the reconciler replays the event
        session.execute(update(Message).where(Message.id == message_id).values(provider_message_id="SM-times-3"))
        session.commit()
        replayed_at = datetime.now(UTC)
        assert receipts.replay_early(session, r) >= 1
    # Then the delivery time is when the receipt arrived, not when it was replayed
    status, delivered_at, _ = times(db_url, message_id)
    assert status == "delivered" and delivered_at is not None and before <= delivered_at < replayed_at
