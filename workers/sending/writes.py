"""The send path's writes to message rows, one statement per batch, on an autocommit connection.

Every write is conditional on the status it expects (`UPDATE ... WHERE id IN (...) AND status = ...`),
so it needs no transaction of its own: on the autocommit engine each statement commits by itself and
nothing goes through the ORM's unit of work. A batch's claim and its final write are one statement each,
and both say which rows they won (`RETURNING`): only those are sent, and only those are counted.

* claim: `queued -> sending`, wins once; a duplicated or redelivered task finds nothing to claim.
* finish: `sending -> <final>` with each row's own status, code and provider id (one CASE per column).
* release: `sending -> queued` for a retry or a pause; skip: `-> skipped` (cancelled); park: a paused
  campaign's queued message gets a long lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, CursorResult, Executable, Table, Update, bindparam, case, func, update
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


class Final(NamedTuple):
    """A claimed message's outcome: `sending -> status`."""

    message_id: int
    status: str
    code: str | None = None
    text: str | None = None
    provider_id: str | None = None


class Release(NamedTuple):
    """A claimed message put back to `queued`, leased until its republished task is due."""

    message_id: int
    lease: timedelta
    code: str | None
    text: str | None
    attempt: bool  # False: the call did not count (a throttle, a pause), so the claim's attempt is given back


def _where(status: str) -> Update:
    """An UPDATE of the messages `:ids` that only applies to those still in `status`."""
    return update(_m).where(_m.c.id.in_(bindparam("ids", expanding=True)), _m.c.status == status)


CLAIM = (
    _where(MessageStatus.QUEUED)
    .values(
        status=MessageStatus.SENDING,
        attempts=_m.c.attempts + 1,
        lease_until=bindparam("lease"),
        updated_at=bindparam("now"),
    )
    .returning(
        _m.c.id,
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
RELEASE = (
    update(_m)
    .where(_m.c.id == bindparam("mid"), _m.c.status == MessageStatus.SENDING)
    .values(
        status=MessageStatus.QUEUED,
        attempts=_m.c.attempts - bindparam("undo"),
        lease_until=bindparam("lease"),
        error_code=bindparam("code"),
        error_text=bindparam("text"),
        updated_at=bindparam("now"),
    )
)
SKIP = (
    _where(MessageStatus.QUEUED).values(**cancelled_values(bindparam("text"), bindparam("now"))).returning(_m.c.run_id)
)
SKIP_CLAIMED = (
    _where(MessageStatus.SENDING).values(**cancelled_values(bindparam("text"), bindparam("now"))).returning(_m.c.run_id)
)
PARK = _where(MessageStatus.QUEUED).values(lease_until=bindparam("lease"))


def _padded(n: int) -> int:
    """The statement size for n rows: the next power of two. One compiled statement per batch size cost
    182 MiB of RSS and up to 29 ms of compiling each for 128 sizes; eight sizes bound both."""
    return 1 << max(0, n - 1).bit_length()


@lru_cache(maxsize=16)
def _finish_statement(n: int) -> Update:
    """`sending -> <each row's final status>` for n rows: one CASE per column, keyed by the row's id. Built
    once per padded size (`_padded`), so SQLAlchemy compiles each shape once. Typed parameters: PostgreSQL
    must know a CASE's type even when every value in it is NULL."""

    def per_row(name: str, column: Any) -> Any:
        whens = ((_m.c.id == bindparam(f"i{k}"), bindparam(f"{name}{k}", type_=column.type)) for k in range(n))
        return case(*whens)

    ids: list[Any] = [bindparam(f"i{k}") for k in range(n)]
    return (
        update(_m)
        .where(_m.c.id.in_(ids), _m.c.status == MessageStatus.SENDING)
        .values(
            status=per_row("s", _m.c.status),
            error_code=per_row("c", _m.c.error_code),
            error_text=per_row("t", _m.c.error_text),
            provider_message_id=func.coalesce(per_row("p", _m.c.provider_message_id), _m.c.provider_message_id),
            sent_at=func.coalesce(per_row("a", _m.c.sent_at), _m.c.sent_at),
            lease_until=None,
            updated_at=bindparam("now"),
        )
        .returning(_m.c.id)
    )


def run(conn: Connection, statement: Executable, params: Any) -> CursorResult[Any]:
    """Execute one write; once more on a fresh connection if the pooled one was dead.

    The autocommit pool does not ping on checkout, so a connection the server closed meanwhile (a restart,
    an idle timeout) fails on its first statement, which never ran; SQLAlchemy then drops the pool's
    connections and the retry reconnects. (A server dying mid-statement is a crashed batch: the
    reconciler settles its messages when their leases expire.)
    """
    try:
        return conn.execute(statement, params)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        conn.rollback()
        return conn.execute(statement, params)


def claim(conn: Connection, message_ids: Sequence[int], lease: timedelta) -> dict[int, Claimed]:
    """`queued -> sending` with a lease, for a batch; the rows this call won, by id (a message another
    task has, or had, is not among them)."""
    if not message_ids:
        return {}
    now = datetime.now(UTC)
    rows: list[Any] = list(run(conn, CLAIM, {"ids": list(message_ids), "lease": now + lease, "now": now}))
    claimed = {}
    for mid, run_id, campaign_id, account_id, contact_id, phone, body, params, attempts in rows:
        claimed[mid] = Claimed(
            mid, run_id, campaign_id, account_id, contact_id, phone, body or "", tuple(params or ()), attempts
        )
    return claimed


def finish(conn: Connection, finals: Sequence[Final]) -> set[int]:
    """`sending -> status` for each row, in one statement; the ids this call won (only those may be counted)."""
    if not finals:
        return set()
    now = datetime.now(UTC)
    params: dict[str, Any] = {"now": now}
    size = _padded(len(finals))
    # Padding rows name message 0, which does not exist: they match nothing.
    padded = [*finals, *(Final(0, MessageStatus.SENDING) for _ in range(size - len(finals)))]
    for k, final in enumerate(padded):
        params.update(
            {
                f"i{k}": final.message_id,
                f"s{k}": final.status,
                f"c{k}": final.code,
                f"t{k}": final.text,
                f"p{k}": final.provider_id,
                f"a{k}": now if final.status == MessageStatus.SENT else None,
            }
        )
    return {row[0] for row in run(conn, _finish_statement(size), params)}


def release(conn: Connection, releases: Sequence[Release]) -> None:
    """`sending -> queued` for each row (one executemany)."""
    if not releases:
        return
    now = datetime.now(UTC)
    params = [
        {"mid": r.message_id, "undo": 0 if r.attempt else 1, "lease": now + r.lease, "code": r.code, "text": r.text}
        | {"now": now}
        for r in releases
    ]
    run(conn, RELEASE, params)


def skip(conn: Connection, message_ids: Sequence[int], reason: str, *, claimed: bool = False) -> list[int]:
    """`queued -> skipped` (or `sending -> skipped` for rows this batch claimed): their campaign was
    cancelled. Returns the run of each row this call skipped."""
    if not message_ids:
        return []
    statement = SKIP_CLAIMED if claimed else SKIP
    params = {"ids": list(message_ids), "now": datetime.now(UTC), "text": reason}
    return [int(row[0]) for row in run(conn, statement, params)]


def park(conn: Connection, message_ids: Sequence[int]) -> None:
    """Keep a paused campaign's queued messages out of the reconciler's way until resume."""
    if message_ids:
        run(conn, PARK, {"ids": list(message_ids), "lease": datetime.now(UTC) + leases.PARKED})
