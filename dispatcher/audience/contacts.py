"""Contacts and groups of an account: look-ups and the phone-keyed upsert shared by the API and submission."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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
    """Add contacts to a group; returns how many were not members yet."""
    ids = set(contact_ids)
    present = set(
        session.scalars(
            select(GroupMember.contact_id).where(GroupMember.group_id == group_id, GroupMember.contact_id.in_(ids))
        )
    )
    new = ids - present
    session.add_all(GroupMember(group_id=group_id, contact_id=cid) for cid in sorted(new))
    return len(new)
