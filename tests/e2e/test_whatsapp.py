"""WhatsApp template campaigns end to end: the document's payload, the Graph wire format at the sandbox,
signed status webhooks, replies that apply waiting tags, and Twilio delivery reports for SMS."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dispatcher import redis_client
from dispatcher.audience.senders import sandbox_phone_number_id
from dispatcher.tracking.signatures import meta_signature
from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone

BODY = "Bonjour {{1}}, votre commande {{2}} est prête."
# Given at creation: the API never echoes a sender's settings, so a generated one could not be learnt.
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"


@pytest.fixture
def whatsapp(stack: Stack, tenant: Tenant, sandbox_box: httpx.Client) -> dict[str, Any]:
    """A sandbox WhatsApp sender whose webhooks the sandbox posts to our live API, and an approved template."""
    secrets = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
    sender = tenant.post(
        "/v1/senders",
        {"channel": "whatsapp", "label": "VOTRE_ID_EXPEDITEUR", "provider": "sandbox", "settings": secrets},
    )
    assert sender.status_code == 201, sender.text
    sender_id = sender.json()["id"]
    assert sender.json()["rate"] == 80.0
    template = tenant.post(
        "/v1/templates", {"name": "commande_prete", "language": "fr", "body": BODY, "status": "APPROVED"}
    )
    assert template.status_code == 201, template.text
    phone_number_id = sandbox_phone_number_id(int(sender_id))
    hook = {"url": f"{stack.api_url}/v1/webhooks/whatsapp_cloud/{sender_id}", "app_secret": APP_SECRET}
    assert sandbox_box.put("/_sandbox/config", json={"whatsapp_webhooks": {phone_number_id: hook}}).status_code == 200
    return {"sender_id": sender_id, "template_id": template.json()["id"], "phone_number_id": phone_number_id}


def document_payload(wa: dict[str, Any], contacts: list[dict[str, Any]] | None = None, **config: Any) -> dict:
    """The WhatsApp document's playground payload, as pasted (global configuration under "*")."""
    return {
        "title": "Campagne de Bienvenue",
        "contacts_and_data": {
            "*": {
                "channel": "whatsapp",
                "sender_label_id": "VOTRE_ID_EXPEDITEUR",
                "message_template_id": wa["template_id"],
                **config,
            },
            "contacts": contacts
            or [
                {"wa_id": "212600000000", "data": {"1": "Jean", "2": "ORD-123"}},
                {"wa_id": "212600000001", "data": {"1": "Jeanne", "2": "ORD-456"}},
            ],
        },
    }


def callback(box: httpx.Client, message_id: str, status: str, **extra: Any) -> None:
    answer = box.post("/_sandbox/callbacks", json={"message_id": message_id, "status": status, **extra})
    assert answer.status_code == 200 and answer.json()["status_code"] == 200, answer.text


def test_the_documents_example_sends_two_template_messages(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    created = tenant.post("/v1/campaigns", document_payload(whatsapp))
    assert created.status_code == 201, created.text
    assert created.json()["template"] == "commande_prete" and created.json()["recipients"] == 2
    final = tenant.wait_final(created.json()["id"])
    assert final["status"] == "SENT" and final["stats"]["sent"] == 2
    messages = sorted(sandbox_box.get("/_sandbox/messages").json()["messages"], key=lambda m: m["to"])
    assert [(m["provider"], m["to"], m["template"]) for m in messages] == [
        (
            "whatsapp_cloud",
            "+212600000000",
            {"name": "commande_prete", "language": "fr", "parameters": ["Jean", "ORD-123"]},
        ),
        (
            "whatsapp_cloud",
            "+212600000001",
            {"name": "commande_prete", "language": "fr", "parameters": ["Jeanne", "ORD-456"]},
        ),
    ]
    assert {c["phone"] for c in final["contacts"]} == {"+212600000000", "+212600000001"}


def test_a_number_listed_twice_gets_one_message_and_nobody_gets_anothers_data(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    contacts = [
        {"wa_id": "212600000000", "data": {"1": "Jean", "2": "ORD-1"}},
        {"wa_id": "212600000000", "data": {"1": "Jean (again)", "2": "ORD-1b"}},
        {"wa_id": "212600000001", "data": {"1": "Jeanne", "2": "ORD-2"}},
        {"wa_id": "212600000002", "data": {"1": "Paul", "2": "ORD-3"}},
    ]
    created = tenant.post("/v1/campaigns", document_payload(whatsapp, contacts))
    assert created.status_code == 201, created.text
    assert created.json()["recipients"] == 3
    assert tenant.wait_final(created.json()["id"])["stats"]["sent"] == 3
    sent = {m["to"]: m["template"]["parameters"] for m in sandbox_box.get("/_sandbox/messages").json()["messages"]}
    # The first listing wins; the others keep their own data.
    assert sent == {
        "+212600000000": ["Jean", "ORD-1"],
        "+212600000001": ["Jeanne", "ORD-2"],
        "+212600000002": ["Paul", "ORD-3"],
    }


@pytest.mark.parametrize(
    ("data", "loc", "says"),
    [
        pytest.param(
            {"1": "Jean"},
            ["body", "contacts_and_data", "contacts", 1, "data", "2"],
            "missing {{2}}",
            id="missing-variable",
        ),
        pytest.param(
            {"1": "Jean", "2": "A", "3": "x"},
            ["body", "contacts_and_data", "contacts", 1, "data", "3"],
            "has 2 variable(s)",
            id="extra-variable",
        ),
        pytest.param(
            {"1": "Jean\\nDupont", "2": "A"},
            ["body", "contacts_and_data", "contacts", 1, "data", "1"],
            "newline",
            id="newline",
        ),
        pytest.param(
            {"1": "", "2": "A"}, ["body", "contacts_and_data", "contacts", 1, "data", "1"], "empty", id="empty"
        ),
    ],
)
def test_a_wrong_variable_set_is_refused_at_submit(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client, data: dict, loc: list, says: str
) -> None:
    data = {k: v.replace("\\n", "\n") for k, v in data.items()}
    contacts = [
        {"wa_id": "212600000000", "data": {"1": "Jean", "2": "ORD-123"}},
        {"wa_id": "212600000001", "data": data},
    ]
    response = tenant.post("/v1/campaigns", document_payload(whatsapp, contacts))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == loc and says in detail[0]["msg"]
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 0


def test_templates_must_exist_be_approved_and_fit_the_channel(tenant: Tenant, whatsapp: dict) -> None:
    pending = tenant.post("/v1/templates", {"name": "brouillon", "language": "fr", "body": "Hi {{1}}"}).json()
    for ref, says in ((pending["id"], "is PENDING"), ("nope", "does not exist")):
        response = tenant.post(
            "/v1/campaigns",
            {
                **document_payload(whatsapp),
                "contacts_and_data": {
                    "_": {"channel": "whatsapp", "sender_label_id": "VOTRE_ID_EXPEDITEUR", "message_template_id": ref},
                    "contacts": [{"wa_id": "212600000000", "data": {"1": "Jean"}}],
                },
            },
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "contacts_and_data", "_", "message_template_id"]
        assert says in response.json()["detail"][0]["msg"]
    bad_body = tenant.post("/v1/templates", {"name": "x", "language": "fr", "body": "Hi {{2}}"})
    assert bad_body.status_code == 422 and bad_body.json()["detail"][0]["loc"] == ["body", "body"]


def test_status_webhooks_move_stats_to_delivered_and_read_in_any_order(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    created = tenant.post("/v1/campaigns", document_payload(whatsapp)).json()
    tenant.wait_final(created["id"])
    first, second = sorted(sandbox_box.get("/_sandbox/messages").json()["messages"], key=lambda m: m["to"])

    callback(sandbox_box, first["id"], "delivered")
    callback(sandbox_box, first["id"], "read")
    callback(sandbox_box, second["id"], "read")  # read without delivered: read implies delivered
    callback(sandbox_box, second["id"], "delivered")  # late and out of order: changes nothing
    callback(sandbox_box, first["id"], "read")  # repeated: changes nothing
    callback(sandbox_box, first["id"], "failed", error_code=131026)  # after read: a failure cannot downgrade

    stats = tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]
    assert {k: stats[k] for k in ("sent", "delivered", "read", "failed")} == {
        "sent": 2,
        "delivered": 2,
        "read": 2,
        "failed": 0,
    }


def test_receipts_after_the_run_finished_survive_the_counters_expiry(
    stack: Stack, tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    import redis as redis_lib

    from dispatcher import keys

    created, wamid = sent_campaign(tenant, whatsapp, sandbox_box)
    callback(sandbox_box, wamid, "read")  # after the run finished and took its snapshot
    run_id = int(tenant.get(f"/v1/campaigns/{created['id']}").json()["runs"][0]["id"])
    r = redis_lib.Redis.from_url(stack.redis_url, decode_responses=True)
    r.delete(keys.run_stats(run_id))  # as when the finished run's counters expire a week later

    def counts() -> tuple[int, ...]:
        body = tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]
        return tuple(body[k] for k in ("total", "sent", "delivered", "read", "pending"))

    assert counts() == (2, 2, 1, 1, 0)
    listed = tenant.get("/v1/campaigns").json()["data"]
    assert next(c for c in listed if c["id"] == created["id"])["stats"]["read"] == 1
    # A receipt that finds no counters rebuilds them from the database, itself included
    other = next(m["id"] for m in sandbox_box.get("/_sandbox/messages").json()["messages"] if m["id"] != wamid)
    callback(sandbox_box, other, "delivered")
    assert counts() == (2, 2, 2, 1, 0)
    assert r.hget(keys.run_stats(run_id), "delivered") == "2"


def test_a_failed_receipt_after_sent_counts_as_failed_with_metas_code(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    created = tenant.post("/v1/campaigns", document_payload(whatsapp)).json()
    tenant.wait_final(created["id"])
    first = sorted(sandbox_box.get("/_sandbox/messages").json()["messages"], key=lambda m: m["to"])[0]
    callback(sandbox_box, first["id"], "failed", error_code=131026, error_message="Message undeliverable")
    body = tenant.get(f"/v1/campaigns/{created['id']}").json()
    assert (body["stats"]["sent"], body["stats"]["failed"]) == (1, 1)
    assert body["errors"][0]["code"] == "131026"


def sent_campaign(tenant: Tenant, whatsapp: dict, box: httpx.Client) -> tuple[dict[str, Any], str]:
    """The document's campaign, sent; with the provider's id of its first message."""
    created = tenant.post("/v1/campaigns", document_payload(whatsapp)).json()
    tenant.wait_final(created["id"])
    return created, box.get("/_sandbox/messages").json()["messages"][0]["id"]


def post_signed(stack: Stack, whatsapp: dict, payload: bytes) -> httpx.Response:
    url = f"{stack.api_url}/v1/webhooks/whatsapp_cloud/{whatsapp['sender_id']}"
    return httpx.post(url, content=payload, headers={"X-Hub-Signature-256": meta_signature(APP_SECRET, payload)})


def test_a_forged_signature_is_refused_and_changes_nothing(
    stack: Stack, tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    created, wamid = sent_campaign(tenant, whatsapp, sandbox_box)
    payload = (
        b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
        b'{"statuses":[{"id":"' + wamid.encode() + b'","status":"read","timestamp":"1"}]}}]}]}'
    )
    url = f"{stack.api_url}/v1/webhooks/whatsapp_cloud/{whatsapp['sender_id']}"
    for headers in (
        {},
        {"X-Hub-Signature-256": meta_signature("not-the-secret", payload)},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    ):
        assert httpx.post(url, content=payload, headers=headers).status_code == 401
    assert tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]["read"] == 0
    good = post_signed(stack, whatsapp, payload)
    assert good.status_code == 200 and good.json() == {"statuses": 1, "inbound": 0, "skipped": 0}
    assert tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]["read"] == 1


def test_a_signed_batch_with_unreadable_items_applies_the_rest_and_answers_200(
    stack: Stack, tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    created, wamid = sent_campaign(tenant, whatsapp, sandbox_box)
    statuses = [7, {"id": "wamid.\x00", "status": "read"}, {"id": wamid, "status": "read", "timestamp": "1"}]
    messages = [{"from": "212600000000", "timestamp": "soon", "text": {"body": "ok\x00"}}, {"text": "who?"}]
    value = {"statuses": statuses, "contacts": [{"wa_id": "212600000000", "profile": 5}], "messages": messages}
    payload = json.dumps({"entry": ["junk", {"changes": [{"value": value}, {"value": None}]}]}).encode()
    answer = post_signed(stack, whatsapp, payload)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"statuses": 1, "inbound": 1, "skipped": 4}
    assert tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]["read"] == 1
    assert conversation(tenant, "212600000000")["lastInboundText"] == "ok"


def test_a_receipt_that_beats_the_send_outcome_is_applied_once_the_id_is_known(
    stack: Stack, tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    from sqlalchemy import update

    from dispatcher.db.models import Message
    from dispatcher.db.session import session_factory
    from workers import reconciler

    created = tenant.post("/v1/campaigns", document_payload(whatsapp)).json()
    tenant.wait_final(created["id"])
    # Given Meta reports "read" for a message id our worker has not stored yet (its final commit lags)
    early_id = "wamid.EARLY" + created["id"]
    payload = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {"statuses": [{"id": early_id, "status": "read", "timestamp": "1"}]},
                        }
                    ],
                }
            ],
        }
    ).encode()
    url = f"{stack.api_url}/v1/webhooks/whatsapp_cloud/{whatsapp['sender_id']}"
    answer = httpx.post(url, content=payload, headers={"X-Hub-Signature-256": meta_signature(APP_SECRET, payload)})
    assert answer.status_code == 200 and answer.json()["statuses"] == 0

    # When the send's outcome lands with that id, and the reconciler runs
    with session_factory(stack.db_url)() as session:
        first = session.scalars(select(Message).where(Message.campaign_id == int(created["id"]))).first()
        assert first is not None
        session.execute(update(Message).where(Message.id == first.id).values(provider_message_id=early_id))
        session.commit()
        assert reconciler.reconcile(session, redis_client.get_redis(), lambda refs, channel: None)["receipts"] >= 1
        # Then the event was applied, once: a second pass changes nothing
        reconciler.reconcile(session, redis_client.get_redis(), lambda refs, channel: None)
    stats = tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]
    assert (stats["sent"], stats["delivered"], stats["read"]) == (2, 1, 1)


def test_the_subscription_handshake_echoes_the_challenge(stack: Stack, whatsapp: dict) -> None:
    url = f"{stack.api_url}/v1/webhooks/whatsapp_cloud/{whatsapp['sender_id']}"
    ok = httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"})
    assert (ok.status_code, ok.text) == (200, "42")
    wrong = httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "42"})
    assert wrong.status_code == 403


def conversation(tenant: Tenant, phone: str) -> dict:
    page = tenant.get("/v1/conversations", params={"phone": phone}).json()
    found = page["data"]
    assert len(found) == 1 and page["total"] == 1, page
    return found[0]


def test_tags_apply_at_once_without_a_trigger_and_on_reply_with_any_reply(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    # Without a trigger the conversation gets its tags when the message is sent
    direct = tenant.post("/v1/campaigns", document_payload(whatsapp, conversation_tags=["urgent", "vip"])).json()
    tenant.wait_final(direct["id"])
    assert conversation(tenant, "212600000000")["tags"] == ["urgent", "vip"]

    # With trigger any-reply the tags wait for the contact's reply
    contacts = [{"wa_id": "212600000002", "data": {"1": "Awa", "2": "ORD-9"}}]
    waiting = tenant.post(
        "/v1/campaigns", document_payload(whatsapp, contacts, conversation_tags=["sales_lead"], trigger="any-reply")
    ).json()
    tenant.wait_final(waiting["id"])
    before = conversation(tenant, "212600000002")
    assert (before["tags"], before["pendingTags"]) == ([], ["sales_lead"])

    reply = sandbox_box.post(
        "/_sandbox/replies",
        json={"from": "+212600000002", "text": "Oui merci", "phone_number_id": whatsapp["phone_number_id"]},
    )
    assert reply.status_code == 200 and reply.json()["status_code"] == 200, reply.text
    after = conversation(tenant, "212600000002")
    assert (after["tags"], after["pendingTags"], after["lastInboundText"]) == (["sales_lead"], [], "Oui merci")
    assert tenant.get("/v1/conversations", params={"tag": "sales_lead"}).json()["data"][0]["phone"] == "+212600000002"
    # `_` is no wildcard: another tag of the same shape matches nothing.
    assert tenant.get("/v1/conversations", params={"tag": "salesXlead"}).json()["total"] == 0
    assert tenant.get("/v1/conversations", params={"tag": "sales%"}).json()["total"] == 0


def test_meta_permanent_errors_fail_the_message_with_the_code(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    sandbox_box.post("/_sandbox/faults", json={"numbers": ["212600000001"], "kind": "permanent", "code": 131026})
    final = tenant.wait_final(tenant.post("/v1/campaigns", document_payload(whatsapp)).json()["id"])
    assert (final["stats"]["sent"], final["stats"]["failed"]) == (1, 1)
    assert final["errors"][0]["code"] == "131026"


def test_a_recipient_over_its_pair_rate_waits_alone_then_fails_after_repeated_refusals(
    tenant: Tenant, whatsapp: dict, sandbox_box: httpx.Client
) -> None:
    # Given Meta refuses one recipient for its pair rate (131056) every time, for 1 s each
    sandbox_box.post(
        "/_sandbox/faults", json={"numbers": ["212600000001"], "kind": "throttle", "code": 131056, "retry_after": 1}
    )
    final = tenant.wait_final(tenant.post("/v1/campaigns", document_payload(whatsapp)).json()["id"], timeout=60)
    # Then the other recipient was not held up, and this one gave up with the code instead of cycling for ever
    assert (final["stats"]["sent"], final["stats"]["failed"]) == (1, 1)
    assert final["errors"][0]["code"] == "131056"
    assert "gave up after 8 pair-rate refusals" in final["errors"][0]["error"]


def test_sms_delivery_reports_arrive_signed_the_twilio_way(
    stack: Stack, tenant: Tenant, sandbox_box: httpx.Client
) -> None:
    created = tenant.post(
        "/v1/campaigns", {"contacts": [{"phone": ci_phone(90_000)}, {"phone": ci_phone(90_001)}], "text": "Bonjour"}
    ).json()
    tenant.wait_final(created["id"])
    first, second = sandbox_box.get("/_sandbox/messages").json()["messages"]
    assert first["status_callback"].startswith(f"{stack.api_url}/v1/webhooks/twilio/")
    callback(sandbox_box, first["id"], "delivered")
    callback(sandbox_box, second["id"], "undelivered", error_code=30003)
    deadline = time.monotonic() + 5
    stats: dict = {}
    while time.monotonic() < deadline:
        stats = tenant.get(f"/v1/campaigns/{created['id']}").json()["stats"]
        if stats["failed"]:
            break
        time.sleep(0.1)
    assert {k: stats[k] for k in ("sent", "delivered", "failed")} == {"sent": 1, "delivered": 1, "failed": 1}
    forged = httpx.post(
        first["status_callback"],
        data={"MessageSid": first["id"], "MessageStatus": "read"},
        headers={"X-Twilio-Signature": "AAAA"},
    )
    assert forged.status_code == 401
