"""Contacts and groups of an account: look-ups and the phone-keyed upserts shared by the API, submission
and imports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dispatcher.audience import bulk
from dispatcher.db.models import Contact, Group, GroupMember, utcnow
from dispatcher.inputs import ascii_digits, fields_count_problem


@dataclass(slots=True)
class ContactFields:
    """Fields a submission may set on a contact; None means "leave as it is"."""

    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    sex: str | None = None
    fields: dict[str, Any] | None = None


# Resource ids are 32-bit integer columns; a larger number cannot name a row (and PostgreSQL would refuse it).
MAX_ID = 2**31 - 1


def parse_id(raw: object) -> int | None:
    """Our ids are integers; clients may send them as strings. Anything else matches nothing."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and ascii_digits(raw.strip()) and len(raw.strip()) <= 10:
        raw = int(raw.strip())
    if isinstance(raw, int) and 0 < raw <= MAX_ID:
        return raw
    return None


def by_ids(session: Session, account_id: int, ids: Iterable[int]) -> dict[int, Contact]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Contact).where(Contact.account_id == account_id, Contact.id.in_(wanted)))
    return {c.id: c for c in rows}


def by_phones(session: Session, account_id: int, phones: Iterable[str]) -> dict[str, Contact]:
    found: dict[str, Contact] = {}
    wanted = list(set(phones))
    # Chunked: SQLite caps bound parameters, and a 100k IN-list is slow everywhere.
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        rows = session.scalars(select(Contact).where(Contact.account_id == account_id, Contact.phone.in_(chunk)))
        found.update((c.phone, c) for c in rows)
    return found


def ensure(session: Session, account_id: int, phones: Iterable[str]) -> tuple[dict[str, Contact], set[str]]:
    """The account's contacts with these phones, creating the missing ones; and which phones this call created.

    Two submissions naming the same new phone at once must not fail on the unique (account, phone): the
    insert skips phones that exist (ON CONFLICT DO NOTHING, waiting for a concurrent insert to commit on
    PostgreSQL), then the rows are read back, whoever inserted them.
    """
    wanted = set(phones)
    found = by_phones(session, account_id, wanted)
    missing = sorted(wanted - set(found))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table: Table = Contact.__table__  # type: ignore[assignment]
    created: set[str] = set()
    now = utcnow()
    # On the table, not the ORM entity, and as one executemany of a statement compiled once (SQLAlchemy
    # batches it into multi-row INSERTs with RETURNING): building a VALUES statement per chunk was compiled
    # anew each time, and the ORM's bulk path on top of it cost most of a 100k-contact submission.
    statement = insert(table).on_conflict_do_nothing(index_elements=["account_id", "phone"]).returning(table.c.phone)
    rows = [
        {"account_id": account_id, "phone": phone, "fields": {}, "created_at": now, "updated_at": now}
        for phone in missing
    ]
    if rows:
        created.update(session.scalars(statement, rows))
    if missing:
        found.update(by_phones(session, account_id, missing))
    return found, created


@dataclass(slots=True)
class NewContact:
    """A contact a submission creates: filled in memory (`apply` works on it as on a saved one), then written
    with the others in one statement (`create`), never an ORM object: a 100k-contact audience of new
    numbers would otherwise be 100k objects loaded back and flushed."""

    phone: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    sex: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    id: int = 0  # set by `create`
    updated_at: datetime | None = None


def create(session: Session, account_id: int, contacts: Iterable[NewContact]) -> list[NewContact]:
    """Insert the new contacts in one executemany; returns those that were left out because their phone
    exists meanwhile (a concurrent submission created it: the caller loads and updates it instead)."""
    pending = {c.phone: c for c in contacts}
    if not pending:
        return []
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table: Table = Contact.__table__  # type: ignore[assignment]
    now = utcnow()
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["account_id", "phone"])
        .returning(table.c.id, table.c.phone)
    )
    rows = [
        {
            "account_id": account_id,
            "phone": c.phone,
            "name": c.name,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "sex": c.sex,
            "fields": c.fields,
            "created_at": now,
            "updated_at": now,
        }
        for c in pending.values()
    ]
    for contact_id, phone in session.execute(statement, rows):
        pending.pop(phone).id = contact_id
    return list(pending.values())


def apply(contact: Contact | NewContact, given: ContactFields) -> str | None:
    """Update only the fields that were given, so a campaign naming a phone does not erase a saved name.

    Returns a problem, changing nothing, when the custom fields merged with the saved ones would be too many.
    """
    saved = contact.fields or {}
    if given.fields:
        problem = fields_count_problem(len(saved), len({**saved, **given.fields}))
        if problem is not None:
            return problem
    changed = False
    for attr in ("name", "first_name", "last_name", "sex"):
        value = getattr(given, attr)
        if value is not None and getattr(contact, attr) != value:
            setattr(contact, attr, value)
            changed = True
    if given.fields:
        merged = {**(contact.fields or {}), **given.fields}
        if merged != contact.fields:
            contact.fields = merged
            changed = True
    if changed:
        contact.updated_at = utcnow()
    return None


def groups_by_ids(session: Session, account_id: int, ids: Iterable[int]) -> dict[int, Group]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Group).where(Group.account_id == account_id, Group.id.in_(wanted)))
    return {g.id: g for g in rows}


def members_of(session: Session, group_ids: Sequence[int]) -> list[Contact]:
    """Members of the groups, in group order then contact id, each contact once."""
    seen: set[int] = set()
    out: list[Contact] = []
    for group_id in group_ids:
        rows = session.scalars(
            select(Contact)
            .join(GroupMember, GroupMember.contact_id == Contact.id)
            .where(GroupMember.group_id == group_id)
            .order_by(Contact.id)
        )
        for contact in rows:
            if contact.id not in seen:
                seen.add(contact.id)
                out.append(contact)
    return out


def add_members(session: Session, group_id: int, contact_ids: Iterable[int]) -> int:
    """Add contacts to a group; returns how many were not members yet. Adding members twice (an import run
    again, two requests at once) changes nothing."""
    return bulk.insert_members(session, group_id, sorted(set(contact_ids)))


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A contact to upsert by phone (E.164): None leaves a column as it is saved; `fields` are merged into
    the saved ones (values given win, the others are kept)."""

    phone: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    sex: str | None = None
    timezone: str | None = None
    fields: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Upserted:
    """What `upsert_many` did with each row, in the rows' order.

    `ids[i]` is row i's contact id, None when the row was refused (`problems[i]` says why). `created`
    counts rows whose phone had no contact (the first such row of a phone), `updated` the other rows
    applied, whether they changed anything or not.
    """

    ids: list[int | None]
    created: int = 0
    updated: int = 0
    problems: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Saved:
    id: int
    fields: frozenset[str]


def upsert_many(session: Session, account_id: int, rows: Sequence[ContactRow]) -> Upserted:
    """Create or update the account's contacts named by `rows`, a few statements for the lot.

    INSERT ... ON CONFLICT (account_id, phone) DO UPDATE sets only the columns a row gives and merges its
    fields into the saved ones, as `apply` does, and writes nothing when that changes nothing
    (`dispatcher.audience.bulk`). A phone given twice is applied in order, as one upsert. A row whose
    fields would leave its contact with more than the field limit is refused, changing nothing. No ORM
    objects: this is the path for thousands of rows. The caller commits.

    Created rows are told from updated ones by PostgreSQL's `xmax = 0` in RETURNING; SQLite has no such
    column, so there the pre-read of the phones (made anyway, for the field limit) tells them apart.
    """
    with_fields = any(r.fields for r in rows)
    phones = sorted({r.phone for r in rows})
    saved = {
        phone: _Saved(contact_id, frozenset(fields or ()))
        for phone, contact_id, fields in bulk.saved_contacts(session, account_id, phones, with_fields=with_fields)
    }
    merged, problems = _merged(rows, saved)
    postgres = session.get_bind().dialect.name == "postgresql"
    ids = {phone: s.id for phone, s in saved.items()}
    new: set[str] = set()
    # In phone order: two transactions upserting the same phones lock their rows in the same order, so
    # they wait for each other instead of deadlocking.
    values = [_values(merged[phone]) for phone in sorted(merged)]
    for contact_id, phone, created in bulk.upsert_contacts(session, account_id, values, utcnow()):
        ids[phone] = contact_id
        if created if postgres else phone not in saved:
            new.add(phone)
    # A phone another transaction inserted between the pre-read and the upsert is not returned if the
    # upsert changed nothing: its id is read again.
    unknown = [phone for phone in merged if phone not in ids]
    ids.update(
        (phone, contact_id)
        for phone, contact_id, _ in bulk.saved_contacts(session, account_id, unknown, with_fields=False)
    )
    return _tally(rows, ids, new, problems)


def _merged(rows: Sequence[ContactRow], saved: Mapping[str, _Saved]) -> tuple[dict[str, ContactRow], dict[int, str]]:
    """One row per phone (a later row's values win), and the rows refused for the field limit."""
    merged: dict[str, ContactRow] = {}
    problems: dict[int, str] = {}
    for index, row in enumerate(rows):
        before = merged.get(row.phone)
        if row.fields:
            kept = saved[row.phone].fields if row.phone in saved else frozenset()
            so_far = kept | set(before.fields or ()) if before else kept
            problem = fields_count_problem(len(kept), len(so_far | set(row.fields)))
            if problem is not None:
                problems[index] = problem
                continue
        merged[row.phone] = _combined(before, row) if before else row
    return merged, problems


def _combined(before: ContactRow, after: ContactRow) -> ContactRow:
    values = {attr: getattr(after, attr) or getattr(before, attr) for attr in bulk.KEPT}
    fields = {**(before.fields or {}), **(after.fields or {})}
    return ContactRow(after.phone, fields=fields or None, **values)


def _values(row: ContactRow) -> dict[str, Any]:
    return {"phone": row.phone, **{attr: getattr(row, attr) for attr in bulk.KEPT}, "fields": dict(row.fields or {})}


def _tally(rows: Sequence[ContactRow], ids: Mapping[str, int], new: set[str], problems: dict[int, str]) -> Upserted:
    """Per row: its contact id, and whether it is the row that created its contact."""
    out: list[int | None] = []
    counted: set[str] = set()
    created = 0
    for index, row in enumerate(rows):
        if index in problems:
            out.append(None)
            continue
        out.append(ids[row.phone])
        if row.phone in new and row.phone not in counted:
            created += 1
        counted.add(row.phone)
    return Upserted(out, created, len(rows) - len(problems) - created, problems)
