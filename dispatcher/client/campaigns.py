"""`client.campaigns`: the SMS document's `sms.campain.create/list/get`, plus control, messages and the CSV export.

`create` takes the document's fields as keyword arguments, in snake_case or in the document's camelCase
(`groups_ids` or `groupsIds`, `sender_id` or `senderId`...), so `create(**doc_object)` works too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime, time
from typing import Any, Literal

from dispatcher.client._base import AsyncResource, SyncResource, async_call, sync_call
from dispatcher.client._call import Call, compact, iso, jsonable, model, path, query, streamed, time_of_day
from dispatcher.client.models import Campaign, CampaignPage, Contact, MessagePage

CampaignType = Literal["SMS", "SCHEDULED", "RECURRING"]
StatusFilter = Literal["ALL", "PENDING", "SENT", "FAILED", "PAUSED", "CANCELLED"]
# A recipient: a phone number, a contact object of the document (snake_case keys accepted), or a saved Contact.
ContactRef = str | Mapping[str, Any] | Contact
When = datetime | str
TimeOfDay = datetime | time | str

_CONTACT_KEYS = {"first_name": "firstName", "last_name": "lastName"}


def _either(snake: str, snake_value: Any, camel: str, camel_value: Any) -> Any:
    if snake_value is not None and camel_value is not None:
        raise TypeError(f"give {snake} or {camel}, not both")
    return snake_value if snake_value is not None else camel_value


def contact_json(contact: ContactRef) -> dict[str, Any]:
    """A recipient as the API reads it: a saved `Contact` by id, a bare phone, or a contact object whose
    `first_name`/`last_name` keys become `firstName`/`lastName` (other keys are custom fields, kept as is)."""
    if isinstance(contact, Contact):
        return {"id": contact.id}
    if isinstance(contact, str):
        return {"phone": contact}
    out: dict[str, Any] = {}
    for key, value in contact.items():
        name = _CONTACT_KEYS.get(key, key)
        if name in out:
            raise TypeError(f"contact gives {name} twice ({key!r} and {name!r})")
        out[name] = jsonable(value)
    return out


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key is not None else {}


class CampaignCalls:
    """Each campaign call, described once; `Campaigns` and `AsyncCampaigns` run them."""

    @staticmethod
    def create(
        *,
        text: str,
        contacts: Sequence[ContactRef] | None = None,
        name: str | None = None,
        groups_ids: Sequence[str | int] | None = None,
        sender_id: str | int | None = None,
        type: CampaignType | None = None,
        scheduled_date: When | None = None,
        recurring: Mapping[str, TimeOfDay] | None = None,
        timezone: str | None = None,
        recurring_until: When | None = None,
        idempotency_key: str | None = None,
        groupsIds: Sequence[str | int] | None = None,
        senderId: str | int | None = None,
        scheduledDate: When | None = None,
        recurringUntil: When | None = None,
    ) -> Call[Campaign]:
        """Create a campaign (`POST /v1/campaigns`) from the SMS document's fields.

        `contacts` items are phones, contact objects (`{"phone": ..., "name": ..., "ville": ...}`) or saved
        `Contact`s. `scheduled_date` (type "SCHEDULED") and `recurring_until` are datetimes (a naive one is
        local time) or ISO strings. `recurring` (type "RECURRING") maps weekday names to times of day: a
        datetime's or time's hour and minute are sent as "HH:MM", read in `timezone` (default UTC).
        `idempotency_key` is sent as the `Idempotency-Key` header: a retry with the same key and the same
        arguments answers the first campaign instead of creating another.
        """
        groups = _either("groups_ids", groups_ids, "groupsIds", groupsIds)
        sender = _either("sender_id", sender_id, "senderId", senderId)
        scheduled = _either("scheduled_date", scheduled_date, "scheduledDate", scheduledDate)
        until = _either("recurring_until", recurring_until, "recurringUntil", recurringUntil)
        body = compact(
            name=name,
            contacts=[contact_json(c) for c in contacts] if contacts is not None else None,
            groupsIds=list(groups) if groups is not None else None,
            text=text,
            senderId=sender,
            type=type,
            scheduledDate=iso(scheduled) if scheduled is not None else None,
            recurring={day: time_of_day(t) for day, t in recurring.items()} if recurring is not None else None,
            timezone=timezone,
            recurringUntil=iso(until) if until is not None else None,
        )
        return Call("POST", "/v1/campaigns", model(Campaign), body=body, headers=_idempotency(idempotency_key))

    @staticmethod
    def create_raw(payload: Mapping[str, Any], *, idempotency_key: str | None = None) -> Call[Campaign]:
        """Create a campaign from a payload sent as is (datetimes made ISO), e.g. the WhatsApp-style envelope
        `{"title": ..., "start_datetime": ..., "contacts_and_data": {"_": {"channel": "sms", ...}, ...}}`."""
        headers = _idempotency(idempotency_key)
        return Call("POST", "/v1/campaigns", model(Campaign), body=jsonable(payload), headers=headers)

    @staticmethod
    def list(
        *, page: int | None = None, limit: int | None = None, status: StatusFilter | None = None
    ) -> Call[CampaignPage]:
        """A page of the account's campaigns, newest first (server defaults: page 1, limit 10, status ALL)."""
        return Call("GET", "/v1/campaigns", model(CampaignPage), params=query(page=page, limit=limit, status=status))

    @staticmethod
    def get(campaign_id: str | int, *, contacts: bool | None = None) -> Call[Campaign]:
        """One campaign with live stats, recipients, runs and an error summary; `contacts=False` leaves out
        the recipients (lighter, for frequent polling)."""
        params = query(contacts=contacts)
        return Call("GET", path("v1", "campaigns", campaign_id), model(Campaign), params=params)

    @staticmethod
    def pause(campaign_id: str | int) -> Call[Campaign]:
        """Pause a PENDING campaign (ConflictError otherwise): nothing new is sent until `resume`."""
        return Call("POST", path("v1", "campaigns", campaign_id, "pause"), model(Campaign))

    @staticmethod
    def resume(campaign_id: str | int) -> Call[Campaign]:
        """Resume a PAUSED campaign; a recurring one continues from its next occurrence."""
        return Call("POST", path("v1", "campaigns", campaign_id, "resume"), model(Campaign))

    @staticmethod
    def cancel(campaign_id: str | int) -> Call[Campaign]:
        """Cancel for good: pending runs are cancelled, queued messages skipped."""
        return Call("POST", path("v1", "campaigns", campaign_id, "cancel"), model(Campaign))

    @staticmethod
    def reschedule(campaign_id: str | int, scheduled_date: When) -> Call[Campaign]:
        """Move a SCHEDULED campaign that has not fired yet (the new time must be on the grid and ahead)."""
        body = {"scheduledDate": iso(scheduled_date)}
        return Call("POST", path("v1", "campaigns", campaign_id, "reschedule"), model(Campaign), body=body)

    @staticmethod
    def messages(
        campaign_id: str | int, *, page: int | None = None, limit: int | None = None, status: str | None = None
    ) -> Call[MessagePage]:
        """A page of the campaign's messages (server defaults: page 1, limit 100; `status` e.g. "failed")."""
        params = query(page=page, limit=limit, status=status)
        return Call("GET", path("v1", "campaigns", campaign_id, "messages"), model(MessagePage), params=params)

    @staticmethod
    def export(campaign_id: str | int, *, run: str | int | None = None, status: str | None = None) -> Call[None]:
        """Every message of the campaign (or of one `run`; `status` e.g. "failed") as CSV, streamed."""
        params = query(run=run, status=status)
        messages = path("v1", "campaigns", campaign_id, "messages")
        return Call("GET", messages, streamed, params=params, headers={"Accept": "text/csv"})


class Campaigns(SyncResource):
    """`client.campaigns` of the sync `Client`."""

    create = sync_call(CampaignCalls.create)
    create_raw = sync_call(CampaignCalls.create_raw)
    list = sync_call(CampaignCalls.list)
    get = sync_call(CampaignCalls.get)
    pause = sync_call(CampaignCalls.pause)
    resume = sync_call(CampaignCalls.resume)
    cancel = sync_call(CampaignCalls.cancel)
    reschedule = sync_call(CampaignCalls.reschedule)
    messages = sync_call(CampaignCalls.messages)

    def export(
        self, campaign_id: str | int, *, run: str | int | None = None, status: str | None = None
    ) -> Iterator[bytes]:
        """Every message of the campaign (or of one `run`) as CSV in UTF-8, chunk by chunk as the server
        streams it: a header row (phone, contactId, status, errorCode, error, providerMessageId, sentAt,
        deliveredAt, readAt, runId), then one row per message. Memory stays small at any size::

            with open("out.csv", "wb") as out:
                for chunk in client.campaigns.export("7"):
                    out.write(chunk)

        The request is sent when the iteration starts, and errors are raised then (`NotFoundError`...); a
        download cut short is a `TransportError`, never a short file read as whole."""
        return self._stream(CampaignCalls.export(campaign_id, run=run, status=status))

    def watch(self, campaign_id: str | int, *, interval: float = 1.0) -> Iterator[Campaign]:
        """The campaign (without its recipients) every `interval` seconds until it is final; the last one
        yielded is final (`is_final`). Leave the loop early to stop watching."""
        return self._poll(CampaignCalls.get(campaign_id, contacts=False), interval)


class AsyncCampaigns(AsyncResource):
    """`client.campaigns` of the `AsyncClient`: the same calls, awaited."""

    create = async_call(CampaignCalls.create)
    create_raw = async_call(CampaignCalls.create_raw)
    list = async_call(CampaignCalls.list)
    get = async_call(CampaignCalls.get)
    pause = async_call(CampaignCalls.pause)
    resume = async_call(CampaignCalls.resume)
    cancel = async_call(CampaignCalls.cancel)
    reschedule = async_call(CampaignCalls.reschedule)
    messages = async_call(CampaignCalls.messages)

    def export(
        self, campaign_id: str | int, *, run: str | int | None = None, status: str | None = None
    ) -> AsyncIterator[bytes]:
        """The campaign's messages as CSV, chunk by chunk, as `async for` (see `Campaigns.export`)."""
        return self._stream(CampaignCalls.export(campaign_id, run=run, status=status))

    def watch(self, campaign_id: str | int, *, interval: float = 1.0) -> AsyncIterator[Campaign]:
        """The campaign (without its recipients) every `interval` seconds until it is final, as `async for`."""
        return self._poll(CampaignCalls.get(campaign_id, contacts=False), interval)
