"""Multi-row statements for contacts and group members, one variant per database.

PostgreSQL gets all the rows of a statement as one JSON parameter, expanded by `json_to_recordset()` or
`json_array_elements_text()`: the statement text is short and the same for any number of rows, so psycopg
converts it once and the server prepares it once. (A VALUES list of 1,000 rows is 10,000 named parameters:
psycopg re-parsed that text on every batch, two thirds of the time spent. One array per column was better,
but psycopg dumps arrays element by element in Python: twice the client CPU of one JSON document.)
SQLite takes SQLAlchemy's multi-row VALUES batches, within its limit of bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any
from typing import cast as typed

from sqlalchemy import (
    JSON,
    ColumnElement,
    Insert,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    or_,
)
from sqlalchemy import select as select_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dispatcher.db.models import Contact, GroupMember

# Columns an upsert sets only when a row gives them (COALESCE keeps the saved value otherwise).
KEPT = ("name", "first_name", "last_name", "sex", "timezone")
# SQLite binds at most 32,766 parameters a statement: phones per look-up.
_SQLITE_LOOKUP = 900

# The tables, for Core statements: ORM-enabled INSERTs would take the slower ORM bulk path.
CONTACTS = typed(Table, Contact.__table__)
MEMBERS = typed(Table, GroupMember.__table__)

Saved = tuple[str, int, Any]  # phone, contact id, fields (None unless asked for)
Upsert = tuple[int, str, bool]  # contact id, phone, created (PostgreSQL only: False on SQLite)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def saved_contacts(session: Session, account_id: int, phones: Sequence[str], *, with_fields: bool) -> Iterator[Saved]:
    """Phone, id (and fields) of the account's contacts among `phones`."""
    postgres = _postgres(session)
    query = _lookup(postgres, with_fields)
    step = max(len(phones), 1) if postgres else _SQLITE_LOOKUP
    for start in range(0, len(phones), step):
        yield from session.execute(query, {"account_id": account_id, "phones": list(phones[start : start + step])})


@cache
def _lookup(postgres: bool, with_fields: bool) -> Select[tuple[str, int, Any]]:
    """On PostgreSQL the phones are joined from their JSON array, which the planner answers with one
    unique-index probe per phone. (A prepared `phone IN ($1, ..., $900)` got a generic plan scanning every
    contact of the account, testing each against the 900 parameters: 150 ms a look-up at 30,000 contacts.)"""
    fields = Contact.fields if with_fields else literal_column("NULL")
    query = select_(Contact.phone, Contact.id, fields).where(Contact.account_id == bindparam("account_id"))
    if not postgres:
        return query.where(Contact.phone.in_(bindparam("phones", expanding=True)))
    wanted = func.json_array_elements_text(bindparam("phones", type_=JSON)).table_valued("value").render_derived()
    return query.join(wanted, wanted.c.value == Contact.phone)


def upsert_contacts(
    session: Session, account_id: int, rows: Sequence[Mapping[str, Any]], now: datetime
) -> Iterator[Upsert]:
    """INSERT ... ON CONFLICT (account_id, phone) DO UPDATE for `rows` (phone, the KEPT columns, fields:
    a dict), at most one row per phone. A row changing nothing is not written, and not returned."""
    if not rows:
        return
    if _postgres(session):
        yield from session.execute(_pg_upsert(), {"account_id": account_id, "now": now, "rows": list(rows)})
        return
    params = [{"account_id": account_id, **row, "created_at": now, "updated_at": now} for row in rows]
    for contact_id, phone in session.execute(_sqlite_upsert(), params):
        yield contact_id, phone, False


def _on_conflict(statement: Insert, merged_fields: ColumnElement[Any], fields_changed: ColumnElement[bool]) -> Insert:
    """The conflict clause shared by both databases: given columns win, fields are merged, and a row is
    written only when one of them changes."""
    table = CONTACTS
    given = statement.excluded  # type: ignore[attr-defined]
    values: dict[str, ColumnElement[Any]] = {c: func.coalesce(given[c], table.c[c]) for c in KEPT}
    changed = or_(*(values[c].is_distinct_from(table.c[c]) for c in KEPT), fields_changed)
    return statement.on_conflict_do_update(  # type: ignore[attr-defined,no-any-return]
        index_elements=[table.c.account_id, table.c.phone],
        set_={**values, "fields": merged_fields, "updated_at": given.updated_at},
        where=changed,
    )


@cache
def _pg_upsert() -> Insert:
    table = CONTACTS
    texts = ("phone", *KEPT)
    shape = [column(name, String) for name in texts] + [column("fields", JSON)]
    given = func.json_to_recordset(bindparam("rows", type_=JSON)).table_valued(*shape).render_derived(with_types=True)
    now = bindparam("now", type_=table.c.created_at.type)
    source = select_(
        bindparam("account_id", type_=Integer),
        *(given.c[name] for name in texts),
        cast(given.c.fields, table.c.fields.type),
        now,
        now,
    )
    targets = ["account_id", *texts, "fields", "created_at", "updated_at"]
    statement = postgresql.insert(table).from_select(targets, source)
    saved = cast(table.c.fields, postgresql.JSONB)
    merged = saved.op("||")(cast(statement.excluded.fields, postgresql.JSONB))
    upsert = _on_conflict(statement, cast(merged, table.c.fields.type), merged != saved)
    return upsert.returning(table.c.id, table.c.phone, literal_column("xmax = 0"))


@cache
def _sqlite_upsert() -> Insert:
    table = CONTACTS
    statement = sqlite.insert(table)
    # json_patch is RFC 7396 merge: with scalar values (no nulls: None is "not given") a shallow merge.
    merged = func.json_patch(table.c.fields, statement.excluded.fields)
    upsert = _on_conflict(statement, merged, merged != func.json(table.c.fields))
    return upsert.returning(table.c.id, table.c.phone)


def insert_members(session: Session, group_id: int, contact_ids: Sequence[int]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING of (group, contact) pairs; returns how many were new."""
    if not contact_ids:
        return 0
    if _postgres(session):
        result = session.execute(_pg_members(), {"group_id": group_id, "ids": list(contact_ids)})
    else:
        result = session.execute(_sqlite_members(), [{"group_id": group_id, "contact_id": i} for i in contact_ids])
    return len(result.all())


@cache
def _pg_members() -> Insert:
    table = MEMBERS
    ids = func.json_array_elements_text(bindparam("ids", type_=JSON)).table_valued("value").render_derived()
    source = select_(bindparam("group_id", type_=Integer), cast(ids.c.value, Integer))
    statement = postgresql.insert(table).from_select(["group_id", "contact_id"], source)
    return statement.on_conflict_do_nothing().returning(table.c.contact_id)


@cache
def _sqlite_members() -> Insert:
    table = MEMBERS
    return sqlite.insert(table).on_conflict_do_nothing().returning(table.c.contact_id)
