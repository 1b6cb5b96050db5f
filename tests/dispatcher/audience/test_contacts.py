"""`upsert_many` and `add_members` on SQLite and PostgreSQL (`db_url` runs each test on both)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.audience.accounts import create_account
from dispatcher.audience.contacts import ContactRow, add_members, upsert_many
from dispatcher.db.models import Contact, Group, GroupMember
from dispatcher.inputs import MAX_FIELDS


@pytest.fixture
def account_id(session: Session) -> int:
    account, _ = create_account(session, f"contacts-{uuid.uuid4().hex[:6]}")
    session.commit()
    return account.id


def saved(session: Session, account_id: int) -> dict[str, Contact]:
    session.expire_all()
    return {c.phone: c for c in session.scalars(select(Contact).where(Contact.account_id == account_id))}


def test_new_phones_are_created_and_known_ones_updated_with_only_the_columns_given(
    session: Session, account_id: int
) -> None:
    # Given a saved contact with a name, a sex and two fields
    first = upsert_many(
        session, account_id, [ContactRow("+2250700000001", name="Awa", sex="F", fields={"a": 1, "b": 2})]
    )
    session.commit()
    assert (first.created, first.updated) == (1, 0)
    before = saved(session, account_id)["+2250700000001"]
    created_at, updated_at = before.created_at, before.updated_at
    # When it is upserted with a first name, a time zone and one field, beside a new phone
    rows = [
        ContactRow("+2250700000001", first_name="A", timezone="Africa/Abidjan", fields={"b": "two", "c": 3}),
        ContactRow("+2250700000002", last_name="Koné"),
    ]
    result = upsert_many(session, account_id, rows)
    session.commit()
    # Then the new phone is created, the known one updated: given columns set, the others kept, fields merged
    assert (result.created, result.updated, result.problems) == (1, 1, {})
    contacts = saved(session, account_id)
    awa = contacts["+2250700000001"]
    assert result.ids == [awa.id, contacts["+2250700000002"].id]
    assert (awa.name, awa.first_name, awa.sex, awa.timezone) == ("Awa", "A", "F", "Africa/Abidjan")
    assert awa.fields == {"a": 1, "b": "two", "c": 3}
    assert awa.created_at == created_at and awa.updated_at > updated_at
    assert contacts["+2250700000002"].last_name == "Koné" and contacts["+2250700000002"].fields == {}


def test_the_same_rows_again_create_nothing_and_write_nothing(session: Session, account_id: int) -> None:
    rows = [ContactRow(f"+22507000001{i:02d}", name=f"N{i}", fields={"code": f"C{i}"}) for i in range(50)]
    assert upsert_many(session, account_id, rows).created == 50
    session.commit()
    stamps = {p: c.updated_at for p, c in saved(session, account_id).items()}
    again = upsert_many(session, account_id, rows)
    session.commit()
    assert (again.created, again.updated) == (0, 50)
    assert again.ids == [saved(session, account_id)[r.phone].id for r in rows]
    # Nothing changed, so no row was rewritten
    assert {p: c.updated_at for p, c in saved(session, account_id).items()} == stamps


def test_a_phone_given_twice_is_one_contact_with_the_later_values(session: Session, account_id: int) -> None:
    rows = [
        ContactRow("+2250700000201", name="First", fields={"a": 1}),
        ContactRow("+2250700000201", first_name="F", fields={"b": 2}),
        ContactRow("+2250700000201", name="Last"),
    ]
    result = upsert_many(session, account_id, rows)
    session.commit()
    assert (result.created, result.updated) == (1, 2)
    assert len(set(result.ids)) == 1
    contact = saved(session, account_id)["+2250700000201"]
    assert (contact.name, contact.first_name, contact.fields) == ("Last", "F", {"a": 1, "b": 2})


def test_a_row_that_would_pass_the_field_limit_is_refused_and_changes_nothing(
    session: Session, account_id: int
) -> None:
    full = {f"f{i}": i for i in range(MAX_FIELDS)}
    upsert_many(session, account_id, [ContactRow("+2250700000301", name="Awa", fields=full)])
    session.commit()
    rows = [
        ContactRow("+2250700000301", name="Changed", fields={"extra": 1}),  # a 51st field
        ContactRow("+2250700000301", fields={"f1": "new"}),  # an existing one: fine
        ContactRow("+2250700000302", fields={f"g{i}": i for i in range(MAX_FIELDS)}),
        ContactRow("+2250700000302", fields={"one_more": 1}),
    ]
    result = upsert_many(session, account_id, rows)
    session.commit()
    assert sorted(result.problems) == [0, 3]
    assert "at most 50" in result.problems[0]
    assert result.ids[0] is None and result.ids[3] is None
    assert (result.created, result.updated) == (1, 1)
    contacts = saved(session, account_id)
    assert contacts["+2250700000301"].name == "Awa"
    assert contacts["+2250700000301"].fields == {**full, "f1": "new"}
    assert len(contacts["+2250700000302"].fields) == MAX_FIELDS


def test_thousands_of_rows_take_several_statements(session: Session, account_id: int) -> None:
    rows = [ContactRow(f"+22507{i:08d}", name=f"N{i}") for i in range(2_500)]
    result = upsert_many(session, account_id, rows)
    session.commit()
    assert (result.created, result.updated, len(set(result.ids))) == (2_500, 0, 2_500)
    assert len(saved(session, account_id)) == 2_500


def test_members_are_added_once(session: Session, account_id: int) -> None:
    group = Group(account_id=account_id, name="G")
    session.add(group)
    session.flush()
    ids = upsert_many(session, account_id, [ContactRow(f"+22507000004{i:02d}") for i in range(5)]).ids
    contact_ids = [i for i in ids if i is not None]
    assert add_members(session, group.id, contact_ids[:3]) == 3
    assert add_members(session, group.id, contact_ids + contact_ids) == 2
    assert add_members(session, group.id, []) == 0
    session.commit()
    members = session.scalars(select(GroupMember.contact_id).where(GroupMember.group_id == group.id)).all()
    assert sorted(members) == sorted(contact_ids)
