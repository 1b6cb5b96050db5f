"""Contact imports: a stored file (`uploads`) read into a group by a worker, one batch of rows at a time.

    receiving --(upload stored)--> queued --(claimed)--> running --> done | failed
                                     ^-------(slice over, worker lost)--'

Each batch is one transaction: its contacts upserted (`contacts.upsert_many`), added to the group, and the
import's counters, first errors and checkpoint (`line`, the file line its last row ends on) updated,
the chunks read past deleted, and the claim's lease extended. A worker that dies loses only its batch in
flight; the import is taken up after the checkpoint, so nothing is counted twice, and the upserts make a
batch run twice harmless anyway. A claim is a token: a worker whose lease was taken over finds its
checkpoint refused and stops. The reconciler publishes imports whose task or worker was lost (`revive`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher.audience import contacts, readers
from dispatcher.audience.readers import Format, Row, RowError
from dispatcher.audience.uploads import Chunk, Cutter
from dispatcher.db.models import ContactImport, ContactImportChunk, Group, ImportStatus

# A queued import no worker claimed by then has lost its task: the reconciler publishes it again.
QUEUED_LEASE = timedelta(minutes=2)
# A running import not checkpointed by then has lost its worker: the reconciler queues it again.
RUN_LEASE = timedelta(minutes=5)
# An upload not stored by then has lost its API process (or client): the reconciler deletes it.
RECEIVING_LEASE = timedelta(hours=1)
# An import keeps its first errors; the counters count them all.
MAX_ERRORS = 1000


def begin(session: Session, account_id: int, group_id: int, fmt: Format, country: str | None) -> int:
    """A new import receiving its file (not shown until `queue`)."""
    record = ContactImport(
        account_id=account_id,
        group_id=group_id,
        format=fmt,
        country=country,
        status=ImportStatus.RECEIVING,
        lease_until=datetime.now(UTC) + RECEIVING_LEASE,
    )
    session.add(record)
    session.commit()
    return record.id


def store(session: Session, import_id: int, chunk: Chunk) -> None:
    """Store one chunk of the upload, in its own short transaction (SQLite has one writer at a time)."""
    session.add(ContactImportChunk(import_id=import_id, seq=chunk.seq, first_line=chunk.first_line, data=chunk.text))
    session.commit()


def queue(session: Session, import_id: int, cutter: Cutter) -> ContactImport:
    """The upload is stored whole: the import is queued for a worker (publish it after this commits)."""
    record = session.get_one(ContactImport, import_id)
    record.columns = cutter.columns
    record.ignored_columns = cutter.ignored
    record.line = cutter.start
    record.status = ImportStatus.QUEUED
    record.lease_until = datetime.now(UTC) + QUEUED_LEASE
    session.commit()
    return record


def discard(session: Session, import_id: int) -> None:
    """Forget an upload that was refused or interrupted, with what was stored of it."""
    session.rollback()
    session.execute(delete(ContactImportChunk).where(ContactImportChunk.import_id == import_id))
    session.execute(delete(ContactImport).where(ContactImport.id == import_id))
    session.commit()


def get(session: Session, account_id: int, import_id: int | None) -> ContactImport | None:
    """The account's import, once its upload is stored."""
    record = session.get(ContactImport, import_id) if import_id is not None else None
    if record is None or record.account_id != account_id or record.status == ImportStatus.RECEIVING:
        return None
    return record


class Outcome(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    PAUSED = "paused"  # its time slice is over: queued again, to be published again
    SKIPPED = "skipped"  # not queued (another worker has it, or it is over), or the claim was lost


class LostClaim(Exception):
    """The checkpoint was refused: the import was taken over (or deleted) since this worker claimed it."""


@dataclass(slots=True)
class _Tally:
    """The import's counters as this run moves them, written at each checkpoint."""

    rows: int
    created: int
    updated: int
    invalid: int
    errors: list[dict[str, Any]]
    ignored: set[str]
    line: int
    errors_changed: bool = False

    @classmethod
    def of(cls, record: ContactImport) -> _Tally:
        ignored = set(record.ignored_columns or ())
        return cls(
            record.rows, record.created, record.updated, record.invalid, list(record.errors), ignored, record.line
        )

    def refuse(self, error: RowError) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error.to_json())
            self.errors_changed = True


def run(session: Session, import_id: int, token: str, *, batch_rows: int, until: float | None = None) -> Outcome:
    """Claim a queued import with `token` and import its rows from its checkpoint on; stop at a batch
    boundary once `time.monotonic()` passes `until`, queueing it again (PAUSED)."""
    if not _claim(session, import_id, token):
        return Outcome.SKIPPED
    record = session.get_one(ContactImport, import_id)
    if record.group_id is None:
        return fail(session, import_id, token, "the group was deleted before the import started")
    tally = _Tally.of(record)
    source = _Lines(session, import_id, after=record.line)
    try:
        for batch in _batches(_rows(record, source, tally), batch_rows):
            _apply(session, record.account_id, record.group_id, batch, tally)
            _checkpoint(session, import_id, token, tally, keep_from=source.seq)
            if until is not None and time.monotonic() > until:
                return _release(session, import_id, token)
    except IntegrityError:
        session.rollback()
        if session.get(Group, record.group_id) is None:
            return fail(session, import_id, token, "the group was deleted during the import")
        raise
    except LostClaim:
        session.rollback()
        return Outcome.SKIPPED
    return _finish(session, import_id, token, tally)


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while batch := list(islice(rows, size)):
        yield batch


def _rows(record: ContactImport, source: Iterable[str], tally: _Tally) -> Iterator[Row]:
    first = record.line + 1
    if record.format == Format.NDJSON:
        return readers.ndjson_rows(source, first, record.country, tally.ignored)
    return readers.csv_rows(source, record.columns or [], first, record.country)


class _Lines:
    """The stored lines after line `after`, chunk by chunk; `seq` is the chunk being read."""

    def __init__(self, session: Session, import_id: int, *, after: int) -> None:
        self._session = session
        self._import_id = import_id
        self._after = after
        self.seq = 0

    def __iter__(self) -> Iterator[str]:
        chunks = ContactImportChunk
        located = self._session.execute(
            select(chunks.seq, chunks.first_line)
            .where(chunks.import_id == self._import_id, chunks.first_line <= self._after + 1)
            .order_by(chunks.seq.desc())
            .limit(1)
        ).first()
        if located is None:
            return
        self.seq, first_line = located
        skip = self._after + 1 - first_line
        while True:
            text = self._session.scalar(
                select(chunks.data).where(chunks.import_id == self._import_id, chunks.seq == self.seq)
            )
            if text is None:
                return
            yield from islice(readers.lines([text]), skip, None)
            skip = 0
            self.seq += 1


def _apply(session: Session, account_id: int, group_id: int, batch: list[Row], tally: _Tally) -> None:
    valid = [row for row in batch if row.contact is not None]
    result = contacts.upsert_many(session, account_id, [row.contact for row in valid if row.contact is not None])
    contacts.add_members(session, group_id, (i for i in result.ids if i is not None))
    refused = {index: valid[index].line for index in result.problems}
    for row in batch:
        if row.error is not None:
            tally.refuse(row.error)
    for index, line in sorted(refused.items(), key=lambda item: item[1]):
        tally.refuse(RowError(line, None, result.problems[index]))
    tally.rows += len(batch)
    tally.created += result.created
    tally.updated += result.updated
    tally.line = batch[-1].end


def _checkpoint(session: Session, import_id: int, token: str, tally: _Tally, *, keep_from: int) -> None:
    """Record the batch's counts under our claim, extend the lease, delete the chunks read past, commit."""
    values: dict[str, Any] = {
        "rows": tally.rows,
        "created": tally.created,
        "updated": tally.updated,
        "invalid": tally.invalid,
        "line": tally.line,
        "ignored_columns": sorted(tally.ignored),
        "lease_until": datetime.now(UTC) + RUN_LEASE,
    }
    if tally.errors_changed:
        values["errors"] = tally.errors
        tally.errors_changed = False
    if not _update_claimed(session, import_id, token, values):
        raise LostClaim(import_id)
    _delete_chunks(session, import_id, before=keep_from)
    session.commit()


def _claim(session: Session, import_id: int, token: str) -> bool:
    now = datetime.now(UTC)
    claimed = session.execute(
        update(ContactImport)
        .where(ContactImport.id == import_id, ContactImport.status == ImportStatus.QUEUED)
        .values(
            status=ImportStatus.RUNNING,
            claim_token=token,
            lease_until=now + RUN_LEASE,
            started_at=func.coalesce(ContactImport.started_at, now),
            updated_at=now,
        )
    )
    session.commit()
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _update_claimed(session: Session, import_id: int, token: str, values: dict[str, Any]) -> bool:
    result = session.execute(
        update(ContactImport)
        .where(ContactImport.id == import_id, ContactImport.claim_token == token)
        .values(**values, updated_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _delete_chunks(session: Session, import_id: int, *, before: int | None = None) -> None:
    statement = delete(ContactImportChunk).where(ContactImportChunk.import_id == import_id)
    if before is not None:
        statement = statement.where(ContactImportChunk.seq < before)
    session.execute(statement)


def _finish(session: Session, import_id: int, token: str, tally: _Tally) -> Outcome:
    return _end(session, import_id, token, Outcome.DONE, {"errors": tally.errors})


def fail(session: Session, import_id: int, token: str, reason: str) -> Outcome:
    """End the claimed import `failed`, with why: what its batches imported stays, the file is deleted."""
    session.rollback()
    return _end(session, import_id, token, Outcome.FAILED, {"status_reason": reason})


def _end(session: Session, import_id: int, token: str, outcome: Outcome, values: dict[str, Any]) -> Outcome:
    final = {"status": outcome.value, "finished_at": datetime.now(UTC), "claim_token": None, "lease_until": None}
    if not _update_claimed(session, import_id, token, {**values, **final}):
        session.rollback()
        return Outcome.SKIPPED
    _delete_chunks(session, import_id)
    session.commit()
    return outcome


def _release(session: Session, import_id: int, token: str) -> Outcome:
    """Queue the claimed import again, for a new task to take up after its checkpoint."""
    values = {"status": ImportStatus.QUEUED, "claim_token": None, "lease_until": datetime.now(UTC) + QUEUED_LEASE}
    won = _update_claimed(session, import_id, token, values)
    session.commit()
    return Outcome.PAUSED if won else Outcome.SKIPPED


def release(session: Session, import_id: int, token: str) -> bool:
    """Give back a claim after a failure the task retries (a database that stopped answering)."""
    session.rollback()
    return _release(session, import_id, token) == Outcome.PAUSED


@dataclass(frozen=True, slots=True)
class Revived:
    """What the reconciler found: imports to publish again, and abandoned uploads it deleted."""

    publish: list[int] = field(default_factory=list)
    deleted: int = 0


def revive(session: Session, now: datetime) -> Revived:
    """Queue again the imports whose task or worker was lost (a queued or running import past its lease),
    to be published again; delete the uploads whose API process was lost."""
    expired = ContactImport.lease_until < now
    unclaimed = ContactImport.status.in_((ImportStatus.QUEUED, ImportStatus.RUNNING))
    lost = session.scalars(select(ContactImport.id).where(unclaimed, expired).limit(100)).all()
    if lost:
        # A worker that checkpoints meanwhile keeps its claim (its lease is no longer expired); publishing
        # its import again is harmless: the task finds it running and leaves it.
        session.execute(
            update(ContactImport)
            .where(ContactImport.id.in_(lost), unclaimed, expired)
            .values(status=ImportStatus.QUEUED, claim_token=None, lease_until=now + QUEUED_LEASE)
        )
    abandoned = session.scalars(
        select(ContactImport.id).where(ContactImport.status == ImportStatus.RECEIVING, expired).limit(100)
    ).all()
    for import_id in abandoned:
        session.execute(delete(ContactImportChunk).where(ContactImportChunk.import_id == import_id))
        session.execute(delete(ContactImport).where(ContactImport.id == import_id))
    session.commit()
    return Revived(list(lost), len(abandoned))
