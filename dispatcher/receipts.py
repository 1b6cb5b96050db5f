"""Delivery receipts: provider status events move a message forward, idempotently and in any order.

States only move up: sent < delivered < read. `read` implies `delivered` (Meta skips `delivered`
when a message is read at once). A failure overrides only `sent` (a phone with several devices can
report `delivered` after `failed`). Every move is one conditional UPDATE, so a repeated or late event
changes nothing and the counters move only when the update wins. Events are matched by the provider's
message id within the sender that received it, never by phone number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from sqlalchemy import update
from sqlalchemy.orm import Session

from dispatcher import stats
from dispatcher.completion import counts_from_db
from dispatcher.db.models import Message, MessageStatus, Run

S, D, R, F = MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED

# event -> [(from status, counter deltas)], tried in order; the first UPDATE that wins applies its deltas.
_MOVES: dict[str, list[tuple[str, dict[str, int]]]] = {
    D: [(S, {"delivered": 1})],
    R: [(S, {"delivered": 1, "read": 1}), (D, {"read": 1})],
    F: [(S, {"sent": -1, "failed": 1})],
}


@dataclass(frozen=True, slots=True)
class StatusEvent:
    provider_message_id: str
    status: str  # sent | delivered | read | failed
    error_code: str | None = None
    error_text: str | None = None


def apply(session: Session, r: redis.Redis, sender_id: int, event: StatusEvent) -> bool:
    """Apply one event; True if it changed the message. Commits."""
    for source, deltas in _MOVES.get(event.status, []):
        values: dict[str, object] = {"status": event.status, "updated_at": datetime.now(UTC)}
        if event.status == F:
            values.update(error_code=event.error_code, error_text=event.error_text or "failed after sending")
        row = session.execute(
            update(Message)
            .where(
                Message.provider_message_id == event.provider_message_id,
                Message.sender_id == sender_id,
                Message.status == source,
            )
            .values(**values)
            .returning(Message.run_id)
        ).first()
        session.commit()
        if row is not None:
            if not stats.bump_if_present(r, row.run_id, deltas):
                # The run's counters expired (a late receipt): rebuild them from the database, once.
                finished = session.get_one(Run, row.run_id).finished_at is not None
                stats.overwrite(r, row.run_id, counts_from_db(session, row.run_id), finished=finished)
            return True
    return False
