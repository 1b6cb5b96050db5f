"""A campaign with message rows inserted directly (no sending), for export tests and `bench/export.py`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

# What a finished campaign's messages look like, repeated: mostly delivered, some read, sent and failed.
STATUS_MIX = ("delivered", "delivered", "read", "sent", "failed", "delivered", "read", "delivered", "skipped", "sent")
BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Seeded:
    campaign_id: int
    run_ids: list[int]
    messages: int


def seed_campaign(db_url: str, account_id: int, sender_id: int, messages: int, *, runs: int = 1) -> Seeded:
    """A SENT campaign of `runs` runs and `messages` message rows spread over them in turn (bulk inserts of
    `BATCH` rows, one transaction each), with statuses, provider ids, errors and times as sends leave them."""
    from dispatcher.db.models import Campaign, Message, Run
    from dispatcher.db.session import get_engine, session_scope

    now = datetime.now(UTC)
    with session_scope(db_url) as session:
        campaign = Campaign(
            account_id=account_id, name="export", channel="sms", type="SMS", status="SENT", sender_id=sender_id
        )
        session.add(campaign)
        session.flush()
        run_rows = [
            Run(campaign_id=campaign.id, account_id=account_id, fire_at=now + timedelta(minutes=i), started_at=now)
            for i in range(runs)
        ]
        session.add_all(run_rows)
        session.flush()
        campaign_id, run_ids = campaign.id, [run.id for run in run_rows]
    with get_engine(db_url).begin() as connection:
        for batch in _batches(messages, campaign_id, run_ids, account_id, sender_id, now):
            connection.execute(insert(Message), batch)
    return Seeded(campaign_id, run_ids, messages)


def _batches(
    n: int, campaign_id: int, run_ids: list[int], account_id: int, sender_id: int, now: datetime
) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, BATCH):
        yield [
            _row(i, campaign_id, run_ids[i % len(run_ids)], account_id, sender_id, now)
            for i in range(start, min(n, start + BATCH))
        ]


def _row(i: int, campaign_id: int, run_id: int, account_id: int, sender_id: int, now: datetime) -> dict[str, Any]:
    status = STATUS_MIX[i % len(STATUS_MIX)]
    sent = status in ("sent", "delivered", "read")
    return {
        "run_id": run_id,
        "campaign_id": campaign_id,
        "account_id": account_id,
        "sender_id": sender_id,
        "contact_id": i + 1,
        "phone": f"+22507{i:08d}",
        "body": "Votre commande est prete.",
        "status": status,
        "attempts": 1,
        "provider_message_id": f"SM{i:032x}" if sent else None,
        "error_code": "21610" if status == "failed" else ("variable" if status == "skipped" else None),
        "error_text": "Unsubscribed recipient" if status == "failed" else None,
        "sent_at": now if sent else None,
        "delivered_at": now + timedelta(seconds=2) if status in ("delivered", "read") else None,
        "read_at": now + timedelta(minutes=5) if status == "read" else None,
        "created_at": now,
        "updated_at": now,
    }
