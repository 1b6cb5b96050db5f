"""The sandbox gateway: provider wire formats, fault injection and the /_sandbox control routes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dispatcher.sandbox import create_app, graph, twilio
from dispatcher.sandbox.store import MessageRecord, MessageStore
from dispatcher.sandbox.wire import format_retry_after

ACCOUNT = "AC" + "a1" * 16
TOKEN = "secret-token"
TWILIO_URL = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
PHONE_ID = "106540352242922"
GRAPH_URL = f"/v21.0/{PHONE_ID}/messages"
BEARER = {"Authorization": "Bearer EAAG-sandbox"}
NUMBER = "+2250707123456"
OTHER = "+2250505123456"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def send_sms(client: TestClient, to: str | None = NUMBER, **fields: str | None) -> httpx.Response:
    form = {"To": to, "From": "MySender", "Body": "Bonjour à tous", **fields}
    data = {name: value for name, value in form.items() if value is not None}
    response: httpx.Response = client.post(TWILIO_URL, data=data, auth=(ACCOUNT, TOKEN))
    return response


def template_payload(
    to: str = NUMBER.lstrip("+"), parameters: tuple[str, ...] = ("Awa", "10 000 FCFA")
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": "promo_fr",
            "language": {"code": "fr"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}],
        },
        "biz_opaque_callback_data": "camp=42;rcpt=7",
    }


def send_wa(client: TestClient, to: str = NUMBER.lstrip("+"), **overrides: Any) -> httpx.Response:
    response: httpx.Response = client.post(GRAPH_URL, json={**template_payload(to), **overrides}, headers=BEARER)
    return response


def add_fault(client: TestClient, **spec: Any) -> dict[str, Any]:
    response = client.post("/_sandbox/faults", json=spec)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = client.get("/_sandbox/messages", params=params).json()["messages"]
    return messages


def graph_error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# --- Twilio -----------------------------------------------------------------------------------------------


def test_twilio_send_answers_201_with_a_message_resource(client: TestClient) -> None:
    response = send_sms(client)

    assert response.status_code == 201
    resource = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])
    assert resource["account_sid"] == ACCOUNT
    assert (resource["to"], resource["from"], resource["body"]) == (NUMBER, "MySender", "Bonjour à tous")
    assert resource["status"] == "queued"
    assert resource["num_segments"] == "1"
    assert resource["error_code"] is None and resource["error_message"] is None and resource["price"] is None
    assert resource["api_version"] == "2010-04-01"
    assert resource["direction"] == "outbound-api"
    assert resource["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{resource['sid']}.json"
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", resource["date_created"])


def test_twilio_send_is_stored_as_a_record(client: TestClient) -> None:
    sid = send_sms(client, StatusCallback="https://hooks.example/twilio?m=7").json()["sid"]

    [record] = stored(client)
    assert record == {
        "id": sid,
        "provider": "twilio",
        "to": NUMBER,
        "from": "MySender",
        "body": "Bonjour à tous",
        "template": None,
        "reference": "https://hooks.example/twilio?m=7",
        "status_callback": "https://hooks.example/twilio?m=7",
        "received_at": record["received_at"],
        "account": ACCOUNT,
    }
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", record["received_at"])


def test_twilio_send_through_a_messaging_service_is_accepted_and_recorded_from_the_service(client: TestClient) -> None:
    service = "MG" + "0" * 32
    response = send_sms(client, From=None, MessagingServiceSid=service)

    assert response.status_code == 201
    assert response.json()["status"] == "accepted"
    assert response.json()["messaging_service_sid"] == service
    assert stored(client)[0]["from"] == service


@pytest.mark.parametrize(("body", "segments"), [("a" * 160, "1"), ("a" * 161, "2"), ("ê" * 71, "2"), ("😀" * 35, "1")])
def test_twilio_counts_segments_like_a_gateway(client: TestClient, body: str, segments: str) -> None:
    assert send_sms(client, Body=body).json()["num_segments"] == segments


@pytest.mark.parametrize(
    "auth",
    [None, ("AC" + "b2" * 16, TOKEN), (ACCOUNT, ""), "Bearer abc", "Basic not-base64!"],
    ids=["missing", "other-account", "empty-password", "bearer", "garbage"],
)
def test_twilio_refuses_bad_basic_auth_with_20003(client: TestClient, auth: Any) -> None:
    data = {"To": NUMBER, "From": "MySender", "Body": "hi"}
    if isinstance(auth, str):
        response = client.post(TWILIO_URL, data=data, headers={"Authorization": auth})
    else:
        response = client.post(TWILIO_URL, data=data, auth=auth)

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert stored(client) == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"To": None}, 21604),
        ({"To": ""}, 21604),
        ({"To": "2250707123456"}, 21211),
        ({"To": "+1234567"}, 21211),
        ({"To": "+1234567890123456"}, 21211),
        ({"To": "+225 07 07 12 34 56"}, 21211),
        ({"To": "+٢٢٥٠٧٠٧١٢٣٤٥٦"}, 21211),  # digits, but not ASCII ones
        ({"Body": None}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"From": None}, 21603),
    ],
)
def test_twilio_validates_the_form_with_twilio_codes(client: TestClient, fields: dict[str, Any], code: int) -> None:
    response = send_sms(client, **fields)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert response.json()["status"] == 400
    assert stored(client) == []


# --- Meta Graph (WhatsApp Cloud) ---------------------------------------------------------------------------


def test_graph_template_send_answers_200_with_contacts_and_a_wamid(client: TestClient) -> None:
    response = send_wa(client)

    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "2250707123456", "wa_id": "2250707123456"}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.HBg")
    assert message["message_status"] == "accepted"


def test_graph_template_send_is_stored_with_its_template_and_reference(client: TestClient) -> None:
    wamid = send_wa(client, to=NUMBER).json()["messages"][0]["id"]

    [record] = stored(client)
    assert record == {
        "id": wamid,
        "provider": "whatsapp_cloud",
        "to": NUMBER,
        "from": PHONE_ID,
        "body": None,
        "template": {"name": "promo_fr", "language": "fr", "parameters": ["Awa", "10 000 FCFA"]},
        "reference": "camp=42;rcpt=7",
        "status_callback": None,
        "received_at": record["received_at"],
        "account": PHONE_ID,
    }


def test_graph_contacts_echo_the_input_and_strip_the_plus_from_wa_id(client: TestClient) -> None:
    assert send_wa(client, to=NUMBER).json()["contacts"] == [{"input": NUMBER, "wa_id": NUMBER.lstrip("+")}]


def test_graph_text_send_is_stored_with_its_body(client: TestClient) -> None:
    payload = {"messaging_product": "whatsapp", "to": NUMBER, "type": "text", "text": {"body": "Salut !"}}
    response = client.post(GRAPH_URL, json=payload, headers=BEARER)

    assert response.status_code == 200
    [record] = stored(client)
    assert (record["body"], record["template"], record["reference"]) == ("Salut !", None, None)


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer", "Basic abc"])
def test_graph_refuses_a_missing_bearer_token_with_oauth_code_190(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = client.post(GRAPH_URL, json=template_payload(), headers=headers)

    assert response.status_code == 401
    error = graph_error(response)
    assert (error["code"], error["type"]) == (190, "OAuthException")
    assert error["message"].startswith("(#190) ")


def test_graph_errors_use_meta_envelope(client: TestClient) -> None:
    response = send_wa(client, messaging_product="sms")

    error = graph_error(response)
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["message"] == "(#100) Invalid parameter"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert re.fullmatch(r"[\w-]{17}", error["fbtrace_id"])


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"messaging_product": "sms"}, 100),
        ({"messaging_product": None}, 100),
        ({"to": "1234567"}, 100),
        ({"to": "+1234567890123456"}, 100),
        ({"to": "225 07 07 12 34 56"}, 100),
        ({"type": "image"}, 100),
        ({"biz_opaque_callback_data": "x" * 513}, 100),
        ({"template": {"language": {"code": "fr"}}}, 131008),
        ({"template": {"name": "promo_fr"}}, 131008),
        ({"type": "text", "text": {"body": ""}}, 131008),
    ],
)
def test_graph_validates_the_payload(client: TestClient, overrides: dict[str, Any], code: int) -> None:
    response = send_wa(client, **overrides)

    assert response.status_code == 400
    assert graph_error(response)["code"] == code
    assert stored(client) == []


@pytest.mark.parametrize("value", ["", "   ", "line\nbreak", "tab\there", "four    spaces"])
def test_graph_refuses_template_parameters_meta_refuses_with_131009(client: TestClient, value: str) -> None:
    response = client.post(GRAPH_URL, json=template_payload(parameters=("Awa", value)), headers=BEARER)

    assert response.status_code == 400
    error = graph_error(response)
    assert error["code"] == 131009
    assert error["message"] == "(#131009) Parameter value is not valid"


def test_graph_accepts_a_parameter_with_three_consecutive_spaces(client: TestClient) -> None:
    response = client.post(GRAPH_URL, json=template_payload(parameters=("a   b",)), headers=BEARER)

    assert response.status_code == 200


def test_graph_refuses_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post(GRAPH_URL, content=b"{not json", headers={**BEARER, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert graph_error(response)["code"] == 100


def test_graph_refuses_an_unknown_api_version(client: TestClient) -> None:
    response = client.post(f"/latest/{PHONE_ID}/messages", json=template_payload(), headers=BEARER)

    assert response.status_code == 400
    assert graph_error(response)["code"] == 2500


# --- Faults ------------------------------------------------------------------------------------------------


def test_permanent_fault_answers_twilio_400_with_21211_and_stores_nothing(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="permanent")

    response = send_sms(client)

    assert response.status_code == 400
    assert response.json()["code"] == 21211
    assert stored(client) == []


def test_permanent_fault_answers_graph_400_with_131026(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="permanent")

    response = send_wa(client)

    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["message"]) == (131026, "(#131026) Message undeliverable")
    assert "is_transient" not in error
    assert stored(client) == []


def test_permanent_fault_answers_with_the_given_code_and_message(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="permanent", code=21610, message="Unsubscribed recipient")
    response = send_sms(client)
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["message"]) == (21610, "Unsubscribed recipient")

    add_fault(client, numbers=[NUMBER], kind="permanent", code=131050, message="opted out")
    error = graph_error(send_wa(client))
    assert (error["code"], error["error_data"]["details"]) == (131050, "opted out")


def test_transient_fault_answers_twilio_503_with_20500(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="transient")

    response = send_sms(client)

    assert response.status_code == 503
    assert response.json()["code"] == 20500
    assert stored(client) == []


def test_transient_fault_answers_graph_500_marked_transient(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="transient")

    response = send_wa(client)

    assert response.status_code == 500
    error = graph_error(response)
    assert (error["code"], error["is_transient"]) == (131000, True)
    assert stored(client) == []


def test_throttle_fault_answers_429_with_retry_after(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="throttle", retry_after=3)

    response = send_sms(client)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["code"] == 20429
    assert stored(client) == []


def test_throttle_fault_answers_graph_400_with_130429_and_retry_after(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="throttle")

    response = send_wa(client)

    assert response.status_code == 400
    assert response.headers["Retry-After"] == "1"
    assert graph_error(response)["code"] == 130429
    assert stored(client) == []


@pytest.mark.parametrize("send", [send_sms, send_wa], ids=["twilio", "graph"])
def test_ambiguous_fault_stores_the_message_but_answers_late(client: TestClient, send: Any) -> None:
    add_fault(client, numbers=[NUMBER], kind="ambiguous", delay_seconds=0.2)

    started = time.monotonic()
    response = send(client)

    assert time.monotonic() - started >= 0.2
    assert response.status_code in (200, 201)
    assert len(stored(client)) == 1
    assert client.get("/_sandbox/stats").json()["by_outcome"]["ambiguous"] == 1


def test_ambiguous_fault_stores_the_message_before_the_answer_leaves(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER], kind="ambiguous", delay_seconds=1.0)
    sender = threading.Thread(target=send_sms, args=(client,))
    sender.start()
    try:
        deadline = time.monotonic() + 0.8
        while not stored(client) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored(client), "the message should be stored while the client still waits"
        assert sender.is_alive()
    finally:
        sender.join()


def test_fault_with_times_stops_matching_after_that_many_requests_per_number(client: TestClient) -> None:
    add_fault(client, numbers=[NUMBER, OTHER], kind="transient", times=2)

    assert [send_sms(client).status_code for _ in range(3)] == [503, 503, 201]
    assert [send_sms(client, to=OTHER).status_code for _ in range(3)] == [503, 503, 201]
    assert client.get("/_sandbox/faults").json()["faults"] == []


def test_fault_with_duration_stops_matching_when_it_expires(client: TestClient) -> None:
    fault = add_fault(client, numbers=[NUMBER], kind="permanent", duration_seconds=0.5)
    assert fault["expires_at"] is not None

    assert send_sms(client).status_code == 400
    time.sleep(0.6)
    assert send_sms(client).status_code == 201
    assert client.get("/_sandbox/faults").json()["count"] == 0


def test_wildcard_fault_matches_every_number(client: TestClient) -> None:
    add_fault(client, numbers="*", kind="transient", times=1)

    assert send_sms(client).status_code == 503
    assert send_wa(client, to=OTHER).status_code == 500
    assert send_sms(client).status_code == 201
    # The wildcard never runs out of numbers, so it stays listed.
    assert client.get("/_sandbox/faults").json()["count"] == 1


@pytest.mark.parametrize("listed", ["2250707123456", "+2250707123456", " +225 0707 123456 "])
def test_fault_numbers_match_with_or_without_plus_and_spaces(client: TestClient, listed: str) -> None:
    fault = add_fault(client, numbers=[listed], kind="permanent")

    assert fault["numbers"] == [NUMBER]
    assert send_sms(client).status_code == 400
    assert send_wa(client, to="2250707123456").status_code == 400
    assert send_wa(client, to=NUMBER).status_code == 400
    assert send_sms(client, to=OTHER).status_code == 201


def test_newest_matching_fault_wins_and_older_ones_answer_when_it_runs_out(client: TestClient) -> None:
    add_fault(client, numbers="*", kind="transient")
    add_fault(client, numbers=[NUMBER], kind="throttle", times=1)

    assert send_sms(client).status_code == 429
    assert send_sms(client).status_code == 503
    add_fault(client, numbers="*", kind="permanent")
    assert send_sms(client).status_code == 400


def test_fault_is_echoed_with_its_id_and_defaults(client: TestClient) -> None:
    fault = add_fault(client, numbers=[NUMBER], kind="ambiguous")

    assert fault["id"]
    assert fault["kind"] == "ambiguous"
    assert (fault["code"], fault["message"], fault["times"], fault["duration_seconds"]) == (None, None, None, None)
    assert (fault["retry_after"], fault["delay_seconds"]) == (1.0, 30.0)


def test_faults_are_listed_and_cleared(client: TestClient) -> None:
    first = add_fault(client, numbers=[NUMBER], kind="permanent")
    second = add_fault(client, numbers="*", kind="throttle")

    listed = client.get("/_sandbox/faults").json()
    assert [fault["id"] for fault in listed["faults"]] == [first["id"], second["id"]]

    assert client.delete("/_sandbox/faults").json() == {"deleted": 2}
    assert client.get("/_sandbox/faults").json() == {"count": 0, "faults": []}
    assert send_sms(client).status_code == 201


def test_one_fault_can_be_deleted_by_id(client: TestClient) -> None:
    fault = add_fault(client, numbers=[NUMBER], kind="permanent")

    assert client.delete(f"/_sandbox/faults/{fault['id']}").status_code == 200
    assert client.delete(f"/_sandbox/faults/{fault['id']}").status_code == 404
    assert send_sms(client).status_code == 201


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"numbers": [NUMBER], "kind": "flaky"}, "kind"),
        ({"numbers": ["not-a-number"], "kind": "permanent"}, "numbers"),
        ({"numbers": [], "kind": "permanent"}, "numbers"),
        ({"kind": "permanent"}, "numbers"),
        ({"numbers": [NUMBER], "kind": "permanent", "times": 0}, "times"),
        ({"numbers": [NUMBER], "kind": "throttle", "retry_after": -1}, "retry_after"),
        ({"numbers": [NUMBER], "kind": "permanent", "duration_seconds": 0}, "duration_seconds"),
        ({"numbers": [NUMBER], "kind": "permanent", "colour": "red"}, "colour"),
    ],
)
def test_invalid_fault_is_refused_with_422_naming_the_field(
    client: TestClient, spec: dict[str, Any], field: str
) -> None:
    response = client.post("/_sandbox/faults", json=spec)

    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


# --- Config, messages, stats -------------------------------------------------------------------------------


def test_latency_config_delays_every_provider_answer(client: TestClient) -> None:
    assert client.put("/_sandbox/config", json={"latency_ms": 150}).json()["latency_ms"] == 150
    assert client.get("/_sandbox/config").json()["latency_ms"] == 150

    for send in (lambda: send_sms(client), lambda: send_wa(client), lambda: send_sms(client, To=None)):
        started = time.monotonic()
        send()
        assert time.monotonic() - started >= 0.15

    assert client.put("/_sandbox/config", json={"latency_ms": 0}).json()["latency_ms"] == 0


def test_latency_config_refuses_a_negative_value(client: TestClient) -> None:
    response = client.put("/_sandbox/config", json={"latency_ms": -5})

    assert response.status_code == 422
    assert "latency_ms" in response.json()["detail"][0]["loc"]


def test_messages_can_be_filtered_by_recipient_provider_and_position(client: TestClient) -> None:
    send_sms(client)  # 0
    send_wa(client)  # 1
    send_sms(client, to=OTHER)  # 2
    send_wa(client, to=OTHER)  # 3

    assert [m["to"] for m in stored(client, to=NUMBER)] == [NUMBER, NUMBER]
    assert [m["to"] for m in stored(client, to="2250707123456")] == [NUMBER, NUMBER]
    assert [m["provider"] for m in stored(client, provider="whatsapp_cloud")] == ["whatsapp_cloud"] * 2
    assert [(m["to"], m["provider"]) for m in stored(client, to=OTHER, provider="twilio")] == [(OTHER, "twilio")]
    assert [m["to"] for m in stored(client, since=2)] == [OTHER, OTHER]
    assert [m["provider"] for m in stored(client, to=NUMBER, since=1)] == ["whatsapp_cloud"]
    assert stored(client, since=10) == []


def test_messages_answer_counts_and_the_next_position_to_page_from(client: TestClient) -> None:
    for _ in range(3):
        send_sms(client)
    page = client.get("/_sandbox/messages", params={"since": 1}).json()
    assert (page["count"], page["next_since"]) == (2, 3)

    send_sms(client, to=OTHER)
    page = client.get("/_sandbox/messages", params={"since": page["next_since"]}).json()
    assert [m["to"] for m in page["messages"]] == [OTHER]


def test_messages_refuse_an_unknown_provider_filter(client: TestClient) -> None:
    assert client.get("/_sandbox/messages", params={"provider": "infobip"}).status_code == 422


def test_deleting_messages_clears_messages_and_stats(client: TestClient) -> None:
    send_sms(client)
    send_wa(client)

    assert client.delete("/_sandbox/messages").json() == {"deleted": 2}

    assert client.get("/_sandbox/messages").json() == {"count": 0, "next_since": 0, "messages": []}
    stats = client.get("/_sandbox/stats").json()
    assert (stats["requests"], stats["max_per_second"], stats["per_second"]) == (0, 0, [])


def test_stats_count_requests_by_provider_and_outcome(client: TestClient) -> None:
    add_fault(client, numbers=[OTHER], kind="throttle", times=1)
    send_sms(client)
    send_sms(client, to=OTHER)
    send_sms(client, Body=None)
    client.post(TWILIO_URL, data={"To": NUMBER}, auth=("AC-other", TOKEN))
    send_wa(client)
    send_wa(client, messaging_product="sms")

    stats = client.get("/_sandbox/stats").json()
    twilio_counts = stats["by_provider"]["twilio"]
    assert (twilio_counts["accepted"], twilio_counts["throttle"]) == (1, 1)
    assert (twilio_counts["invalid"], twilio_counts["unauthorized"]) == (1, 1)
    whatsapp_counts = stats["by_provider"]["whatsapp_cloud"]
    assert (whatsapp_counts["accepted"], whatsapp_counts["invalid"]) == (1, 1)
    assert stats["by_outcome"]["accepted"] == 2
    assert (stats["requests"], stats["messages"]) == (6, 2)


def test_stats_max_per_second_counts_accepted_messages_in_whole_second_windows(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 messages in second 1_000, 2 in second 1_001: 1_000.9 and 1_001.1 are 0.2 s apart but in different windows.
    instants = iter([1_000.1, 1_000.5, 1_000.9, 1_001.1, 1_001.2])
    clock = lambda: datetime.fromtimestamp(next(instants), UTC)  # noqa: E731
    monkeypatch.setattr(twilio, "utc_now", clock)
    monkeypatch.setattr(graph, "utc_now", clock)
    add_fault(client, numbers=[OTHER], kind="permanent")
    for send in (send_sms, send_wa, send_sms):
        send(client)
    send_sms(client, to=OTHER)  # refused: takes no instant and counts in no window
    send_wa(client)
    send_sms(client)

    stats = client.get("/_sandbox/stats").json()
    assert stats["per_second"] == [[1_000, 3], [1_001, 2]]
    assert stats["max_per_second"] == 3


def test_healthz_answers_ok(client: TestClient) -> None:
    assert client.get("/_sandbox/healthz").json() == {"ok": True}


def test_each_app_has_its_own_store_and_faults() -> None:
    with TestClient(create_app()) as first, TestClient(create_app()) as second:
        add_fault(first, numbers="*", kind="permanent")
        send_sms(second)

        assert stored(first) == []
        assert len(stored(second)) == 1
        assert second.get("/_sandbox/faults").json()["count"] == 0


# --- Building blocks ---------------------------------------------------------------------------------------


def test_store_keeps_every_message_when_threads_accept_at_once() -> None:
    store = MessageStore()

    def accept_many(worker: int) -> None:
        for i in range(500):
            at = datetime.now(UTC)
            record: MessageRecord = {
                "id": f"{worker}-{i}",
                "provider": "twilio",
                "to": f"+22507{worker:04d}{i:04d}",
                "from": "S",
                "body": "x",
                "template": None,
                "reference": None,
                "status_callback": None,
                "received_at": at.isoformat(),
                "account": "AC",
            }
            store.accept(record, "accepted", at)

    threads = [threading.Thread(target=accept_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    messages, total = store.messages()
    assert total == len(messages) == 4_000
    assert len({m["id"] for m in messages}) == 4_000
    assert store.stats()["by_outcome"]["accepted"] == 4_000
    assert sum(count for _, count in store.stats()["per_second"]) == 4_000
    assert [m["id"] for m in store.messages(to="+2250700030007")[0]] == ["3-7"]


@pytest.mark.parametrize(("seconds", "header"), [(1, "1"), (1.0, "1"), (0.5, "0.5"), (2.25, "2.25"), (0, "0")])
def test_retry_after_is_whole_seconds_when_it_can_be(seconds: float, header: str) -> None:
    assert format_retry_after(seconds) == header


def test_a_retried_twilio_request_with_the_same_idempotency_key_is_answered_once() -> None:
    client = TestClient(create_app())
    auth = ("ACidem", "token")
    form = {"To": "+2250707123456", "From": "Me", "Body": "once"}
    first = client.post(
        "/2010-04-01/Accounts/ACidem/Messages.json", data=form, auth=auth, headers={"Idempotency-Key": "msg-1"}
    )
    again = client.post(
        "/2010-04-01/Accounts/ACidem/Messages.json", data=form, auth=auth, headers={"Idempotency-Key": "msg-1"}
    )
    other = client.post(
        "/2010-04-01/Accounts/ACidem/Messages.json", data=form, auth=auth, headers={"Idempotency-Key": "msg-2"}
    )
    assert first.status_code == again.status_code == other.status_code == 201
    assert again.json()["sid"] == first.json()["sid"] != other.json()["sid"]
    assert client.get("/_sandbox/messages").json()["count"] == 2
    assert client.get("/_sandbox/stats").json()["by_outcome"]["replayed"] == 1
