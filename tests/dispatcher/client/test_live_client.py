"""`dispatcher.client` against a live API (uvicorn in a thread), the real worker and the sandbox.

Run with `DISPATCHER_TEST_REDIS_DB=<own db>` when another session may use the same Redis.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from dispatcher.client import (
    AsyncClient,
    AuthenticationError,
    Campaign,
    Client,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from tests.support.processes import Stack, free_port
from tests.support.tenants import Tenant, ci_phone

pytestmark = pytest.mark.integration

FINAL = ("SENT", "FAILED", "CANCELLED")


@pytest.fixture(scope="module")
def api_url(stack: Stack) -> Iterator[str]:
    """The real API on a free port, served by uvicorn in a daemon thread of this process (same env as `stack`)."""
    from dispatcher.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start on port {port}")
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def client(api_url: str, tenant: Tenant) -> Iterator[Client]:
    with Client(base_url=api_url, token=tenant.token) as c:
        yield c


def wait_final(client: Client, campaign_id: str, timeout: float = 90.0) -> Campaign:
    deadline = time.monotonic() + timeout
    while True:
        campaign = client.campaigns.get(campaign_id)
        if campaign.status in FINAL:
            return campaign
        if time.monotonic() > deadline:
            raise AssertionError(
                f"campaign {campaign_id} not final after {timeout}s: {campaign.status} {campaign.stats}"
            )
        time.sleep(0.25)


def test_create_wait_until_sent_list_and_messages(client: Client, sandbox_box: httpx.Client) -> None:
    created = client.campaigns.create(
        name="client",
        contacts=[{"phone": ci_phone(70_001), "first_name": "Awa"}, ci_phone(70_002)],
        text="Bonjour de la part du client",
        sender_id="My Sender",
    )
    assert (created.status, created.type, created.sender_label, created.recipients) == (
        "PENDING",
        "SMS",
        "My Sender",
        2,
    )
    assert created.contacts is not None and created.contacts[0].first_name == "Awa"

    done = wait_final(client, created.id)
    assert done.status == "SENT" and done.stats.total == 2 and done.stats.sent == 2 and done.stats.pending == 0
    assert done.runs is not None and len(done.runs) == 1 and done.runs[0].finished_at is not None
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 2

    sent = client.campaigns.list(status="SENT", limit=5)
    assert (sent.total, sent.limit, [c.id for c in sent.data]) == (1, 5, [created.id])
    assert sent.data[0].contacts is None  # list pages carry summaries
    assert client.campaigns.list(status="FAILED").total == 0

    messages = client.campaigns.messages(created.id)
    assert sorted(m.phone or "" for m in messages.data) == [f"+{ci_phone(70_001)}", f"+{ci_phone(70_002)}"]
    assert all(m.status in ("sent", "delivered", "read") and m.body for m in messages.data)


def test_a_bad_number_is_a_validation_error_naming_the_field(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.campaigns.create(contacts=[{"phone": ci_phone(71_000)}, {"phone": "22500000000"}], text="x")
    error = caught.value
    assert error.status_code == 422
    assert error.errors[0]["loc"] == ["body", "contacts", 1, "phone"]
    assert error.field_paths == ["contacts.1.phone"] and "contacts.1.phone: " in str(error)
    with pytest.raises(ValidationError) as first:
        client.campaigns.create(contacts=[{"phone": "22500000000"}], text="x")
    assert "contacts.0.phone" in str(first.value)
    assert client.campaigns.list().total == 0  # nothing was created


def test_unknown_ids_are_not_found_errors(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.campaigns.get("999999999")
    assert caught.value.status_code == 404 and caught.value.body == {"detail": "campaign 999999999 not found"}
    for call in (client.senders.get, client.contacts.get, client.groups.get, client.campaigns.messages):
        with pytest.raises(NotFoundError):
            call("999999999")


def test_a_wrong_token_is_an_authentication_error(api_url: str) -> None:
    with Client(base_url=api_url, token="dsp_not-a-token") as bad, pytest.raises(AuthenticationError) as caught:
        bad.campaigns.list()
    assert caught.value.status_code == 401 and caught.value.body == {"detail": "invalid or revoked token"}


def test_a_replayed_idempotency_key_returns_the_same_campaign(client: Client, sandbox_box: httpx.Client) -> None:
    def submit() -> Campaign:
        return client.campaigns.create(contacts=[ci_phone(72_000)], text="once", idempotency_key="client-key-1")

    first, again = submit(), submit()
    assert again.id == first.id
    wait_final(client, first.id)
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 1
    with pytest.raises(ValidationError) as reused:
        client.campaigns.create(contacts=[ci_phone(72_000)], text="other", idempotency_key="client-key-1")
    assert reused.value.field_paths == ["header.Idempotency-Key"]


def test_pause_resume_reschedule_and_cancel_a_scheduled_campaign(client: Client) -> None:
    fire_at = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    created = client.campaigns.create(
        contacts=[ci_phone(73_000)], text="plus tard", type="SCHEDULED", scheduled_date=fire_at
    )
    assert (created.status, created.type, created.scheduled_date) == ("PENDING", "SCHEDULED", fire_at)
    assert created.runs is not None and created.runs[0].status == "scheduled"

    paused = client.campaigns.pause(created.id)
    assert (paused.status, paused.status_reason) == ("PAUSED", "paused by the user")
    with pytest.raises(ConflictError) as twice:
        client.campaigns.pause(created.id)
    assert twice.value.status_code == 409 and "PENDING" in str(twice.value)

    assert client.campaigns.resume(created.id).status == "PENDING"
    later = fire_at + timedelta(hours=1)
    assert client.campaigns.reschedule(created.id, later).scheduled_date == later

    cancelled = client.campaigns.cancel(created.id)
    assert cancelled.status == "CANCELLED" and cancelled.runs is not None and cancelled.runs[0].status == "cancelled"
    assert [c.id for c in client.campaigns.list(status="CANCELLED").data] == [created.id]
    with pytest.raises(ConflictError):
        client.campaigns.cancel(created.id)


def test_senders_contacts_and_groups(client: Client, sandbox_box: httpx.Client) -> None:
    assert [s.label for s in client.senders.list()] == ["My Sender"]
    promo = client.senders.create("Promo", active=False)
    assert (promo.label, promo.active, promo.default, client.senders.get(promo.id).id) == (
        "Promo",
        False,
        False,
        promo.id,
    )

    awa = client.contacts.create(ci_phone(74_001), first_name="Awa", fields={"ville": "Abidjan"})
    assert (awa.phone, awa.first_name, awa.fields) == (f"+{ci_phone(74_001)}", "Awa", {"ville": "Abidjan"})
    assert client.contacts.get(awa.id).id == awa.id
    assert [c.id for c in client.contacts.list(phone=ci_phone(74_001)).data] == [awa.id]

    group = client.groups.create("VIP", contact_ids=[awa.id])
    added = client.groups.add_contacts(group.id, contacts=[{"phone": ci_phone(74_002), "first_name": "Koffi"}])
    assert (group.size, added.added, added.group.size) == (1, 1, 2)
    assert [g.name for g in client.groups.list()] == ["VIP"]
    members = client.groups.contacts(group.id)
    assert [m.first_name for m in members.data] == ["Awa", "Koffi"]

    campaign = client.campaigns.create(groups_ids=[group.id], text="Bonjour @prenom")
    assert wait_final(client, campaign.id).stats.sent == 2


def test_the_async_client_creates_and_gets(api_url: str, tenant: Tenant, sandbox_box: httpx.Client) -> None:
    async def main() -> tuple[Campaign, Campaign]:
        async with AsyncClient(base_url=api_url, token=tenant.token) as client:
            created = await client.campaigns.create(contacts=[ci_phone(75_000)], text="async")
            deadline = time.monotonic() + 90
            campaign = await client.campaigns.get(created.id)
            while campaign.status not in FINAL and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                campaign = await client.campaigns.get(created.id)
            return created, campaign

    created, done = asyncio.run(main())
    assert done.id == created.id and done.status == "SENT" and done.stats.sent == 1


def test_export_streams_the_csv_over_http(
    api_url: str, tenant: Tenant, client: Client, sandbox_box: httpx.Client
) -> None:
    phones = [ci_phone(76_000 + i) for i in range(12)]
    created = client.campaigns.create(contacts=phones, text="Bonjour")
    done = wait_final(client, created.id)
    text = b"".join(client.campaigns.export(created.id)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["phone"] for row in rows) == ["+" + p for p in phones]
    assert {row["status"] for row in rows} == {"sent"} and done.stats.sent == 12

    async def exported() -> bytes:
        assert done.runs
        async with AsyncClient(base_url=api_url, token=tenant.token) as aclient:
            return b"".join([chunk async for chunk in aclient.campaigns.export(created.id, run=done.runs[0].id)])

    assert asyncio.run(exported()).decode() == text
    with pytest.raises(NotFoundError):
        list(client.campaigns.export("999999"))


def test_templates_when_the_server_has_them(client: Client, api_url: str) -> None:
    if "/v1/templates" not in httpx.get(f"{api_url}/openapi.json").json()["paths"]:
        pytest.skip("this server has no /v1/templates yet")
    template = client.templates.create("welcome", language="fr", body="Bonjour {{1}}", channel="whatsapp")
    assert (template.language, template.variables, template.channel) == ("fr", 1, "whatsapp")
    assert client.templates.get(template.id).name == "welcome"
    assert template.id in [t.id for t in client.templates.list()]
