"""The send path's writes to one message row: conditional UPDATEs built once, run on an autocommit connection.

Every write is a single `UPDATE ... WHERE id = :id AND status = <expected>`, so it needs no transaction of
its own: on the autocommit engine each statement commits by itself (no BEGIN and COMMIT round trips) and
nothing goes through the ORM's unit of work or its bulk-update evaluation. The statements are module
constants, so SQLAlchemy computes their cache keys once and compiles each once per dialect.

* claim: `queued -> sending`, wins once; a duplicated or redelivered task finds nothing to claim.
* finish: `sending -> <final>`, wins once; the caller counts the outcome only when it did.
* release: `sending -> queued` for a retry; skip: `queued -> skipped` (cancelled); park: a paused
  campaign's queued message gets a long lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, CursorResult, Executable, Table, Update, bindparam, update
from sqlalchemy.exc import DBAPIError

from dispatcher.campaigns import leases
from dispatcher.campaigns.control import cancelled_values
from dispatcher.db.models import Message, MessageStatus

_m: Table = Message.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    run_id: int
    campaign_id: int
    account_id: int
    contact_id: int
    phone: str
    body: str
    params: tuple[str, ...]
    attempts: int


def _where(status: str) -> Update:
    """An UPDATE of one message (`:mid`) that only applies while it is in `status`."""
    return update(_m).where(_m.c.id == bindparam("mid"), _m.c.status == status)


CLAIM = (
    _where(MessageStatus.QUEUED)
    .values(
        status=MessageStatus.SENDING,
        attempts=_m.c.attempts + 1,
        lease_until=bindparam("lease"),
        updated_at=bindparam("now"),
    )
    .returning(
        _m.c.run_id,
        _m.c.campaign_id,
        _m.c.account_id,
        _m.c.contact_id,
        _m.c.phone,
        _m.c.body,
        _m.c.template_params,
        _m.c.attempts,
    )
)
_FINAL: dict[str, Any] = {
    "status": bindparam("final"),
    "lease_until": None,
    "updated_at": bindparam("now"),
    "error_code": bindparam("code"),
    "error_text": bindparam("text"),
}
FINISH = _where(MessageStatus.SENDING).values(**_FINAL)
FINISH_SENT = _where(MessageStatus.SENDING).values(
    **_FINAL, provider_message_id=bindparam("provider_id"), sent_at=bindparam("now")
)
RELEASE = _where(MessageStatus.SENDING).values(
    status=MessageStatus.QUEUED,
    # A throttled call is not an attempt: `undo` gives back the one the claim counted.
    attempts=_m.c.attempts - bindparam("undo"),
    lease_until=bindparam("lease"),
    error_code=bindparam("code"),
    error_text=bindparam("text"),
    updated_at=bindparam("now"),
)
SKIP = (
    _where(MessageStatus.QUEUED).values(**cancelled_values(bindparam("text"), bindparam("now"))).returning(_m.c.run_id)
)
PARK = _where(MessageStatus.QUEUED).values(lease_until=bindparam("lease"))


def run(conn: Connection, statement: Executable, params: dict[str, Any]) -> CursorResult[Any]:
    """Execute one write; once more on a fresh connection if the pooled one was dead.

    The autocommit pool does not ping on checkout, so a connection the server closed meanwhile (a restart,
    an idle timeout) fails on its first statement, which never ran; SQLAlchemy then drops the pool's
    connections and the retry reconnects. (A server dying mid-statement is a crashed send, as before:
    the reconciler settles the message when its lease expires.)
    """
    try:
        return conn.execute(statement, params)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        conn.rollback()
        return conn.execute(statement, params)


def claim(conn: Connection, message_id: int, lease: timedelta) -> Claimed | None:
    """`queued -> sending` with a lease; None when another task has it (or had it)."""
    now = datetime.now(UTC)
    row = run(conn, CLAIM, {"mid": message_id, "lease": now + lease, "now": now}).first()
    if row is None:
        return None
    run_id, campaign_id, account_id, contact_id, phone, body, params, attempts = tuple(row)
    return Claimed(
        message_id, run_id, campaign_id, account_id, contact_id, phone, body or "", tuple(params or ()), attempts
    )


def finish(
    conn: Connection, message_id: int, status: str, code: str | None, text: str | None, provider_id: str | None
) -> bool:
    """`sending -> status`; True if this call won (only then may the outcome be counted)."""
    params = {"mid": message_id, "final": status, "now": datetime.now(UTC), "code": code, "text": text}
    if provider_id is None:
        return bool(run(conn, FINISH, params).rowcount)
    return bool(run(conn, FINISH_SENT, {**params, "provider_id": provider_id}).rowcount)


def release(
    conn: Connection, message_id: int, lease: timedelta, code: str | None, text: str | None, *, attempt: bool
) -> None:
    """`sending -> queued`, leased until the republished task is due (plus the send lease)."""
    now = datetime.now(UTC)
    params = {"mid": message_id, "undo": 0 if attempt else 1, "lease": now + lease, "code": code, "text": text}
    run(conn, RELEASE, {**params, "now": now})


def skip(conn: Connection, message_id: int, reason: str) -> int | None:
    """`queued -> skipped` (its campaign was cancelled); the message's run when this call did it."""
    row = run(conn, SKIP, {"mid": message_id, "now": datetime.now(UTC), "text": reason}).first()
    return None if row is None else int(row[0])


def park(conn: Connection, message_id: int) -> None:
    """Keep a paused campaign's queued message out of the reconciler's way until resume."""
    run(conn, PARK, {"mid": message_id, "lease": datetime.now(UTC) + leases.PARKED})
