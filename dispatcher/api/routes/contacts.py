"""`/v1/contacts` and `/v1/groups`: the audience of campaigns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher.api.deps import AccountDep, PageNumber, SessionDep, merged, owned, total_of
from dispatcher.api.openapi import ERRORS
from dispatcher.api.schemas import ContactCreate, ContactUpdate, GroupCreate, GroupMembersAdd, GroupPublic, GroupUpdate
from dispatcher.audience import contacts as store
from dispatcher.campaigns.views import contact_view
from dispatcher.db.models import Contact, Group, GroupMember, utcnow
from dispatcher.errors import Collector, Conflict, NotFound, SpecError
from dispatcher.inputs import fields_count_problem, fields_problem

contacts_router = APIRouter(prefix="/v1/contacts", tags=["contacts"])
groups_router = APIRouter(prefix="/v1/groups", tags=["groups"])


def _fields(body: ContactCreate) -> store.ContactFields:
    return store.ContactFields(body.name, body.firstName, body.lastName, body.sex, body.fields or None)


def upsert(session: Session, account_id: int, body: ContactCreate) -> tuple[Contact, bool]:
    """Create the contact, or update the given fields of the one with that phone.

    Created only if this request inserted it: a concurrent request naming the same phone updates instead.
    """
    phone = str(body.phone)
    found, created = store.ensure(session, account_id, [phone])
    problem = store.apply(found[phone], _fields(body))
    if problem is not None:
        raise SpecError.single(("fields",), problem)
    return found[phone], phone in created


@contacts_router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_contact(body: ContactCreate, session: SessionDep, account: AccountDep, response: Response) -> dict[str, Any]:
    """Create a contact; posting a phone that exists updates it (200)."""
    contact, created = upsert(session, account.id, body)
    session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return contact_view(contact)


@contacts_router.get("", responses=ERRORS)
def list_contacts(
    session: SessionDep,
    account: AccountDep,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    phone: str | None = None,
) -> dict[str, Any]:
    query = select(Contact).where(Contact.account_id == account.id)
    if phone:
        query = query.where(Contact.phone == ("+" + phone.lstrip("+ ")))
    total = total_of(session, query)
    rows = session.scalars(query.order_by(Contact.id).offset((page - 1) * limit).limit(limit)).all()
    return {"data": [contact_view(c) for c in rows], "page": page, "limit": limit, "total": total}


@contacts_router.get("/{contact_id}", responses=ERRORS)
def get_contact(contact_id: str, session: SessionDep, account: AccountDep) -> dict[str, Any]:
    return contact_view(_own_contact(session, account.id, contact_id))


# PATCH keys -> Contact attributes (`fields` is merged, not set).
_PATCHABLE = {"phone": "phone", "name": "name", "firstName": "first_name", "lastName": "last_name", "sex": "sex"}


@contacts_router.patch("/{contact_id}", responses=ERRORS)
def update_contact(contact_id: str, body: ContactUpdate, session: SessionDep, account: AccountDep) -> dict[str, Any]:
    """Change the keys given: null clears a name; `fields` are merged, a field set to null is removed."""
    contact = _own_contact(session, account.id, contact_id)
    given = body.model_fields_set
    for key, attr in _PATCHABLE.items():
        if key in given:
            setattr(contact, attr, getattr(body, key))
    if body.fields is not None:
        fields = merged(contact.fields, body.fields)
        # Only what the change adds is checked: a field saved before the limits can still be removed.
        added = merged(None, body.fields)
        problem = fields_problem(added) or fields_count_problem(len(contact.fields or {}), len(fields))
        if problem is not None:
            raise SpecError.single(("fields",), problem)
        contact.fields = fields
    contact.updated_at = utcnow()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"another contact of this account has the phone {body.phone}") from None
    return contact_view(contact)


@contacts_router.delete("/{contact_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_contact(contact_id: str, session: SessionDep, account: AccountDep) -> None:
    """Delete the contact, its group memberships and its place in campaigns' audiences (later runs skip
    it). Messages already sent or queued stay in their campaigns' history; cancel a campaign to stop them."""
    session.delete(_own_contact(session, account.id, contact_id))
    session.commit()


def _own_contact(session: Session, account_id: int, contact_id: str) -> Contact:
    return owned(session, Contact, account_id, contact_id, "contact")


def _own_group(session: Session, account_id: int, group_id: str) -> Group:
    return owned(session, Group, account_id, group_id, "group")


def _group_public(session: Session, group: Group) -> GroupPublic:
    size = session.scalar(select(func.count()).where(GroupMember.group_id == group.id)) or 0
    return GroupPublic(id=str(group.id), name=group.name, size=size, createdAt=group.created_at)


def _member_ids(session: Session, account_id: int, raw_ids: list[str | int], errors: Collector) -> list[int]:
    ids = [store.parse_id(x) for x in raw_ids]
    found = store.by_ids(session, account_id, (i for i in ids if i is not None))
    for index, (raw, ident) in enumerate(zip(raw_ids, ids, strict=True)):
        if ident is None or ident not in found:
            errors.add(("contactIds", index), f"contact {raw!r} does not exist in this account", "not_found")
    return [i for i in ids if i is not None and i in found]


@groups_router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_group(body: GroupCreate, session: SessionDep, account: AccountDep) -> GroupPublic:
    _name_is_free(session, account.id, body.name)
    errors = Collector()
    ids = _member_ids(session, account.id, body.contactIds, errors)
    errors.raise_if_any()
    group = Group(account_id=account.id, name=body.name)
    session.add(group)
    session.flush()
    store.add_members(session, group.id, ids)
    session.commit()
    return _group_public(session, group)


@groups_router.get("", responses=ERRORS)
def list_groups(session: SessionDep, account: AccountDep) -> dict[str, Any]:
    # One query with the sizes, not a count per group.
    size = select(func.count()).where(GroupMember.group_id == Group.id).correlate(Group).scalar_subquery()
    rows = session.execute(select(Group, size).where(Group.account_id == account.id).order_by(Group.id)).all()
    return {"data": [GroupPublic(id=str(g.id), name=g.name, size=n, createdAt=g.created_at) for g, n in rows]}


@groups_router.get("/{group_id}", responses=ERRORS)
def get_group(group_id: str, session: SessionDep, account: AccountDep) -> GroupPublic:
    return _group_public(session, _own_group(session, account.id, group_id))


@groups_router.patch("/{group_id}", responses=ERRORS)
def rename_group(group_id: str, body: GroupUpdate, session: SessionDep, account: AccountDep) -> GroupPublic:
    group = _own_group(session, account.id, group_id)
    if body.name != group.name:
        _name_is_free(session, account.id, body.name)
        group.name = body.name
        session.commit()
    return _group_public(session, group)


@groups_router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_group(group_id: str, session: SessionDep, account: AccountDep) -> None:
    """Delete the group (its contacts stay); a recurring campaign sending to it finds no one there."""
    session.delete(_own_group(session, account.id, group_id))
    session.commit()


@groups_router.delete("/{group_id}/contacts/{contact_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def remove_group_contact(group_id: str, contact_id: str, session: SessionDep, account: AccountDep) -> None:
    """Take the contact out of the group (the contact stays)."""
    group = _own_group(session, account.id, group_id)
    contact = _own_contact(session, account.id, contact_id)
    removed = session.execute(
        delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.contact_id == contact.id)
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFound("member", f"{contact_id} of group {group_id}")
    session.commit()


def _name_is_free(session: Session, account_id: int, name: str) -> None:
    if session.scalar(select(Group.id).where(Group.account_id == account_id, Group.name == name)):
        raise SpecError.single(("name",), f"a group named {name!r} already exists")


@groups_router.post("/{group_id}/contacts", responses=ERRORS)
def add_group_contacts(
    group_id: str, body: GroupMembersAdd, session: SessionDep, account: AccountDep
) -> dict[str, Any]:
    """Add saved contacts by id and/or contacts by phone (created or updated) to the group."""
    group = _own_group(session, account.id, group_id)
    errors = Collector()
    ids = _member_ids(session, account.id, body.contactIds, errors)
    errors.raise_if_any()
    # One insert-or-read for every phone, not a round trip per contact.
    found, _ = store.ensure(session, account.id, [str(c.phone) for c in body.contacts])
    for index, contact_in in enumerate(body.contacts):
        contact = found[str(contact_in.phone)]
        problem = store.apply(contact, _fields(contact_in))
        if problem is not None:
            raise SpecError.single(("contacts", index, "fields"), problem)
        ids.append(contact.id)
    added = store.add_members(session, group.id, ids)
    session.commit()
    return {"added": added, "group": _group_public(session, group)}


@groups_router.get("/{group_id}/contacts", responses=ERRORS)
def list_group_contacts(
    group_id: str,
    session: SessionDep,
    account: AccountDep,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    group = _own_group(session, account.id, group_id)
    query = (
        select(Contact).join(GroupMember, GroupMember.contact_id == Contact.id).where(GroupMember.group_id == group.id)
    )
    rows = session.scalars(query.order_by(Contact.id).offset((page - 1) * limit).limit(limit)).all()
    data = [contact_view(c) for c in rows]
    return {"data": data, "page": page, "limit": limit, "total": total_of(session, query)}
