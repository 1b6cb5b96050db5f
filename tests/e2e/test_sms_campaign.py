"""A campaign from submission to the provider: real API, real worker, real Redis, the sandbox over HTTP."""

from __future__ import annotations

import httpx

from tests.support.tenants import Tenant, ci_phone


def test_a_thousand_recipients_get_one_personalised_sms_each(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    # Given 1,000 new contacts with names and a custom field
    contacts = [
        {"phone": ci_phone(i), "firstName": f"Awa{i}", "lastName": "Koné", "code": f"C{i:04d}"} for i in range(1000)
    ]
    payload = {
        "name": "Rentrée",
        "contacts": contacts,
        "text": "Bonjour @nom_complet, votre code @code.",
        "senderId": "My Sender",
    }

    # When the campaign is submitted
    response = tenant.post("/v1/campaigns", payload)

    # Then it is accepted with its recipients and segments counted
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["recipients"] == 1000
    assert created["encoding"] == "GSM-7"
    assert created["segments"] == 1 and created["totalSegments"] == 1000
    # And it ends SENT with every message counted once
    final = tenant.wait_final(created["id"])
    assert final["status"] == "SENT"
    assert {k: final["stats"][k] for k in ("total", "sent", "failed", "pending")} == {
        "total": 1000,
        "sent": 1000,
        "failed": 0,
        "pending": 0,
    }
    # And the provider received exactly 1,000 distinct, correctly personalised messages
    received = sandbox_box.get("/_sandbox/messages").json()["messages"]
    assert len(received) == 1000
    by_number = {m["to"]: m for m in received}
    assert len(by_number) == 1000
    for i in range(1000):
        message = by_number["+" + ci_phone(i)]
        assert message["body"] == f"Bonjour Awa{i} Koné, votre code C{i:04d}."
        assert message["from"] == "My Sender"


def test_permanent_failures_are_counted_and_named(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    # Given 1,000 recipients, 50 of whom the provider refuses permanently
    phones = [ci_phone(10_000 + i) for i in range(1000)]
    failing = phones[::20]
    fault = {"numbers": failing, "kind": "permanent", "code": 21211, "message": "The 'To' number is not valid."}
    assert sandbox_box.post("/_sandbox/faults", json=fault).status_code == 201

    # When the campaign runs
    created = tenant.post("/v1/campaigns", {"contacts": [{"phone": p} for p in phones], "text": "Promo -20%"}).json()
    final = tenant.wait_final(created["id"])

    # Then 950 are sent and 50 failed, and the details name the provider's error
    assert final["status"] == "SENT"
    assert (final["stats"]["sent"], final["stats"]["failed"], final["stats"]["pending"]) == (950, 50, 0)
    assert final["errors"] == [{"code": "21211", "error": "The 'To' number is not valid.", "count": 50}]
    failed_contacts = {c["phone"] for c in final["contacts"] if c["status"] == "failed"}
    assert failed_contacts == {"+" + p for p in failing}
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 950


def test_a_campaign_whose_every_message_fails_is_failed(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    phones = [ci_phone(20_000 + i) for i in range(5)]
    sandbox_box.post("/_sandbox/faults", json={"numbers": phones, "kind": "permanent", "code": 21610})
    created = tenant.post("/v1/campaigns", {"contacts": [{"phone": p} for p in phones], "text": "Hi"}).json()
    final = tenant.wait_final(created["id"])
    assert final["status"] == "FAILED"
    assert final["stats"]["failed"] == 5
    assert final["errors"][0]["code"] == "21610"


def test_the_envelope_with_channel_sms_sends_like_the_sms_object(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    payload = {
        "title": "Rappel",
        "contacts_and_data": {
            "*": {"channel": "sms", "sender_label_id": "My Sender", "text": "Votre commande @commande est prête"},
            "contacts": [
                {"phone": ci_phone(30_001), "data": {"commande": "ORD-123"}},
                {"phone": ci_phone(30_002), "data": {"commande": "ORD-456"}},
            ],
        },
    }
    created = tenant.post("/v1/campaigns", payload)
    assert created.status_code == 201, created.text
    final = tenant.wait_final(created.json()["id"])
    assert final["stats"]["sent"] == 2
    bodies = sorted(m["body"] for m in sandbox_box.get("/_sandbox/messages").json()["messages"])
    assert bodies == ["Votre commande ORD-123 est prête", "Votre commande ORD-456 est prête"]


def test_a_phone_listed_directly_and_through_a_group_gets_one_message(
    tenant: Tenant, sandbox_box: httpx.Client
) -> None:
    # Given a group holding a phone that the campaign also lists directly
    shared, other = ci_phone(40_001), ci_phone(40_002)
    c1 = tenant.post("/v1/contacts", {"phone": shared, "firstName": "Ali"}).json()
    c2 = tenant.post("/v1/contacts", {"phone": other, "firstName": "Ben"}).json()
    group = tenant.post("/v1/groups", {"name": "VIP", "contactIds": [c1["id"], c2["id"]]}).json()
    assert group["size"] == 2

    created = tenant.post(
        "/v1/campaigns", {"contacts": [{"phone": "+" + shared}], "groupsIds": [group["id"]], "text": "Salut @prenom"}
    ).json()
    assert created["recipients"] == 2
    final = tenant.wait_final(created["id"])

    # Then each phone gets exactly one message
    received = sandbox_box.get("/_sandbox/messages").json()["messages"]
    assert sorted((m["to"], m["body"]) for m in received) == [("+" + shared, "Salut Ali"), ("+" + other, "Salut Ben")]
    assert final["stats"]["total"] == 2
