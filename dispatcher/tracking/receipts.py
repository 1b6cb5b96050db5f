"""Delivery receipts: provider status events move a message forward, idempotently and in any order.

States only move up: sent < delivered < read. `read` implies `delivered` (Meta skips `delivered`
when a message is read at once). A failure overrides only `sent` (a phone with several devices can
report `delivered` after `failed`). Every move is one conditional UPDATE, so a repeated or late event
changes nothing and the counters move only when the update wins. Events are matched by the provider's
message id within the sender that received it, never by phone number. The message keeps when each
receipt arrived (`delivered_at`, `read_at`): a read message was delivered by then at the latest.

A provider can report on a message before the worker that sent it has stored the provider's id
(the callback races the send's final commit). Such an event is kept in Redis (`keys.early_receipts`)
and applied by the reconciler once the id is known; events still unmatched after an hour are dropped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dispatcher import keys
from dispatcher.campaigns.completion import counts_from_db
from dispatcher.db.models import Message, MessageStatus, Run
from dispatcher.tracking import stats

log = structlog.get_logger(__name__)

# How long an event for a message id we do not know yet is kept, and how many are kept at most.
EARLY_TTL_SECONDS = 3600.0
EARLY_MAX = 100_000

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
    """Apply one event; True if it changed the message. An event for a message id we do not know
    (yet) is kept for `replay_early`. Commits."""
    if _move(session, r, sender_id, event):
        return True
    if event.status in _MOVES and not _known(session, sender_id, event.provider_message_id):
        _stash(r, sender_id, event)
    return False


def replay_early(session: Session, r: redis.Redis, now: float | None = None, limit: int = 1000) -> int:
    """Apply the kept events whose message is now known, in arrival order; drop the expired ones.
    Returns how many changed a message."""
    now = time.time() if now is None else now
    key = keys.early_receipts()
    applied = 0
    kept: list[tuple[bytes, float]] = r.zrange(key, 0, limit - 1, withscores=True)  # type: ignore[assignment]
    for raw, arrived in kept:
        sender_id, *fields = json.loads(raw)
        event = StatusEvent(*fields)
        if _known(session, sender_id, event.provider_message_id):
            applied += _move(session, r, sender_id, event, at=datetime.fromtimestamp(arrived, UTC))
            r.zrem(key, raw)
        elif arrived < now - EARLY_TTL_SECONDS:
            r.zrem(key, raw)
    return applied


def _known(session: Session, sender_id: int, provider_message_id: str) -> bool:
    found = session.scalar(
        select(Message.id).where(Message.provider_message_id == provider_message_id, Message.sender_id == sender_id)
    )
    return found is not None


def _stash(r: redis.Redis, sender_id: int, event: StatusEvent) -> None:
    key = keys.early_receipts()
    if r.zcard(key) >= EARLY_MAX:
        log.warning("early receipts full; event dropped", sender_id=sender_id, status=event.status)
        return
    member = json.dumps([sender_id, event.provider_message_id, event.status, event.error_code, event.error_text])
    r.zadd(key, {member: time.time()}, nx=True)


def _arrival_times(status: str, at: datetime) -> dict[str, object]:
    """The receipt times an event records; `read` also stamps `delivered_at` if no receipt did before."""
    if status == D:
        return {"delivered_at": at}
    if status == R:
        return {"read_at": at, "delivered_at": func.coalesce(Message.delivered_at, at)}
    return {}


def _move(session: Session, r: redis.Redis, sender_id: int, event: StatusEvent, at: datetime | None = None) -> bool:
    """`at`: when the event arrived (now, unless it waited for its message id)."""
    now = datetime.now(UTC)
    stamps = _arrival_times(event.status, at or now)
    for source, deltas in _MOVES.get(event.status, []):
        values: dict[str, object] = {"status": event.status, "updated_at": now, **stamps}
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
