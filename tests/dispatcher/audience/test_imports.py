"""Running an import on SQLite and PostgreSQL: batches, counters, checkpoints, claims and revival."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatcher.audience import contacts, imports, uploads
from dispatcher.audience.accounts import create_account
from dispatcher.audience.imports import Outcome
from dispatcher.audience.readers import Format
from dispatcher.db.models import Contact, ContactImport, ContactImportChunk, Group, GroupMember, ImportStatus


@pytest.fixture
def group(session: Session) -> Group:
    account, _ = create_account(session, f"imports-{uuid.uuid4().hex[:6]}")
    session.flush()
    made = Group(account_id=account.id, name="Clients")
    session.add(made)
    session.commit()
    return made


def csv_file(n: int, *, bad_every: int = 0) -> bytes:
    rows = [
        b"bad-phone,Nobody\n" if bad_every and i % bad_every == 0 else b"22507%08d,Name %d\n" % (i, i)
        for i in range(1, n + 1)
    ]
    return b"phone,name\n" + b"".join(rows)


def stored(session: Session, group: Group, body: bytes, monkeypatch: pytest.MonkeyPatch) -> int:
    """The file stored as the API stores it (small chunks), queued."""
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 200)
    import_id = imports.begin(session, group.account_id, group.id, Format.CSV, None)
    cutter = uploads.Cutter(Format.CSV, max_rows=100_000)
    for chunk in cutter.feed(body) + cutter.close():
        imports.store(session, import_id, chunk)
    imports.queue(session, import_id, cutter)
    return import_id


def record(session: Session, import_id: int) -> ContactImport:
    session.expire_all()
    return session.get_one(ContactImport, import_id)


def count(session: Session, model: type[Contact] | type[GroupMember] | type[ContactImportChunk], **where: int) -> int:
    query = select(func.count()).select_from(model).filter_by(**where)
    return session.scalar(query) or 0


def test_a_file_is_imported_in_batches_with_its_bad_rows_by_line(
    session: Session, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_id = stored(session, group, csv_file(250, bad_every=50), monkeypatch)
    assert count(session, ContactImportChunk, import_id=import_id) > 10

    assert imports.run(session, import_id, "t1", batch_rows=40) == Outcome.DONE

    done = record(session, import_id)
    assert (done.status, done.rows, done.created, done.updated, done.invalid) == ("done", 250, 245, 0, 5)
    # Row i is on line i + 1 (the header is line 1)
    assert [(e["line"], e["column"]) for e in done.errors] == [
        (51, "phone"),
        (101, "phone"),
        (151, "phone"),
        (201, "phone"),
        (251, "phone"),
    ]
    assert done.finished_at is not None and done.claim_token is None
    assert count(session, GroupMember, group_id=group.id) == 245
    assert count(session, ContactImportChunk, import_id=import_id) == 0


def test_the_same_file_again_creates_nothing(session: Session, group: Group, monkeypatch: pytest.MonkeyPatch) -> None:
    first = stored(session, group, csv_file(120), monkeypatch)
    imports.run(session, first, "t1", batch_rows=50)
    again = stored(session, group, csv_file(120), monkeypatch)
    imports.run(session, again, "t2", batch_rows=50)
    repeated = record(session, again)
    assert (repeated.rows, repeated.created, repeated.updated, repeated.invalid) == (120, 0, 120, 0)
    assert count(session, Contact, account_id=group.account_id) == 120
    assert count(session, GroupMember, group_id=group.id) == 120


def test_a_worker_lost_mid_import_is_taken_up_after_its_checkpoint(
    session: Session, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_id = stored(session, group, csv_file(300, bad_every=7), monkeypatch)
    # Given a worker that dies during its fourth batch (its transaction is never committed)
    real = contacts.add_members
    calls = iter(range(100))

    def dying(*args: object, **kwargs: object) -> int:
        if next(calls) == 3:
            raise KeyboardInterrupt("worker killed")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(contacts, "add_members", dying)
    with pytest.raises(KeyboardInterrupt):
        imports.run(session, import_id, "dead", batch_rows=40)
    session.rollback()
    halfway = record(session, import_id)
    assert (halfway.status, halfway.rows) == ("running", 120)
    # When the reconciler finds its lease expired and a new worker takes it up
    later = datetime.now(UTC) + imports.RUN_LEASE + timedelta(seconds=1)
    assert import_id in imports.revive(session, later).publish
    assert imports.run(session, import_id, "alive", batch_rows=40) == Outcome.DONE
    # Then every row is counted once, as in a run that never stopped
    done = record(session, import_id)
    invalid = len(range(7, 301, 7))
    assert (done.rows, done.created, done.updated, done.invalid) == (300, 300 - invalid, 0, invalid)
    assert [e["line"] for e in done.errors] == [i + 1 for i in range(7, 301, 7)]
    assert count(session, Contact, account_id=group.account_id) == 300 - invalid


def test_an_import_stops_after_its_slice_and_goes_on_from_there(
    session: Session, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_id = stored(session, group, csv_file(100), monkeypatch)
    assert imports.run(session, import_id, "t1", batch_rows=30, until=0) == Outcome.PAUSED
    paused = record(session, import_id)
    assert (paused.status, paused.rows, paused.claim_token) == ("queued", 30, None)
    assert imports.run(session, import_id, "t2", batch_rows=30) == Outcome.DONE
    assert (record(session, import_id).rows, record(session, import_id).created) == (100, 100)


def test_a_claimed_import_is_left_to_its_worker(
    session: Session, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_id = stored(session, group, csv_file(10), monkeypatch)
    assert imports._claim(session, import_id, "first")
    assert imports.run(session, import_id, "second", batch_rows=5) == Outcome.SKIPPED
    # A worker whose claim was taken over has its checkpoint refused
    session.execute(ContactImport.__table__.update().values(claim_token="other"))
    session.commit()
    tally = imports._Tally.of(record(session, import_id))
    with pytest.raises(imports.LostClaim):
        imports._checkpoint(session, import_id, "first", tally, keep_from=0)


def test_an_import_whose_group_was_deleted_fails(
    session: Session, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_id = stored(session, group, csv_file(10), monkeypatch)
    session.delete(group)
    session.commit()
    assert imports.run(session, import_id, "t", batch_rows=5) == Outcome.FAILED
    failed = record(session, import_id)
    assert failed.status == ImportStatus.FAILED and "group was deleted" in (failed.status_reason or "")
    assert count(session, ContactImportChunk, import_id=import_id) == 0


def test_the_errors_kept_are_the_first_ones(session: Session, group: Group, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_ERRORS", 3)
    import_id = stored(session, group, csv_file(20, bad_every=2), monkeypatch)
    imports.run(session, import_id, "t", batch_rows=4)
    done = record(session, import_id)
    assert done.invalid == 10 and [e["line"] for e in done.errors] == [3, 5, 7]


def test_lost_tasks_are_published_again_and_abandoned_uploads_deleted(
    session: Session, group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = stored(session, group, csv_file(5), monkeypatch)
    receiving = imports.begin(session, group.account_id, group.id, Format.CSV, None)
    now = datetime.now(UTC)
    assert queued not in imports.revive(session, now).publish  # within their leases
    revived = imports.revive(session, now + imports.RECEIVING_LEASE + timedelta(seconds=1))
    assert queued in revived.publish and revived.deleted >= 1
    assert session.get(ContactImport, receiving) is None
    assert imports.get(session, group.account_id, queued) is not None
    assert imports.get(session, group.account_id + 1, queued) is None
