"""Editing the audience and the senders: contacts, groups and senders change and go, campaigns follow."""

from __future__ import annotations

import httpx

from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone


def _loc(response: httpx.Response) -> tuple[object, ...]:
    assert response.status_code == 422, response.text
    return tuple(response.json()["detail"][0]["loc"])


def test_a_contact_changes_only_what_is_given(tenant: Tenant) -> None:
    made = tenant.post(
        "/v1/contacts", {"phone": ci_phone(80_000), "name": "Awa", "firstName": "A", "fields": {"ville": "Abj"}}
    ).json()
    other = tenant.post("/v1/contacts", {"phone": ci_phone(80_001)}).json()
    path = f"/v1/contacts/{made['id']}"
    changed = tenant.patch(path, {"name": "Awa K", "firstName": None, "fields": {"ville": None, "code": "X"}}).json()
    assert (changed["name"], changed["firstName"], changed["fields"]) == ("Awa K", None, {"code": "X"})
    assert changed["phone"] == made["phone"] and changed["lastName"] is None
    moved = tenant.patch(path, {"phone": ci_phone(80_002)})
    assert moved.status_code == 200 and moved.json()["phone"] == "+" + ci_phone(80_002)
    taken = tenant.patch(path, {"phone": other["phone"]})
    assert taken.status_code == 409 and "phone" in taken.json()["detail"]
    assert _loc(tenant.patch(path, {"phone": "12"})) == ("body", "phone")
    assert _loc(tenant.patch(path, {"phone": None})) == ("body", "phone")
    assert _loc(tenant.patch(path, {"fields": {f"f{i}": i for i in range(50)}})) == ("body", "fields")
    assert _loc(tenant.patch(path, {"nickname": "x"})) == ("body", "nickname")
    assert tenant.get(path).json()["fields"] == {"code": "X"}  # nothing of the refused changes stayed
    assert _loc(tenant.patch(path, {"fields": {"e-mail": "x"}})) == ("body", "fields")
    assert _loc(tenant.patch(path, {"fields": {"code": "x" * 1025}})) == ("body", "fields")
    assert tenant.patch("/v1/contacts/999999", {"name": "x"}).status_code == 404


def test_a_deleted_contact_leaves_its_groups_and_keeps_its_history(tenant: Tenant) -> None:
    awa = tenant.post("/v1/contacts", {"phone": ci_phone(81_000), "name": "Awa"}).json()
    ben = tenant.post("/v1/contacts", {"phone": ci_phone(81_001)}).json()
    group = tenant.post("/v1/groups", {"name": "G", "contactIds": [awa["id"], ben["id"]]}).json()
    campaign = tenant.post("/v1/campaigns", {"contacts": [{"id": awa["id"]}], "text": "Bonjour @nom_complet"}).json()
    tenant.wait_final(campaign["id"])
    assert tenant.delete(f"/v1/contacts/{awa['id']}").status_code == 204
    assert tenant.get(f"/v1/contacts/{awa['id']}").status_code == 404
    assert tenant.delete(f"/v1/contacts/{awa['id']}").status_code == 404
    assert tenant.get(f"/v1/groups/{group['id']}").json()["size"] == 1
    history = tenant.get(f"/v1/campaigns/{campaign['id']}/messages").json()["data"]
    assert [(m["contactId"], m["phone"], m["status"], m["body"]) for m in history] == [
        (awa["id"], awa["phone"], "sent", "Bonjour Awa")
    ]
    # Naming it again is a 422 like any unknown contact.
    again = tenant.post("/v1/campaigns", {"contacts": [{"id": awa["id"]}], "text": "x"})
    assert _loc(again) == ("body", "contacts", 0, "id")


def test_groups_are_renamed_emptied_and_deleted(tenant: Tenant) -> None:
    awa = tenant.post("/v1/contacts", {"phone": ci_phone(82_000)}).json()
    ben = tenant.post("/v1/contacts", {"phone": ci_phone(82_001)}).json()
    group = tenant.post("/v1/groups", {"name": "G", "contactIds": [awa["id"], ben["id"]]}).json()
    tenant.post("/v1/groups", {"name": "Other"})
    path = f"/v1/groups/{group['id']}"
    assert tenant.patch(path, {"name": "VIP"}).json()["name"] == "VIP"
    assert _loc(tenant.patch(path, {"name": "Other"})) == ("body", "name")
    assert tenant.delete(f"{path}/contacts/{awa['id']}").status_code == 204
    assert tenant.delete(f"{path}/contacts/{awa['id']}").status_code == 404
    members = tenant.get(f"{path}/contacts").json()
    assert [m["id"] for m in members["data"]] == [ben["id"]] and members["total"] == 1
    sent = tenant.post("/v1/campaigns", {"groupsIds": [group["id"]], "text": "x"}).json()
    assert sent["recipients"] == 1
    tenant.wait_final(sent["id"])
    assert tenant.delete(path).status_code == 204
    assert tenant.get(path).status_code == 404
    assert tenant.get(f"/v1/contacts/{awa['id']}").status_code == 200  # members stay contacts
    assert _loc(tenant.post("/v1/campaigns", {"groupsIds": [group["id"]], "text": "x"})) == ("body", "groupsIds", 0)


def test_a_sender_is_changed_made_default_and_deactivated(tenant: Tenant) -> None:
    made = tenant.post("/v1/senders", {"label": "Promo", "rate": 50}).json()
    path = f"/v1/senders/{made['id']}"
    changed = tenant.patch(path, {"label": "Promo 2", "rate": 5, "burst": 2}).json()
    assert (changed["label"], changed["rate"], changed["burst"], changed["default"]) == ("Promo 2", 5, 2, False)
    assert _loc(tenant.patch(path, {"label": "My Sender"})) == ("body", "label")
    assert _loc(tenant.patch(path, {"settings": {"base_url": "ftp://x"}})) == ("body", "settings", "base_url")
    assert _loc(tenant.patch(path, {"channel": "whatsapp"})) == ("body", "channel")

    assert tenant.patch(path, {"default": True}).json()["default"] is True
    listed = {s["label"]: s["default"] for s in tenant.get("/v1/senders").json()["data"]}
    assert listed == {"My Sender": False, "Promo 2": True}
    sent = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(83_000)}], "text": "x"}).json()
    assert sent["senderLabel"] == "Promo 2"
    tenant.wait_final(sent["id"])

    assert tenant.patch(path, {"active": False}).json()["active"] is False
    refused = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(83_001)}], "text": "x"})
    assert _loc(refused) == ("body", "senderId")
    tenant.patch(f"/v1/senders/{tenant.sender_id}", {"default": True})
    named = tenant.post(
        "/v1/campaigns", {"contacts": [{"phone": ci_phone(83_002)}], "text": "x", "senderId": "Promo 2"}
    ).json()
    assert named["senderLabel"] == "My Sender" and "is inactive" in named["warnings"][0]
    tenant.wait_final(named["id"])


def test_a_providers_required_settings_cannot_be_removed(tenant: Tenant) -> None:
    settings = {"account_sid": "AC1", "auth_token": "t", "from": "X", "base_url": "https://api.twilio.com"}
    made = tenant.post("/v1/senders", {"label": "T", "provider": "twilio", "settings": settings}).json()
    path = f"/v1/senders/{made['id']}"
    assert _loc(tenant.patch(path, {"settings": {"auth_token": None}})) == ("body", "settings")
    assert tenant.patch(path, {"settings": {"auth_token": "new"}}).status_code == 200


def test_fields_saved_before_the_limits_can_still_be_removed(stack: Stack, tenant: Tenant) -> None:
    from dispatcher.db.models import Contact
    from dispatcher.db.session import session_scope

    made = tenant.post("/v1/contacts", {"phone": ci_phone(84_000)}).json()
    with session_scope(stack.db_url) as session:  # as an older version stored them
        session.get_one(Contact, int(made["id"])).fields = {"e-mail": "a@b.ci", **{f"f{i}": i for i in range(60)}}
    path = f"/v1/contacts/{made['id']}"
    trimmed = tenant.patch(path, {"fields": {"e-mail": None, "f0": None, "f1": "one"}})
    assert trimmed.status_code == 200, trimmed.text
    assert len(trimmed.json()["fields"]) == 59 and "e-mail" not in trimmed.json()["fields"]
    assert _loc(tenant.patch(path, {"fields": {"new": 1}})) == ("body", "fields")  # 60 would not shrink
