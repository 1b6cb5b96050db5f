"""`client.senders`, `client.contacts` and `client.groups`: the audience and the sender of campaigns."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dispatcher.client._base import AsyncResource, SyncResource, async_call, sync_call
from dispatcher.client._call import Call, Upload, compact, model, model_list, path, query
from dispatcher.client.campaigns import ContactRef, contact_json
from dispatcher.client.models import Contact, ContactImport, ContactPage, Group, GroupContactsAdded, Sender

NDJSON = "application/x-ndjson"


def content_type_of(file: str | os.PathLike[str]) -> str:
    """What a contacts file's name says it holds: NDJSON for .ndjson and .jsonl, else CSV."""
    return NDJSON if Path(file).suffix.lower() in (".ndjson", ".jsonl") else "text/csv"


# `list` is a method name below: these aliases keep annotations pointing at the builtin.
SenderList = list[Sender]
GroupList = list[Group]
Scalar = str | int | float | bool | None


def _nothing(_: Any) -> None:
    """An answer without a body (204)."""


class SenderCalls:
    """Each sender call, described once."""

    @staticmethod
    def create(
        label: str,
        *,
        channel: Literal["sms", "whatsapp"] | None = None,
        provider: Literal["sandbox", "twilio", "whatsapp_cloud"] | None = None,
        settings: Mapping[str, Any] | None = None,
        active: bool | None = None,
        default: bool | None = None,
        rate: float | None = None,
        burst: int | None = None,
    ) -> Call[Sender]:
        """Add a sender (server defaults: channel "sms", provider "sandbox", active). `settings` hold the
        provider's URL and credentials; they are stored and never returned."""
        body = compact(
            channel=channel,
            label=label,
            provider=provider,
            settings=settings,
            active=active,
            default=default,
            rate=rate,
            burst=burst,
        )
        return Call("POST", "/v1/senders", model(Sender), body=body)

    @staticmethod
    def update(
        sender_id: str | int,
        *,
        label: str | None = None,
        settings: Mapping[str, Any] | None = None,
        active: bool | None = None,
        default: bool | None = None,
        rate: float | None = None,
        burst: int | None = None,
    ) -> Call[Sender]:
        """Change what is given; `settings` are merged into the saved ones (a None value removes a key)."""
        body = compact(label=label, settings=settings, active=active, default=default, rate=rate, burst=burst)
        return Call("PATCH", path("v1", "senders", sender_id), model(Sender), body=body)

    @staticmethod
    def list() -> Call[SenderList]:
        """Every sender of the account."""
        return Call("GET", "/v1/senders", model_list(Sender))

    @staticmethod
    def get(sender_id: str | int) -> Call[Sender]:
        return Call("GET", path("v1", "senders", sender_id), model(Sender))


class ContactCalls:
    """Each contact call, described once."""

    @staticmethod
    def create(
        phone: str | int,
        *,
        name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        sex: Literal["M", "F"] | None = None,
        fields: Mapping[str, Scalar] | None = None,
    ) -> Call[Contact]:
        """Create a contact; posting a phone that exists updates the fields given (the server answers 200)."""
        body = compact(phone=phone, name=name, firstName=first_name, lastName=last_name, sex=sex, fields=fields)
        return Call("POST", "/v1/contacts", model(Contact), body=body)

    @staticmethod
    def list(*, page: int | None = None, limit: int | None = None, phone: str | None = None) -> Call[ContactPage]:
        """A page of contacts (server defaults: page 1, limit 50); `phone` finds one number."""
        return Call("GET", "/v1/contacts", model(ContactPage), params=query(page=page, limit=limit, phone=phone))

    @staticmethod
    def get(contact_id: str | int) -> Call[Contact]:
        return Call("GET", path("v1", "contacts", contact_id), model(Contact))

    @staticmethod
    def update(
        contact_id: str | int,
        *,
        phone: str | int | None = None,
        name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        sex: Literal["M", "F"] | None = None,
        fields: Mapping[str, Scalar] | None = None,
    ) -> Call[Contact]:
        """Change what is given; `fields` are merged into the saved ones (a None value removes a field)."""
        body = compact(phone=phone, name=name, firstName=first_name, lastName=last_name, sex=sex)
        if fields is not None:
            body["fields"] = dict(fields)  # kept whole: its None values remove fields
        return Call("PATCH", path("v1", "contacts", contact_id), model(Contact), body=body)

    @staticmethod
    def delete(contact_id: str | int) -> Call[None]:
        """Delete the contact (messages already queued or sent stay in their campaigns)."""
        return Call("DELETE", path("v1", "contacts", contact_id), _nothing)

    @staticmethod
    def import_file(
        file: str | os.PathLike[str],
        *,
        group_id: str | int,
        country: str | None = None,
        content_type: str | None = None,
    ) -> Call[ContactImport]:
        """Upload a CSV (header row with `phone`) or NDJSON file of contacts into a group, read and sent piece
        by piece. The server answers once it has stored the file (status "queued"); a worker imports it:
        follow it with `get_import` or `watch_import`. `country` reads national numbers (e.g. "CI"); the
        content type is application/x-ndjson for a .ndjson or .jsonl file and text/csv otherwise, unless given."""
        upload = Upload(Path(file), content_type or content_type_of(file))
        params = query(groupId=str(group_id), country=country)
        return Call("POST", "/v1/contacts/imports", model(ContactImport), params=params, upload=upload)

    @staticmethod
    def get_import(import_id: str | int) -> Call[ContactImport]:
        """An import's status and counters, with the first 1,000 rows it did not take."""
        return Call("GET", path("v1", "contacts", "imports", import_id), model(ContactImport))


class GroupCalls:
    """Each group call, described once."""

    @staticmethod
    def create(name: str, *, contact_ids: Sequence[str | int] | None = None) -> Call[Group]:
        """Create a group, optionally with saved contacts as members."""
        body = compact(name=name, contactIds=list(contact_ids) if contact_ids is not None else None)
        return Call("POST", "/v1/groups", model(Group), body=body)

    @staticmethod
    def list() -> Call[GroupList]:
        """Every group of the account."""
        return Call("GET", "/v1/groups", model_list(Group))

    @staticmethod
    def get(group_id: str | int) -> Call[Group]:
        return Call("GET", path("v1", "groups", group_id), model(Group))

    @staticmethod
    def rename(group_id: str | int, name: str) -> Call[Group]:
        return Call("PATCH", path("v1", "groups", group_id), model(Group), body={"name": name})

    @staticmethod
    def delete(group_id: str | int) -> Call[None]:
        """Delete the group; its contacts stay."""
        return Call("DELETE", path("v1", "groups", group_id), _nothing)

    @staticmethod
    def remove_contact(group_id: str | int, contact_id: str | int) -> Call[None]:
        """Take a contact out of the group (NotFound if it was not a member)."""
        return Call("DELETE", path("v1", "groups", group_id, "contacts", contact_id), _nothing)

    @staticmethod
    def add_contacts(
        group_id: str | int,
        *,
        contact_ids: Sequence[str | int] | None = None,
        contacts: Sequence[ContactRef] | None = None,
    ) -> Call[GroupContactsAdded]:
        """Add saved contacts by id and/or contacts by phone (created, or updated when the phone exists)."""
        body = compact(
            contactIds=list(contact_ids) if contact_ids is not None else None,
            contacts=[contact_json(c) for c in contacts] if contacts is not None else None,
        )
        return Call("POST", path("v1", "groups", group_id, "contacts"), model(GroupContactsAdded), body=body)

    @staticmethod
    def contacts(group_id: str | int, *, page: int | None = None, limit: int | None = None) -> Call[ContactPage]:
        """A page of the group's members (server defaults: page 1, limit 50)."""
        params = query(page=page, limit=limit)
        return Call("GET", path("v1", "groups", group_id, "contacts"), model(ContactPage), params=params)


class Senders(SyncResource):
    """`client.senders` of the sync `Client`."""

    create = sync_call(SenderCalls.create)
    list = sync_call(SenderCalls.list)
    get = sync_call(SenderCalls.get)
    update = sync_call(SenderCalls.update)


class AsyncSenders(AsyncResource):
    """`client.senders` of the `AsyncClient`."""

    create = async_call(SenderCalls.create)
    list = async_call(SenderCalls.list)
    get = async_call(SenderCalls.get)
    update = async_call(SenderCalls.update)


class Contacts(SyncResource):
    """`client.contacts` of the sync `Client`."""

    create = sync_call(ContactCalls.create)
    list = sync_call(ContactCalls.list)
    get = sync_call(ContactCalls.get)
    update = sync_call(ContactCalls.update)
    delete = sync_call(ContactCalls.delete)
    import_file = sync_call(ContactCalls.import_file)
    get_import = sync_call(ContactCalls.get_import)

    def watch_import(self, import_id: str | int, *, interval: float = 1.0) -> Iterator[ContactImport]:
        """The import every `interval` seconds until it is done or failed; the last one yielded is."""
        return self._poll(ContactCalls.get_import(import_id), interval)


class AsyncContacts(AsyncResource):
    """`client.contacts` of the `AsyncClient`."""

    create = async_call(ContactCalls.create)
    list = async_call(ContactCalls.list)
    get = async_call(ContactCalls.get)
    update = async_call(ContactCalls.update)
    delete = async_call(ContactCalls.delete)
    import_file = async_call(ContactCalls.import_file)
    get_import = async_call(ContactCalls.get_import)

    def watch_import(self, import_id: str | int, *, interval: float = 1.0) -> AsyncIterator[ContactImport]:
        """The import every `interval` seconds until it is done or failed, as `async for`."""
        return self._poll(ContactCalls.get_import(import_id), interval)


class Groups(SyncResource):
    """`client.groups` of the sync `Client`."""

    create = sync_call(GroupCalls.create)
    list = sync_call(GroupCalls.list)
    get = sync_call(GroupCalls.get)
    rename = sync_call(GroupCalls.rename)
    delete = sync_call(GroupCalls.delete)
    remove_contact = sync_call(GroupCalls.remove_contact)
    add_contacts = sync_call(GroupCalls.add_contacts)
    contacts = sync_call(GroupCalls.contacts)


class AsyncGroups(AsyncResource):
    """`client.groups` of the `AsyncClient`."""

    create = async_call(GroupCalls.create)
    list = async_call(GroupCalls.list)
    get = async_call(GroupCalls.get)
    rename = async_call(GroupCalls.rename)
    delete = async_call(GroupCalls.delete)
    remove_contact = async_call(GroupCalls.remove_contact)
    add_contacts = async_call(GroupCalls.add_contacts)
    contacts = async_call(GroupCalls.contacts)
