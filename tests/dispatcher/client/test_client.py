"""`dispatcher.client` against `httpx.MockTransport`: requests sent, answers parsed, errors raised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.client import (
    AsyncClient,
    AuthenticationError,
    Campaign,
    CampaignPage,
    Client,
    ConflictError,
    Contact,
    DispatcherError,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationError,
)

TOKEN = "dsp_test-token"
NOW = "2024-03-18T08:00:00.123456Z"

CAMPAIGN: dict[str, Any] = {
    "id": "7",
    "name": "Rentrée",
    "type": "SMS",
    "channel": "sms",
    "status": "SENT",
    "statusReason": None,
    "text": "Bonjour @nom_complet",
    "senderId": "1",
    "senderLabel": "My Sender",
    "scheduledDate": None,
    "recurring": None,
    "timezone": None,
    "stats": {"total": 2, "sent": 1, "failed": 1, "skipped": 0, "unknown": 0, "delivered": 1, "read": 0, "pending": 0},
    "createdAt": NOW,
    "updatedAt": NOW,
    "contacts": [
        {
            "id": "3",
            "phone": "+2250700000001",
            "name": "Awa Koné",
            "firstName": None,
            "lastName": None,
            "sex": None,
            "fields": {"ville": "Abidjan"},
            "createdAt": NOW,
            "updatedAt": NOW,
            "status": "delivered",
            "errorCode": None,
            "error": None,
        }
    ],
    "errors": [{"code": "21610", "error": "unsubscribed", "count": 1}],
    "runs": [
        {
            "id": "11",
            "fireAt": NOW,
            "status": "sent",
            "statusReason": None,
            "startedAt": NOW,
            "finishedAt": NOW,
            "stats": {"total": 2, "sent": 1, "failed": 1, "pending": 0},
        }
    ],
    "nextRuns": [],
    "recurringUntil": None,
    "encoding": "UCS-2",
    "segments": 1,
    "totalSegments": 2,
    "recipients": 2,
    "somethingNew": {"added": "later"},
}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport answering with `handler` (default: 200 + CAMPAIGN) and keeping every request."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler or (lambda _: httpx.Response(200, json=CAMPAIGN))
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self._handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)

    def client(self) -> Client:
        return Client(base_url="http://api.test", token=TOKEN, transport=self.transport)

    def async_client(self) -> AsyncClient:
        return AsyncClient(base_url="http://api.test", token=TOKEN, transport=self.transport)


def answer(status: int, body: Any) -> Recorder:
    return Recorder(lambda _: httpx.Response(status, json=body))


# --- requests -------------------------------------------------------------------------------------------


def test_create_sends_the_document_fields_in_camel_case_with_auth_and_idempotency_key() -> None:
    rec = Recorder()
    saved = Contact(id="42", phone="+2250700000042")
    with rec.client() as client:
        campaign = client.campaigns.create(
            contacts=[{"phone": "2250700000001", "first_name": "Awa", "ville": "Abidjan"}, "2250700000002", saved],
            text="Bonjour @prenom",
            name="Rentrée",
            groups_ids=["5", 6],
            sender_id="My Sender",
            type="SCHEDULED",
            scheduled_date=datetime(2024, 3, 20, 10, 0, tzinfo=timezone(timedelta(hours=1))),
            idempotency_key="key-1",
        )
    assert isinstance(campaign, Campaign) and campaign.id == "7"
    request = rec.last
    assert (request.method, request.url.path) == ("POST", "/v1/campaigns")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "key-1"
    assert request.headers["Content-Type"] == "application/json"
    assert rec.body() == {
        "name": "Rentrée",
        "contacts": [
            {"phone": "2250700000001", "firstName": "Awa", "ville": "Abidjan"},
            {"phone": "2250700000002"},
            {"id": "42"},
        ],
        "groupsIds": ["5", 6],
        "text": "Bonjour @prenom",
        "senderId": "My Sender",
        "type": "SCHEDULED",
        "scheduledDate": "2024-03-20T10:00:00+01:00",
    }


def test_create_accepts_the_documents_camel_case_names_and_recurring_times() -> None:
    rec = Recorder()
    doc: dict[str, Any] = {
        "contacts": [{"id": "contact_1", "phone": "22500000000", "name": "John Doe"}],
        "text": "Rappel hebdomadaire",
        "senderId": "My Sender",
        "groupsIds": ["g1"],
        "type": "RECURRING",
        "recurring": {
            "monday": datetime(2024, 3, 18, 9, 0, tzinfo=UTC),
            "wednesday": time(9, 30),
            "friday": "17:45",
        },
        "timezone": "Africa/Abidjan",
        "recurringUntil": datetime(2024, 6, 30, 0, 0, tzinfo=UTC),
    }
    with rec.client() as client:
        client.campaigns.create(**doc)
        assert "Idempotency-Key" not in rec.last.headers
        assert rec.body() == {
            **doc,
            "recurring": {"monday": "09:00", "wednesday": "09:30", "friday": "17:45"},
            "recurringUntil": "2024-06-30T00:00:00+00:00",
        }
        with pytest.raises(TypeError, match="sender_id or senderId"):
            client.campaigns.create(text="x", contacts=["1"], sender_id="a", senderId="b")


def test_a_naive_datetime_is_sent_as_local_time_with_its_offset() -> None:
    rec = Recorder()
    naive = datetime(2024, 3, 20, 10, 0)
    with rec.client() as client:
        client.campaigns.create(text="x", contacts=["1"], type="SCHEDULED", scheduled_date=naive)
        client.campaigns.create(text="x", contacts=["1"], type="SCHEDULED", scheduled_date="2024-03-20T10:00:00Z")
    sent = datetime.fromisoformat(rec.body(0)["scheduledDate"])
    assert sent.tzinfo is not None and sent == naive.astimezone()
    assert rec.body(1)["scheduledDate"] == "2024-03-20T10:00:00Z"  # strings go as given


def test_create_raw_sends_the_envelope_as_is() -> None:
    rec = Recorder()
    envelope = {
        "title": "Rappel",
        "start_datetime": datetime(2024, 3, 20, 10, 0, tzinfo=UTC),
        "contacts_and_data": {
            "_": {"channel": "sms", "sender_label_id": "My Sender", "text": "Bonjour @code"},
            "contacts": [{"phone": "2250707123456", "data": {"code": "A1"}}],
        },
    }
    with rec.client() as client:
        client.campaigns.create_raw(envelope, idempotency_key="env-1")
    assert rec.last.headers["Idempotency-Key"] == "env-1"
    assert rec.body() == {**envelope, "start_datetime": "2024-03-20T10:00:00+00:00"}


def test_list_sends_only_the_filters_given() -> None:
    rec = answer(200, {"data": [CAMPAIGN], "page": 2, "limit": 5, "total": 6})
    with rec.client() as client:
        page = client.campaigns.list(page=2, limit=5, status="SENT")
        assert dict(rec.last.url.params) == {"page": "2", "limit": "5", "status": "SENT"}
        client.campaigns.list()
        assert (rec.last.method, rec.last.url.path, rec.last.url.query) == ("GET", "/v1/campaigns", b"")
    assert isinstance(page, CampaignPage)
    assert (page.page, page.limit, page.total, page.data[0].id) == (2, 5, 6, "7")


def test_campaign_control_routes() -> None:
    rec = Recorder()
    with rec.client() as client:
        client.campaigns.get("7")
        client.campaigns.pause(7)
        client.campaigns.resume("7")
        client.campaigns.cancel("7")
        client.campaigns.reschedule("7", datetime(2030, 1, 1, 9, 15, tzinfo=UTC))
        client.campaigns.get("a/b c")
        with pytest.raises(ValueError, match="empty"):
            client.campaigns.get(" ")
    sent = [(r.method, r.url.raw_path.decode()) for r in rec.requests]
    assert sent == [
        ("GET", "/v1/campaigns/7"),
        ("POST", "/v1/campaigns/7/pause"),
        ("POST", "/v1/campaigns/7/resume"),
        ("POST", "/v1/campaigns/7/cancel"),
        ("POST", "/v1/campaigns/7/reschedule"),
        ("GET", "/v1/campaigns/a%2Fb%20c"),
    ]
    assert rec.body(4) == {"scheduledDate": "2030-01-01T09:15:00+00:00"}
    assert rec.requests[1].content == b""  # control calls have no body


def test_get_can_leave_out_the_recipients() -> None:
    rec = Recorder()
    with rec.client() as client:
        client.campaigns.get("7", contacts=False)
        assert dict(rec.last.url.params) == {"contacts": "false"}
        client.campaigns.get("7", contacts=True)
        assert dict(rec.last.url.params) == {"contacts": "true"}


def poll_answers(*statuses: str) -> Recorder:
    """A campaign answered with each status in turn."""
    answers = iter(statuses)
    return Recorder(lambda _: httpx.Response(200, json={**CAMPAIGN, "status": next(answers)}))


def test_watch_polls_without_recipients_until_the_campaign_is_final() -> None:
    rec = poll_answers("PENDING", "PAUSED", "SENT", "SENT")
    with rec.client() as client:
        seen = [c.status for c in client.campaigns.watch("7", interval=0)]
    assert seen == ["PENDING", "PAUSED", "SENT"]
    assert {(r.url.path, r.url.query) for r in rec.requests} == {("/v1/campaigns/7", b"contacts=false")}
    assert len(rec.requests) == 3
    assert [Campaign(id="1", status=s).is_final for s in ("SENT", "FAILED", "CANCELLED", "PAUSED", None)] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_the_async_client_watches_the_same_way() -> None:
    rec = poll_answers("PENDING", "CANCELLED", "SENT")

    async def main() -> list[str | None]:
        async with rec.async_client() as client:
            return [c.status async for c in client.campaigns.watch("7", interval=0)]

    assert asyncio.run(main()) == ["PENDING", "CANCELLED"]
    assert [r.url.query for r in rec.requests] == [b"contacts=false", b"contacts=false"]


def test_messages_of_a_campaign() -> None:
    message = {
        "id": "90",
        "runId": "11",
        "contactId": "3",
        "phone": "+2250700000001",
        "name": None,
        "body": "Bonjour",
        "encoding": "GSM-7",
        "segments": 1,
        "status": "failed",
        "attempts": 2,
        "providerMessageId": None,
        "errorCode": "21610",
        "error": "unsubscribed",
        "sentAt": None,
    }
    rec = answer(200, {"data": [message], "page": 1, "limit": 100})
    with rec.client() as client:
        page = client.campaigns.messages("7", limit=100, status="failed")
    assert rec.last.url.path == "/v1/campaigns/7/messages"
    assert dict(rec.last.url.params) == {"limit": "100", "status": "failed"}
    assert page.total is None
    m = page.data[0]
    assert (m.run_id, m.contact_id, m.error_code, m.attempts, m.sent_at) == ("11", "3", "21610", 2, None)


CSV = [b"phone,contactId,status\r\n", b"+2250700000001,3,read\r\n", b"+2250700000002,4,failed\r\n"]


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body arriving in these pieces (then, optionally, a broken connection), sync or async."""

    def __init__(self, pieces: list[bytes], then: Exception | None = None) -> None:
        self.pieces, self.then = pieces, then

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.then is not None:
            raise self.then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self:
            yield piece


def csv_answer(pieces: list[bytes] = CSV, then: Exception | None = None) -> Recorder:
    headers = {"content-type": "text/csv; charset=utf-8"}
    return Recorder(lambda _: httpx.Response(200, headers=headers, stream=Pieces(pieces, then)))


def test_export_streams_the_csv_as_it_arrives() -> None:
    rec = csv_answer()
    with rec.client() as client:
        chunks = client.campaigns.export("7", run="11", status="failed")
        assert rec.requests == []  # sent when the iteration starts
        assert next(chunks) == CSV[0]
        assert list(chunks) == CSV[1:]
    assert (rec.last.method, rec.last.url.path) == ("GET", "/v1/campaigns/7/messages")
    assert dict(rec.last.url.params) == {"run": "11", "status": "failed"}
    assert rec.last.headers["Accept"] == "text/csv"
    with csv_answer().client() as client:
        assert b"".join(client.campaigns.export(7)).count(b"\r\n") == 3


def test_export_errors_are_typed_and_a_download_cut_short_is_a_transport_error() -> None:
    with answer(404, {"detail": "campaign 9 not found"}).client() as client, pytest.raises(NotFoundError):
        next(client.campaigns.export("9"))
    # A server without the CSV export answers JSON: an error, not JSON written into the file.
    with answer(200, {"data": []}).client() as client, pytest.raises(DispatcherError, match="not text/csv"):
        list(client.campaigns.export("7"))
    cut = csv_answer(CSV[:2], then=httpx.RemoteProtocolError("incomplete chunked read"))
    with cut.client() as client, pytest.raises(TransportError, match="incomplete chunked read"):
        list(client.campaigns.export("7"))


def test_the_async_client_exports_the_same_way() -> None:
    rec = csv_answer()

    async def main() -> list[bytes]:
        async with rec.async_client() as client:
            return [chunk async for chunk in client.campaigns.export("7", run=11)]

    assert asyncio.run(main()) == CSV
    assert dict(rec.last.url.params) == {"run": "11"} and rec.last.headers["Accept"] == "text/csv"

    async def missing() -> None:
        async with answer(404, {"detail": "campaign 9 not found"}).async_client() as client:
            async for _ in client.campaigns.export("9"):
                pass

    with pytest.raises(NotFoundError, match="campaign 9 not found"):
        asyncio.run(missing())


def test_senders_contacts_groups_and_templates_requests() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        p = request.url.path
        item = {"id": "1", "name": "n", "label": "l", "phone": "+2250700000001", "size": 2, "added": 0}
        if request.method == "GET" and p in ("/v1/senders", "/v1/groups"):
            return httpx.Response(200, json={"data": [item]})
        if p == "/v1/templates" and request.method == "GET":
            return httpx.Response(200, json=[item])
        if p.endswith("/contacts") and p.startswith("/v1/groups/"):
            if request.method == "POST":
                return httpx.Response(200, json={"added": 2, "group": item})
            return httpx.Response(200, json={"data": [item], "page": 1, "limit": 50})
        return httpx.Response(200, json=item)

    rec = Recorder(handler)
    with rec.client() as client:
        assert client.senders.create("Promo", rate=5.0).id == "1"
        assert [s.label for s in client.senders.list()] == ["l"]
        client.senders.get("1")
        assert client.contacts.create("2250700000001", first_name="Awa", fields={"ville": "Abidjan"}).phone
        client.contacts.list(phone="2250700000001")
        client.contacts.get(1)
        client.groups.create("VIP", contact_ids=["1", 2])
        assert client.groups.list()[0].size == 2
        client.groups.get("1")
        added = client.groups.add_contacts("1", contact_ids=["1"], contacts=[{"phone": "2250700000009"}])
        members = client.groups.contacts("1", page=2)
        template = client.templates.create("welcome", language="fr", body="Bonjour {{1}}", channel="whatsapp")
        templates = client.templates.list()
        client.templates.get("1")
    assert added.added == 2 and added.group.id == "1"
    assert members.data[0].phone == "+2250700000001" and members.total is None
    assert template.id == "1" and templates[0].name == "n"
    sent = [(r.method, r.url.path, json.loads(r.content) if r.content else dict(r.url.params)) for r in rec.requests]
    assert sent == [
        ("POST", "/v1/senders", {"label": "Promo", "rate": 5.0}),
        ("GET", "/v1/senders", {}),
        ("GET", "/v1/senders/1", {}),
        ("POST", "/v1/contacts", {"phone": "2250700000001", "firstName": "Awa", "fields": {"ville": "Abidjan"}}),
        ("GET", "/v1/contacts", {"phone": "2250700000001"}),
        ("GET", "/v1/contacts/1", {}),
        ("POST", "/v1/groups", {"name": "VIP", "contactIds": ["1", 2]}),
        ("GET", "/v1/groups", {}),
        ("GET", "/v1/groups/1", {}),
        ("POST", "/v1/groups/1/contacts", {"contactIds": ["1"], "contacts": [{"phone": "2250700000009"}]}),
        ("GET", "/v1/groups/1/contacts", {"page": "2"}),
        (
            "POST",
            "/v1/templates",
            {"name": "welcome", "language": "fr", "body": "Bonjour {{1}}", "channel": "whatsapp"},
        ),
        ("GET", "/v1/templates", {}),
        ("GET", "/v1/templates/1", {}),
    ]


def test_update_and_delete_requests() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        item = {"id": "1", "name": "n", "label": "l", "phone": "+2250700000001", "size": 2}
        return httpx.Response(200, json=item)

    rec = Recorder(handler)
    with rec.client() as client:
        assert client.senders.update("1", rate=5.0, active=False, settings={"from": None}).label == "l"
        assert client.contacts.update(1, name="Awa", fields={"ville": None, "code": "X"}).phone
        assert client.contacts.delete("1") is None
        assert client.groups.rename("1", "VIP").name == "n"
        assert client.groups.delete("1") is None
        assert client.groups.remove_contact("1", 2) is None
    sent = [(r.method, r.url.path, json.loads(r.content) if r.content else None) for r in rec.requests]
    assert sent == [
        ("PATCH", "/v1/senders/1", {"settings": {"from": None}, "active": False, "rate": 5.0}),
        ("PATCH", "/v1/contacts/1", {"name": "Awa", "fields": {"ville": None, "code": "X"}}),
        ("DELETE", "/v1/contacts/1", None),
        ("PATCH", "/v1/groups/1", {"name": "VIP"}),
        ("DELETE", "/v1/groups/1", None),
        ("DELETE", "/v1/groups/1/contacts/2", None),
    ]


# --- answers --------------------------------------------------------------------------------------------


def test_a_campaign_answer_is_typed_and_keeps_unknown_fields() -> None:
    with answer(201, CAMPAIGN).client() as client:
        c = client.campaigns.get("7")
    assert (c.status, c.sender_id, c.sender_label, c.total_segments, c.recipients) == ("SENT", "1", "My Sender", 2, 2)
    assert c.created_at == datetime(2024, 3, 18, 8, 0, 0, 123456, tzinfo=UTC)
    assert (c.stats.total, c.stats.sent, c.stats.failed, c.stats.delivered, c.stats.pending) == (2, 1, 1, 1, 0)
    assert c.contacts is not None and c.contacts[0].status == "delivered" and c.contacts[0].fields["ville"] == "Abidjan"
    assert c.errors is not None and c.errors[0].count == 1
    assert c.runs is not None and c.runs[0].stats.sent == 1 and c.runs[0].stats.skipped == 0
    assert c.model_extra == {"somethingNew": {"added": "later"}}
    assert c.model_dump(by_alias=True)["statusReason"] is None
    whatsapp = Campaign.model_validate({**CAMPAIGN, "template": "commande_prete", "language": "fr"})
    assert (whatsapp.template, whatsapp.language, c.template) == ("commande_prete", "fr", None)
    # A list summary has no details: those fields are None, not empty.
    summary = Campaign.model_validate({k: CAMPAIGN[k] for k in ("id", "status", "stats")})
    assert summary.contacts is None and summary.runs is None
    assert Campaign(id="1", status_reason="x").status_reason == "x"  # populate by name


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthenticationError), (404, NotFoundError), (409, ConflictError)],
)
def test_text_details_become_typed_errors(status: int, cls: type[DispatcherError]) -> None:
    with answer(status, {"detail": "campaign 9 not found"}).client() as client, pytest.raises(cls) as caught:
        client.campaigns.get("9")
    assert caught.value.status_code == status
    assert caught.value.body == {"detail": "campaign 9 not found"}
    assert str(caught.value) == f"HTTP {status}: campaign 9 not found"


def test_a_422_is_a_validation_error_naming_each_field() -> None:
    detail = [
        {"loc": ["body", "contacts", 0, "phone"], "msg": "not a valid number", "type": "phone"},
        {"loc": ["body", "text"], "msg": "Field required", "type": "missing"},
        {"loc": ["header", "Idempotency-Key"], "msg": "reused", "type": "idempotency"},
    ]
    with answer(422, {"detail": detail}).client() as client, pytest.raises(ValidationError) as caught:
        client.campaigns.create(text="x", contacts=["1"])
    error = caught.value
    assert error.status_code == 422 and error.errors == detail and error.body == {"detail": detail}
    assert error.field_paths == ["contacts.0.phone", "text", "header.Idempotency-Key"]
    assert str(error) == (
        "invalid request: contacts.0.phone: not a valid number; text: Field required; header.Idempotency-Key: reused"
    )


def test_server_errors_other_statuses_and_unreadable_answers() -> None:
    rec = Recorder(lambda _: httpx.Response(503, text="upstream down"))
    with rec.client() as client, pytest.raises(ServerError) as server:
        client.campaigns.list()
    assert server.value.status_code == 503 and server.value.body == "upstream down"
    with answer(429, {"detail": "slow down"}).client() as client, pytest.raises(DispatcherError) as other:
        client.campaigns.list()
    assert type(other.value) is DispatcherError and other.value.status_code == 429
    with Recorder(lambda _: httpx.Response(200, text="<html>")).client() as client:
        with pytest.raises(DispatcherError, match="not JSON"):
            client.campaigns.get("1")
    with answer(200, {"no": "id"}).client() as client, pytest.raises(DispatcherError, match="unexpected answer"):
        client.campaigns.get("1")


def test_a_refusal_under_another_status_reads_as_its_messages() -> None:
    detail = [{"loc": ["body"], "msg": "the request body is larger than 50 MB", "type": "too_large"}]
    with answer(413, {"detail": detail}).client() as client, pytest.raises(DispatcherError) as caught:
        client.campaigns.create(text="x", contacts=["1"])
    assert str(caught.value) == "HTTP 413: the request body is larger than 50 MB"
    assert caught.value.status_code == 413 and caught.value.body == {"detail": detail}


def test_a_failed_connection_is_a_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with Recorder(refuse).client() as client, pytest.raises(TransportError) as caught:
        client.campaigns.get("1")
    assert caught.value.status_code is None and isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "GET /v1/campaigns/1" in str(caught.value)


# --- async ----------------------------------------------------------------------------------------------


def test_the_async_client_sends_the_same_requests_and_raises_the_same_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/groups/"):
            return httpx.Response(200, json={"added": 1, "group": {"id": "3", "name": "VIP", "size": 1}})
        if request.url.path.startswith("/v1/templates/"):
            return httpx.Response(200, json={"id": "4", "name": "welcome", "language": "fr"})
        return httpx.Response(201, json=CAMPAIGN)

    rec = Recorder(handler)

    async def main() -> tuple[Campaign, Campaign]:
        async with rec.async_client() as client:
            created = await client.campaigns.create(text="x", contacts=["2250700000001"], idempotency_key="k")
            got = await client.campaigns.get(created.id)
            added = await client.groups.add_contacts("3", contact_ids=["1"])
            template = await client.templates.get("4")
            assert (added.added, added.group.size, template.language) == (1, 1, "fr")
            return created, got

    created, got = asyncio.run(main())
    assert created.id == got.id == "7" and got.stats.sent == 1
    assert rec.requests[0].headers["Idempotency-Key"] == "k"
    assert rec.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert rec.body(0) == {"contacts": [{"phone": "2250700000001"}], "text": "x"}
    assert [r.url.path for r in rec.requests] == [
        "/v1/campaigns",
        "/v1/campaigns/7",
        "/v1/groups/3/contacts",
        "/v1/templates/4",
    ]

    detail = [{"loc": ["body", "contacts", 0, "phone"], "msg": "bad", "type": "phone"}]

    async def failing() -> None:
        async with answer(422, {"detail": detail}).async_client() as client:
            await client.campaigns.create(text="x", contacts=["1"])

    with pytest.raises(ValidationError, match=r"contacts\.0\.phone: bad"):
        asyncio.run(failing())

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=request)

    async def unreachable() -> None:
        async with Recorder(refuse).async_client() as client:
            await client.senders.list()

    with pytest.raises(TransportError, match="ReadTimeout"):
        asyncio.run(unreachable())


# --- configuration --------------------------------------------------------------------------------------


def test_url_and_token_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_API_URL", "http://env.test:9000/api/")
    monkeypatch.setenv("DISPATCHER_API_TOKEN", "dsp_from-env")
    rec = Recorder()
    with Client(transport=rec.transport) as client:
        client.campaigns.get("1")
    assert str(rec.last.url) == "http://env.test:9000/api/v1/campaigns/1"
    assert rec.last.headers["Authorization"] == "Bearer dsp_from-env"
    monkeypatch.delenv("DISPATCHER_API_TOKEN")
    with pytest.raises(ValueError, match="DISPATCHER_API_TOKEN"):
        Client()


def test_the_client_closes_its_shared_http_client() -> None:
    rec = Recorder()
    with rec.client() as client:
        assert client.campaigns._http is client.groups._http
    assert client._http.is_closed

    async def main() -> AsyncClient:
        async with rec.async_client() as aclient:
            assert aclient.campaigns._http is aclient.templates._http
        return aclient

    assert asyncio.run(main())._http.is_closed


def test_methods_show_the_calls_signature_and_docs() -> None:
    import inspect

    with Recorder().client() as client:
        assert list(inspect.signature(client.campaigns.get).parameters) == ["campaign_id", "contacts"]
        assert "idempotency_key" in inspect.signature(client.campaigns.create).parameters
        assert client.campaigns.get.__doc__ and "live stats" in client.campaigns.get.__doc__
    aclient = Recorder().async_client()
    assert inspect.iscoroutinefunction(aclient.campaigns.get)
    assert list(inspect.signature(aclient.groups.add_contacts).parameters) == ["group_id", "contact_ids", "contacts"]
    asyncio.run(aclient.aclose())


# --- imports ----------------------------------------------------------------------------------------------

IMPORT: dict[str, Any] = {
    "id": "9",
    "status": "queued",
    "groupId": "5",
    "format": "csv",
    "rows": 0,
    "errors": [],
    "ignoredColumns": [],
    "createdAt": NOW,
}


def test_import_file_streams_the_file_with_its_type_and_the_group(tmp_path: Path) -> None:
    # Given a file larger than one piece of the upload
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_bytes(b"phone\n" + b"2250700000001\n" * 10_000)
    ndjson_file = tmp_path / "contacts.jsonl"
    ndjson_file.write_bytes(b'{"phone": "2250700000001"}\n')
    rec = answer(202, IMPORT)
    with rec.client() as client:
        started = client.contacts.import_file(csv_file, group_id=5, country="CI")
        client.contacts.import_file(ndjson_file, group_id="5")
        client.contacts.import_file(csv_file, group_id="5", content_type="application/x-ndjson")
    assert (started.id, started.status, started.group_id, started.is_final) == ("9", "queued", "5", False)
    sent = rec.requests[0]
    assert (sent.method, sent.url.path, dict(sent.url.params)) == (
        "POST",
        "/v1/contacts/imports",
        {"groupId": "5", "country": "CI"},
    )
    assert sent.headers["Content-Type"] == "text/csv" and sent.content == csv_file.read_bytes()
    assert "Content-Length" not in sent.headers  # sent in pieces, as it is read
    assert [r.headers["Content-Type"] for r in rec.requests[1:]] == ["application/x-ndjson"] * 2


def test_the_async_client_streams_the_same_upload_and_watches_the_import(tmp_path: Path) -> None:
    file = tmp_path / "contacts.csv"
    file.write_bytes(b"phone\n" + b"2250700000001\n" * 10_000)
    states = iter(["running", "done"])
    rec = Recorder(
        lambda r: (
            httpx.Response(202, json=IMPORT)
            if r.method == "POST"
            else httpx.Response(
                200,
                json={
                    **IMPORT,
                    "status": next(states),
                    "rows": 1,
                    "errors": [{"line": 2, "column": "phone", "reason": "bad"}],
                },
            )
        )
    )

    async def main() -> list[str]:
        async with rec.async_client() as client:
            started = await client.contacts.import_file(file, group_id="5")
            return [started.status or ""] + [
                i.status or "" async for i in client.contacts.watch_import("9", interval=0)
            ]

    assert asyncio.run(main()) == ["queued", "running", "done"]
    assert rec.requests[0].content == file.read_bytes()
    assert [r.url.path for r in rec.requests[1:]] == ["/v1/contacts/imports/9"] * 2


def test_watch_import_ends_with_the_final_import_and_its_errors() -> None:
    states = iter(["queued", "failed"])
    rec = Recorder(
        lambda _: httpx.Response(200, json={**IMPORT, "status": next(states), "statusReason": "group deleted"})
    )
    with rec.client() as client:
        seen = list(client.contacts.watch_import(9, interval=0))
    assert [(i.status, i.is_final) for i in seen] == [("queued", False), ("failed", True)]
    assert seen[-1].status_reason == "group deleted"
