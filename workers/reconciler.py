"""Nothing lost: republish messages whose lease expired, and finish runs that went quiet.

A `queued` message past its lease lost its send task (a publish that never happened, a broker
restart); it is simply published again: the claim makes a duplicate harmless. A `sending` message
past its lease belonged to a worker that died mid-send: the request may have reached the provider,
so it is re-sent only through providers that deduplicate by our message id, and is otherwise
marked `unknown` rather than sent twice.

Imports are revived the same way: a queued or running import past its lease is published again, and an
upload whose API process died is deleted (`dispatcher.audience.imports.revive`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatcher.audience import imports
from dispatcher.campaigns import leases
from dispatcher.campaigns.completion import counts_from_db, finish_run
from dispatcher.campaigns.outbox import expired_refs
from dispatcher.contracts import SendRef
from dispatcher.db.models import Message, MessageStatus, Run, RunStatus, Sender
from dispatcher.tracking import receipts, stats
from workers.providers.registry import is_idempotent

BATCH = 1000
Publisher = Callable[[list[SendRef], str], None]


def reconcile(
    session: Session,
    r: redis.Redis,
    publish: Publisher,
    *,
    publish_import: Callable[[int], object] | None = None,
    lease_seconds: float = 120.0,
    now: datetime | None = None,
) -> dict[str, int]:
    now = now or datetime.now(UTC)
    requeued, unknown = _expire_claims(session, r, now)
    republished = _republish_queued(session, now, publish, leases.send(lease_seconds))
    finished = _finish_quiet_runs(session, r)
    receipts_applied = receipts.replay_early(session, r)
    # Without a way to publish imports (callers that reconcile sends only), imports are left as they are.
    revived = imports.Revived()
    if publish_import is not None:
        revived = imports.revive(session, now)
        for import_id in revived.publish:
            publish_import(import_id)
    return {
        "requeued": requeued,
        "unknown": unknown,
        "republished": republished,
        "finished": finished,
        "receipts": receipts_applied,
        "imports": len(revived.publish),
        "uploads_deleted": revived.deleted,
    }


def _expire_claims(session: Session, r: redis.Redis, now: datetime) -> tuple[int, int]:
    rows = session.execute(
        select(Message.id, Message.run_id, Sender.provider, Sender.channel)
        .join(Sender, Sender.id == Message.sender_id)
        .where(Message.status == MessageStatus.SENDING, Message.lease_until < now)
        .limit(BATCH)
    ).all()
    requeued = unknown = 0
    for row in rows:
        resend = is_idempotent(row.provider, row.channel)
        values = (
            {"status": MessageStatus.QUEUED, "lease_until": now}
            if resend
            else {
                "status": MessageStatus.UNKNOWN,
                "lease_until": None,
                "error_code": "lease",
                "error_text": "worker lost during the provider call; not re-sent to avoid a duplicate",
            }
        )
        won = session.execute(
            update(Message)
            .where(Message.id == row.id, Message.status == MessageStatus.SENDING, Message.lease_until < now)
            .values(**values)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if won and resend:
            requeued += 1
        elif won:
            unknown += 1
            stats.bump(r, row.run_id, "unknown")
    return requeued, unknown


def _republish_queued(session: Session, now: datetime, publish: Publisher, lease: timedelta) -> int:
    expired = expired_refs(session, now, BATCH * 10)
    by_channel: dict[str, list[SendRef]] = {}
    for ref, channel in expired:
        by_channel.setdefault(channel, []).append(ref)
    for channel, refs in by_channel.items():
        # Push the lease forward first, so the next reconcile does not publish them again at once.
        for start in range(0, len(refs), BATCH):
            chunk = refs[start : start + BATCH]
            session.execute(
                update(Message).where(Message.id.in_([ref.message_id for ref in chunk])).values(lease_until=now + lease)
            )
            session.commit()
            publish(chunk, channel)
    return len(expired)


def _finish_quiet_runs(session: Session, r: redis.Redis) -> int:
    """Finish runs with nothing in flight; rebuild the counters of running runs Redis lost (a restart
    without persistence), so details and completion keep working."""
    running = session.scalars(select(Run.id).where(Run.status == RunStatus.RUNNING)).all()
    live = stats.read(r, running)
    for run_id in running:
        if live.get(run_id) is None:
            stats.overwrite(r, run_id, counts_from_db(session, run_id))
    return sum(1 for run_id in running if finish_run(session, r, run_id))
