"""The HTTP contract: auth, account scoping, validation answers, idempotency, senders, lists."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from dispatcher.tracking.signatures import meta_signature
from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone, make_tenant


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
    tenant.post("/v1/senders", {"label": "WA Line", "channel": "whatsapp"})
    reasons = {"Old Name": "is inactive", "Nobody": "does not exist", "WA Line": "is a whatsapp sender, not sms"}
    for ref, why in reasons.items():
        body = tenant.post(
            "/v1/campaigns", {"contacts": [{"phone": ci_phone(64_000)}], "text": "x", "senderId": ref}
        ).json()
        assert body["senderLabel"] == "My Sender"
        assert body["warnings"] == [f"sender {ref!r} {why}: the default sender 'My Sender' is used"]
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
    messages = f"/v1/campaigns/{ids[9]}/messages"
    assert [m["status"] for m in tenant.get(messages, params={"status": "failed"}).json()["data"]] == ["failed"]
    assert tenant.get(messages, params={"status": "sent"}).json()["data"] == []
    assert len(tenant.get(messages, params={"status": "FAILED"}).json()["data"]) == 1
    assert len(tenant.get(messages, params={"status": ""}).json()["data"]) == 1
    assert tenant.get(messages, params={"status": "failed", "limit": 1, "page": 2}).json()["total"] == 1
    assert _detail(tenant.get(messages, params={"status": "xx"}))[0][0] == ("query", "status")


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


def _raw(tenant: Tenant, method: str, path: str, body: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"}
    return tenant.client.request(method, path, content=body.encode(), headers=headers)


def test_sandbox_senders_get_their_own_secrets_never_returned(
    stack: Stack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatcher.api.routes import webhooks
    from dispatcher.config import get_settings
    from dispatcher.db.models import Sender
    from dispatcher.db.session import session_scope

    created = [
        tenant.post("/v1/senders", {"channel": "whatsapp", "label": f"wa{i}", "provider": "sandbox"}) for i in (1, 2)
    ]
    assert [c.status_code for c in created] == [201, 201]
    with session_scope(stack.db_url) as session:
        stored = [dict(session.get_one(Sender, int(c.json()["id"])).settings) for c in created]
        legacy = Sender(account_id=tenant.account_id, channel="whatsapp", label="old", provider="sandbox", settings={})
        session.add(legacy)
        session.flush()
        legacy_id = legacy.id
    first, second = stored
    assert first["app_secret"] != second["app_secret"] and first["verify_token"] != second["verify_token"]
    for response in [*created, tenant.get("/v1/senders")]:
        assert first["app_secret"] not in response.text and "settings" not in response.text
    payload = b'{"object":"whatsapp_business_account","entry":[]}'

    def signed(sender_id: object, secret: str) -> int:
        headers = {"X-Hub-Signature-256": meta_signature(secret, payload)}
        return tenant.client.post(
            f"/v1/webhooks/whatsapp_cloud/{sender_id}", content=payload, headers=headers
        ).status_code

    # The old shared secret opens nothing; each sender's own does
    assert signed(created[0].json()["id"], "sandbox") == 401
    assert signed(created[0].json()["id"], first["app_secret"]) == 200
    assert signed(legacy_id, "sandbox") == 401
    # A sender without secrets of its own is checked with the operator's fallback, when one is set
    fallback = get_settings().model_copy(update={"sandbox_webhook_secret": SecretStr("operator-secret")})
    monkeypatch.setattr(webhooks, "get_settings", lambda: fallback)
    assert signed(legacy_id, "operator-secret") == 200
    assert signed(created[0].json()["id"], "operator-secret") == 401


def test_private_provider_urls_are_refused_naming_the_field(tenant: Tenant) -> None:
    from dispatcher.config import get_settings

    strict = get_settings().model_copy(update={"allow_private_provider_urls": False})
    tenant.client.app.dependency_overrides[get_settings] = lambda: strict  # type: ignore[attr-defined]
    try:
        for url in ("http://127.0.0.1:8025", "http://localhost", "http://169.254.169.254", "http://[::1]", "ftp://x"):
            sender = {"label": "S", "provider": "sandbox", "settings": {"base_url": url}}
            assert _detail(tenant.post("/v1/senders", sender))[0][0] == ("body", "settings", "base_url"), url
        assert _detail(tenant.post("/v1/senders", {"label": "S", "settings": {"base_url": "http://[::1"}}))
        public = tenant.post("/v1/senders", {"label": "S", "settings": {"base_url": "https://api.twilio.com"}})
        assert public.status_code == 201
    finally:
        tenant.client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    # The test stack allows them (DISPATCHER_ALLOW_PRIVATE_PROVIDER_URLS=true), as dispatcher up does
    local = tenant.post("/v1/senders", {"label": "L", "settings": {"base_url": "http://127.0.0.1:8025"}})
    assert local.status_code == 201


def test_dates_too_far_ahead_or_beyond_utc_are_422_naming_the_field(tenant: Tenant) -> None:
    base = {"contacts": [{"phone": ci_phone(70_000)}], "text": "x"}
    ahead = (datetime.now(UTC) + timedelta(days=366 * 11)).strftime("%Y-%m-%dT09:00:00Z")
    cases = [
        ({**base, "type": "SCHEDULED", "scheduledDate": "9999-12-31T23:45:00-05:00"}, ("body", "scheduledDate")),
        ({**base, "type": "SCHEDULED", "scheduledDate": "0001-01-01T00:00:00+05:00"}, ("body", "scheduledDate")),
        ({**base, "type": "SCHEDULED", "scheduledDate": ahead}, ("body", "scheduledDate")),
        (
            {
                **base,
                "type": "RECURRING",
                "recurring": {"monday": "09:00"},
                "recurringUntil": "9999-12-31T23:59:00-01:00",
            },
            ("body", "recurringUntil"),
        ),
        (
            {**base, "type": "RECURRING", "recurring": {"monday": "09:00"}, "recurringUntil": ahead},
            ("body", "recurringUntil"),
        ),
        (
            {
                "title": "t",
                "start_datetime": "9999-12-31T23:45:00-05:00",
                "contacts_and_data": {"*": {}, "contacts": []},
            },
            ("body", "start_datetime"),
        ),
    ]
    far_time = {"monday": "9999-12-31T23:45:00-05:00"}
    cases.append(({**base, "type": "RECURRING", "recurring": far_time}, ("body", "recurring", "monday")))
    for payload, loc in cases:
        assert loc in {where for where, _ in _detail(tenant.post("/v1/campaigns", payload))}, payload
    scheduled = {
        **base,
        "type": "SCHEDULED",
        "scheduledDate": (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT09:00:00Z"),
    }
    campaign = tenant.post("/v1/campaigns", scheduled).json()
    for when in ("9999-12-31T23:45:00-05:00", ahead):
        moved = tenant.post(f"/v1/campaigns/{campaign['id']}/reschedule", {"scheduledDate": when})
        assert _detail(moved)[0][0] == ("body", "scheduledDate")
    tenant.post(f"/v1/campaigns/{campaign['id']}/cancel", {})


def test_a_body_in_another_encoding_is_a_422_naming_the_body(tenant: Tenant) -> None:
    raw = '{"contacts": [{"phone": "2250707123456"}], "text": "café"}'.encode("latin-1")
    answer = tenant.client.post(
        "/v1/campaigns",
        content=raw,
        headers={"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json; charset=latin-1"},
    )
    assert _detail(answer) == [(("body",), "must be JSON encoded in UTF-8 (invalid byte at position 55)")]


def test_a_bad_phone_reads_the_same_on_every_route(tenant: Tenant) -> None:
    group = tenant.post("/v1/groups", {"name": "phones"}).json()
    answers = [
        tenant.post("/v1/campaigns", {"contacts": [{"phone": "12"}], "text": "x"}),
        tenant.post("/v1/contacts", {"phone": "12"}),
        tenant.post(f"/v1/groups/{group['id']}/contacts", {"contacts": [{"phone": "12"}]}),
    ]
    for answer in answers:
        (_, msg), *_ = _detail(answer)
        assert msg == "'12' is not a valid phone number (include the country code, e.g. 2250707123456)", msg


def test_oversized_custom_fields_are_422_naming_the_contact(tenant: Tenant) -> None:
    long = "x" * 1025
    many = {f"f{i}": i for i in range(51)}
    ok = {"phone": ci_phone(72_000)}
    cases = [
        ({"contacts": [ok, {"phone": ci_phone(72_001), "ville": long}], "text": "@ville"}, ("body", "contacts", 1)),
        ({"contacts": [{**ok, **many}], "text": "x"}, ("body", "contacts", 0)),
        ({"contacts": [{**ok, "fields": {"ville": long}}], "text": "x"}, ("body", "contacts", 0, "fields")),
        (
            {
                "title": "t",
                "contacts_and_data": {
                    "*": {"channel": "sms", "text": "{{1}}"},
                    "contacts": [{"phone": ci_phone(72_002), "data": {"1": long}}],
                },
            },
            ("body", "contacts_and_data", "contacts", 0, "data"),
        ),
    ]
    for payload, loc in cases:
        detail = _detail(tenant.post("/v1/campaigns", payload))
        assert any(where == loc and ("1024" in msg or "at most 50" in msg) for where, msg in detail), (loc, detail)
    saved = _detail(tenant.post("/v1/contacts", {"phone": ci_phone(72_003), "fields": {"n" * 65: "x"}}))
    assert saved[0][0] == ("body", "fields") and "64" in saved[0][1]
    # At the limits, accepted.
    fine = {"phone": ci_phone(72_004), "fields": {f"f{i}": "x" * 1024 for i in range(50)}}
    assert tenant.post("/v1/contacts", fine).status_code == 201
    # The limit holds for what is stored, across requests: 50 more names are not merged into those 50.
    more = {f"g{i}": 1 for i in range(50)}
    grown = [
        (tenant.post("/v1/contacts", {"phone": ci_phone(72_004), "fields": more}), ("body", "fields")),
        (tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(72_004), **more}], "text": "x"}), None),
    ]
    for answer, loc in grown:
        (where, msg), *_ = _detail(answer)
        assert "would leave the contact with 100 custom fields" in msg and (loc is None or where == loc)
    assert "Value error" not in msg  # the campaign route's messages read like the others
    assert len(tenant.get("/v1/contacts", params={"phone": ci_phone(72_004)}).json()["data"][0]["fields"]) == 50


def test_extra_keys_no_text_can_name_are_left_out(tenant: Tenant) -> None:
    contact = {"phone": ci_phone(73_000), "ville": "Abidjan", "Code postal": "01", "e-mail": "a@b.ci"}
    sent = tenant.post("/v1/campaigns", {"contacts": [contact], "text": "A @ville"})
    assert sent.status_code == 201, sent.text
    saved = tenant.get("/v1/contacts", params={"phone": ci_phone(73_000)}).json()["data"][0]
    assert saved["fields"] == {"ville": "Abidjan"}
    tenant.wait_final(sent.json()["id"])


def test_a_huge_page_is_a_422_not_a_database_error(tenant: Tenant) -> None:
    campaign = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(71_000)}], "text": "x"}).json()
    group = tenant.post("/v1/groups", {"name": "pages"}).json()
    paths = (
        "/v1/campaigns",
        "/v1/contacts",
        "/v1/conversations",
        f"/v1/campaigns/{campaign['id']}/messages",
        f"/v1/groups/{group['id']}/contacts",
    )
    for path in paths:
        assert _detail(tenant.get(path, params={"page": 10**15}))[0][0] == ("query", "page"), path
        assert _detail(tenant.get(path, params={"limit": 10**6}))[0][0] == ("query", "limit"), path
        assert tenant.get(path, params={"page": 1_000_000}).status_code == 200, path
    tenant.wait_final(campaign["id"])


def test_a_new_phone_named_by_two_requests_at_once_is_one_contact(stack: Stack, tenant: Tenant) -> None:
    from dispatcher.api.routes.contacts import upsert
    from dispatcher.api.schemas import ContactCreate
    from dispatcher.db.session import session_factory

    phone = ci_phone(72_000)
    inserted = threading.Event()
    results: dict[str, object] = {}

    def first() -> None:
        with session_factory(stack.db_url)() as session:
            contact, created = upsert(session, tenant.account_id, ContactCreate(phone=phone, firstName="A"))
            session.flush()
            inserted.set()
            time.sleep(0.5)  # the other request reaches its insert while this one has not committed
            session.commit()
            results["first"] = (contact.id, created)

    def second() -> None:
        inserted.wait(10)
        try:
            with session_factory(stack.db_url)() as session:
                contact, created = upsert(session, tenant.account_id, ContactCreate(phone=phone, lastName="B"))
                session.commit()
                results["second"] = (contact.id, created)
        except Exception as exc:  # noqa: BLE001 (reported below)
            results["second"] = exc

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not isinstance(results["second"], Exception), results["second"]
    (first_id, first_created), (second_id, second_created) = results["first"], results["second"]  # type: ignore[misc]
    assert first_id == second_id and (first_created, second_created) == (True, False)
    saved = tenant.get("/v1/contacts", params={"phone": phone}).json()["data"]
    assert len(saved) == 1 and (saved[0]["firstName"], saved[0]["lastName"]) == ("A", "B")


def test_two_submissions_creating_the_same_contact_at_once_both_succeed(stack: Stack, tenant: Tenant) -> None:
    from dispatcher.campaigns.submission import submit
    from dispatcher.config import get_settings
    from dispatcher.db.session import session_factory

    phone = ci_phone(73_000)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def submit_one(name: str) -> None:
        payload = {"name": name, "type": "SCHEDULED", "contacts": [{"phone": phone}], "text": "x"}
        payload["scheduledDate"] = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT09:00:00Z")
        barrier.wait(10)
        try:
            with session_factory(stack.db_url)() as session:
                outcomes.append(submit(session, tenant.account_id, payload, get_settings()).campaign.id)
        except Exception as exc:  # noqa: BLE001 (reported below)
            outcomes.append(exc)

    threads = [threading.Thread(target=submit_one, args=(f"same-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert len(tenant.get("/v1/contacts", params={"phone": phone}).json()["data"]) == 1
    for campaign_id in outcomes:
        tenant.post(f"/v1/campaigns/{campaign_id}/cancel", {})


NOT_STORABLE = [
    ('"x\\u0000y"', "must not contain NUL"),
    ("NaN", "finite"),
    ("Infinity", "finite"),
    ("-Infinity", "finite"),
    ("1e999", "finite"),
]


def test_nan_infinity_and_nul_are_422_naming_the_field_on_every_route(tenant: Tenant) -> None:
    campaign = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(74_000)}], "text": "x"}).json()
    group = tenant.post("/v1/groups", {"name": "g"}).json()
    template = tenant.post("/v1/templates", {"name": "t", "language": "fr", "body": "b"}).json()
    routes = [
        ("POST", "/v1/campaigns", '{"contacts": [{"phone": "PHONE", "ville": VALUE}], "text": "x @ville"}'),
        ("POST", "/v1/campaigns", '{"contacts": [{"phone": "PHONE"}], "text": VALUE}'),
        ("POST", "/v1/contacts", '{"phone": "PHONE", "fields": {"ville": VALUE}}'),
        ("POST", "/v1/groups", '{"name": VALUE}'),
        ("POST", f"/v1/groups/{group['id']}/contacts", '{"contacts": [{"phone": "PHONE", "name": VALUE}]}'),
        ("POST", "/v1/senders", '{"label": "S2", "settings": {"from": VALUE}}'),
        ("POST", "/v1/templates", '{"name": "t2", "language": "fr", "body": VALUE}'),
        ("PATCH", f"/v1/templates/{template['id']}", '{"status": VALUE}'),
        ("POST", f"/v1/campaigns/{campaign['id']}/reschedule", '{"scheduledDate": VALUE}'),
    ]
    for index, (method, path, body) in enumerate(routes):
        for value, message in NOT_STORABLE:
            response = _raw(
                tenant, method, path, body.replace("VALUE", value).replace("PHONE", ci_phone(74_001 + index))
            )
            [(loc, msg)] = _detail(response)
            assert loc[0] == "body" and len(loc) > 1 and message in msg, (path, value, loc, msg)
    assert _detail(tenant.get("/v1/contacts", params={"phone": "225\x00"}))[0][0] == ("query", "phone")
    # Nothing was stored: the only contact is the first campaign's
    assert tenant.get("/v1/contacts").json()["total"] == 1
    tenant.wait_final(campaign["id"])
