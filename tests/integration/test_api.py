"""The HTTP contract: auth, account scoping, validation answers, idempotency, senders, lists."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Tenant, ci_phone, make_tenant
from tests.support.processes import Stack


def _detail(response: httpx.Response) -> list[tuple[tuple[object, ...], str]]:
    assert response.status_code == 422, response.text
    return [(tuple(d["loc"]), d["msg"]) for d in response.json()["detail"]]


def test_every_v1_route_needs_a_valid_bearer_token(tenant: Tenant) -> None:
    for path in ("/v1/campaigns", "/v1/senders", "/v1/contacts", "/v1/groups"):
        assert tenant.client.get(path).status_code == 401
        wrong = tenant.client.get(path, headers={"Authorization": "Bearer dsp_not-a-token"})
        assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid or revoked token"
    assert tenant.client.get("/healthz").status_code == 200


def test_another_accounts_ids_answer_404(stack: Stack, tenant: Tenant, sandbox_box: httpx.Client) -> None:
    other = make_tenant(stack, "other")
    contact = other.post("/v1/contacts", {"phone": ci_phone(50_001)}).json()
    group = other.post("/v1/groups", {"name": "theirs"}).json()
    campaign = other.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(50_002)}], "text": "hi"}).json()
    assert tenant.get(f"/v1/contacts/{contact['id']}").status_code == 404
    assert tenant.get(f"/v1/groups/{group['id']}").status_code == 404
    assert tenant.get(f"/v1/campaigns/{campaign['id']}").status_code == 404
    assert tenant.get(f"/v1/senders/{other.sender_id}").status_code == 404
    # Using them in a submission is refused the same way, naming the field.
    refused = tenant.post(
        "/v1/campaigns", {"contacts": [{"id": contact["id"]}], "groupsIds": [group["id"]], "text": "x"}
    )
    assert {loc for loc, _ in _detail(refused)} == {("body", "contacts", 0, "id"), ("body", "groupsIds", 0)}
    other.wait_final(campaign["id"])


def test_validation_names_every_offending_field_and_queues_nothing(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    payload = {
        "contacts": [
            {"phone": ci_phone(60_001), "firstName": "Ok", "ville": "Abidjan"},
            {"phone": "22500000000"},
            {"phone": ci_phone(60_003)},
        ],
        "text": "Bonjour @prenom de @ville",
    }
    errors = _detail(tenant.post("/v1/campaigns", payload))
    assert errors[0][0] == ("body", "contacts", 1, "phone") and "old 8-digit" in errors[0][1]
    # The second pass (variables) runs only once every phone is valid.
    payload["contacts"].pop(1)
    errors = _detail(tenant.post("/v1/campaigns", payload))
    assert errors == [
        (("body", "contacts", 1, "fields"), f"unknown variable @ville: contact +{ci_phone(60_003)} has no such field")
    ]
    assert tenant.get("/v1/campaigns").json()["total"] == 0
    assert tenant.get("/v1/contacts").json()["total"] == 0  # nothing was saved either
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 0


def test_schema_errors_use_the_same_shape(tenant: Tenant) -> None:
    assert ("body", "text") in {loc for loc, _ in _detail(tenant.post("/v1/campaigns", {"contacts": []}))}
    assert _detail(tenant.post("/v1/campaigns", [1]))[0][0][0] == "body"
    bad_type = _detail(tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(1)}], "text": "x", "type": "X"}))
    assert bad_type[0][0] == ("body", "type")


def test_too_long_a_text_is_refused(tenant: Tenant) -> None:
    response = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(61_000)}], "text": "ê" * 700})
    assert _detail(response) == [(("body", "text"), "the text makes 11 SMS segments (at most 10)")]


def test_segments_and_encoding_are_reported(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    response = tenant.post(
        "/v1/campaigns",
        {
            "contacts": [
                {"phone": ci_phone(62_000), "name": "Chloé"},
                {"phone": ci_phone(62_001), "name": "Maëlle Côté"},
            ],
            "text": "Bonjour @nom_complet " + "a" * 140,
        },
    )
    body = response.json()
    assert (body["encoding"], body["segments"], body["totalSegments"]) == ("UCS-2", 3, 4)
    tenant.wait_final(body["id"])


def test_a_retried_post_with_the_same_idempotency_key_returns_the_first_campaign(
    tenant: Tenant, sandbox_box: httpx.Client
) -> None:
    payload = {"contacts": [{"phone": ci_phone(63_000)}], "text": "once"}
    first = tenant.post("/v1/campaigns", payload, headers={"Idempotency-Key": "abc-1"})
    again = tenant.post("/v1/campaigns", payload, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    tenant.wait_final(first.json()["id"])
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 1
    reused = tenant.post("/v1/campaigns", {**payload, "text": "other"}, headers={"Idempotency-Key": "abc-1"})
    assert _detail(reused)[0][0] == ("header", "Idempotency-Key")


def test_an_inactive_or_unknown_sender_falls_back_to_the_default(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    inactive = tenant.post("/v1/senders", {"label": "Old Name", "active": False}).json()
    assert inactive["default"] is False
    for ref in ("Old Name", "Nobody"):
        body = tenant.post(
            "/v1/campaigns", {"contacts": [{"phone": ci_phone(64_000)}], "text": "x", "senderId": ref}
        ).json()
        assert body["senderLabel"] == "My Sender"
        assert body["warnings"] and "'My Sender' is used" in body["warnings"][0]
        tenant.wait_final(body["id"])


def test_no_sender_at_all_is_a_422(stack: Stack) -> None:
    bare = make_tenant(stack, "bare")
    from dispatcher.db.models import Sender
    from dispatcher.db.session import session_scope

    with session_scope(stack.db_url) as session:
        session.get_one(Sender, bare.sender_id).active = False
    errors = _detail(bare.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(65_000)}], "text": "x"}))
    assert errors[0][0] == ("body", "senderId") and "no active default sms sender" in errors[0][1]


def test_sender_settings_are_never_returned(tenant: Tenant) -> None:
    created = tenant.post(
        "/v1/senders",
        {
            "label": "Twilio",
            "provider": "twilio",
            "settings": {"account_sid": "ACx", "auth_token": "s3cret-token", "from": "+15005550006"},
        },
    )
    assert created.status_code == 201
    assert "s3cret" not in created.text and "s3cret" not in tenant.get("/v1/senders").text
    missing = tenant.post("/v1/senders", {"label": "Twilio2", "provider": "twilio", "settings": {"account_sid": "AC"}})
    assert _detail(missing)[0] == (("body", "settings"), "twilio needs settings: auth_token, from")


def test_contacts_upsert_by_phone_and_groups_add_members(tenant: Tenant) -> None:
    first = tenant.post("/v1/contacts", {"phone": "+" + ci_phone(66_000), "firstName": "A"})
    again = tenant.post("/v1/contacts", {"phone": ci_phone(66_000), "lastName": "B"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert (again.json()["firstName"], again.json()["lastName"]) == ("A", "B")
    assert _detail(tenant.post("/v1/contacts", {"phone": "123"}))[0][0] == ("body", "phone")
    group = tenant.post("/v1/groups", {"name": "G"}).json()
    added = tenant.post(
        f"/v1/groups/{group['id']}/contacts",
        {"contactIds": [first.json()["id"]], "contacts": [{"phone": ci_phone(66_001)}]},
    ).json()
    assert added["added"] == 2 and added["group"]["size"] == 2
    assert len(tenant.get(f"/v1/groups/{group['id']}/contacts").json()["data"]) == 2
    tenant.post("/v1/groups", {"name": "Empty"})
    sizes = {g["name"]: g["size"] for g in tenant.get("/v1/groups").json()["data"]}
    assert (sizes["G"], sizes["Empty"]) == (2, 0)


def test_list_pages_and_filters_by_status(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    sandbox_box.post("/_sandbox/faults", json={"numbers": [ci_phone(67_009)], "kind": "permanent"})
    ids = []
    for i in range(10):
        body = tenant.post(
            "/v1/campaigns", {"name": f"c{i}", "contacts": [{"phone": ci_phone(67_000 + i)}], "text": "x"}
        ).json()
        ids.append(body["id"])
    for cid in ids:
        tenant.wait_final(cid)
    page = tenant.get("/v1/campaigns", params={"page": 2, "limit": 4}).json()
    assert page["total"] == 10 and [c["name"] for c in page["data"]] == ["c5", "c4", "c3", "c2"]
    failed = tenant.get("/v1/campaigns", params={"status": "FAILED"}).json()
    assert [c["name"] for c in failed["data"]] == ["c9"]
    assert tenant.get("/v1/campaigns", params={"status": "SENT"}).json()["total"] == 9
    assert tenant.get("/v1/campaigns", params={"status": "NOPE"}).status_code == 422


def test_ids_that_cannot_exist_are_404_or_422_never_500(tenant: Tenant) -> None:
    for path in (
        "/v1/campaigns/99999999999999999999",
        "/v1/campaigns/abc",
        "/v1/contacts/4294967296",
        "/v1/groups/-1",
        "/v1/senders/0",
        "/v1/templates/1e9",
    ):
        assert tenant.get(path).status_code == 404, path
    response = tenant.post("/v1/campaigns", {"contacts": [{"id": 2**40}], "groupsIds": ["99999999999"], "text": "x"})
    assert {loc for loc, _ in _detail(response)} == {("body", "contacts", 0, "id"), ("body", "groupsIds", 0)}
