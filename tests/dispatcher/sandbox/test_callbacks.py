"""The sandbox's own provider callbacks: Twilio status callbacks, Meta status and reply webhooks, signed.

Callbacks go over real HTTP to a small receiving app served by uvicorn in a thread, which records the exact
URL, headers and raw body it got, so signatures are checked the way a real receiver checks them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from dispatcher.sandbox import create_app
from dispatcher.tracking.signatures import meta_signature, twilio_signature

ACCOUNT = "AC" + "c3" * 16
TOKEN = "basic-password"
PHONE_ID = "106540352242922"
NUMBER = "+2250707123456"
APP_SECRET = "meta-app-secret"


@dataclass(frozen=True)
class Received:
    url: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


class Receiver:
    """Records every POST; `?answer=<status>` picks the answer, `?delay=<seconds>` delays it."""

    def __init__(self) -> None:
        self.base_url = ""
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.app = FastAPI()

        @self.app.post("/{path:path}")
        async def hook(path: str, request: Request) -> PlainTextResponse:
            body = await request.body()
            with self._lock:
                self._received.append(Received(str(request.url), dict(request.headers), body))
            await asyncio.sleep(float(request.query_params.get("delay", "0")))
            return PlainTextResponse(f"got /{path}", status_code=int(request.query_params.get("answer", "200")))

    def url(self, query: str = "") -> str:
        """A fresh URL of its own, so a test only sees what was sent to it."""
        return f"{self.base_url}/hooks/{uuid.uuid4().hex}{query}"

    def at(self, url: str) -> list[Received]:
        with self._lock:
            return [r for r in self._received if r.url == url]

    def wait(self, url: str, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.at(url)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        received = self.at(url)
        assert len(received) == count, received
        return received


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(receiver.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "receiver did not start"
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def client() -> Iterator[TestClient]:
    # Used as a context manager so the app's event loop (and its background callbacks) outlives each request.
    with TestClient(create_app()) as test_client:
        yield test_client


def configure(client: TestClient, **config: Any) -> dict[str, Any]:
    response = client.patch("/_sandbox/config", json=config)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def webhook_for(client: TestClient, url: str, **extra: str) -> None:
    configure(client, whatsapp_webhooks={PHONE_ID: {"url": url, "app_secret": APP_SECRET, **extra}})


def send_sms(client: TestClient, status_callback: str | None = None, password: str = TOKEN) -> str:
    form = {"To": NUMBER, "From": "MySender", "Body": "Bonjour"}
    if status_callback is not None:
        form["StatusCallback"] = status_callback
    response = client.post(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", data=form, auth=(ACCOUNT, password))
    assert response.status_code == 201, response.text
    sid: str = response.json()["sid"]
    return sid


def send_wa(client: TestClient, reference: str | None = "camp=42;rcpt=7") -> str:
    payload: dict[str, Any] = {"messaging_product": "whatsapp", "to": NUMBER, "type": "text", "text": {"body": "Salut"}}
    if reference is not None:
        payload["biz_opaque_callback_data"] = reference
    response = client.post(f"/v21.0/{PHONE_ID}/messages", json=payload, headers={"Authorization": "Bearer t"})
    assert response.status_code == 200, response.text
    wamid: str = response.json()["messages"][0]["id"]
    return wamid


def callback(client: TestClient, message_id: str, status: str, **extra: Any) -> httpx.Response:
    response: httpx.Response = client.post(
        "/_sandbox/callbacks", json={"message_id": message_id, "status": status, **extra}
    )
    return response


def assert_meta_signed(received: Received) -> None:
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-hub-signature-256"] == meta_signature(APP_SECRET, received.body)


def value_of(received: Received) -> dict[str, Any]:
    payload = received.json()
    assert payload["object"] == "whatsapp_business_account"
    [entry] = payload["entry"]
    assert entry["id"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value: dict[str, Any] = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"]["phone_number_id"] == PHONE_ID
    return value


# --- Signatures --------------------------------------------------------------------------------------------


def test_twilio_signature_matches_twilios_documented_vector() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature("12345", url, dict(reversed(params.items()))) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_meta_signature_matches_metas_documented_vector() -> None:
    signature = meta_signature("secret", b"test")

    assert signature.startswith("sha256=0329a06b") and signature.endswith("0914")
    assert len(signature) == len("sha256=") + 64


# --- Twilio status callbacks -------------------------------------------------------------------------------


def test_twilio_status_callback_is_form_encoded_and_signed_with_the_basic_password(
    client: TestClient, receiver: Receiver
) -> None:
    url = receiver.url("?campaign=42&rcpt=7")
    sid = send_sms(client, status_callback=url)

    response = callback(client, sid, "delivered")

    assert response.status_code == 200, response.text
    assert response.json() == {"delivered_to": url, "status_code": 200, "body": f"got {httpx.URL(url).path}"}
    [received] = receiver.at(url)
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    params = received.form()
    assert received.headers["x-twilio-signature"] == twilio_signature(TOKEN, received.url, params)
    assert {k: v for k, v in params.items() if k != "RawDlrDoneDate"} == {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": ACCOUNT,
        "From": "MySender",
        "To": NUMBER,
        "ApiVersion": "2010-04-01",
    }
    assert len(params["RawDlrDoneDate"]) == 10 and params["RawDlrDoneDate"].isdigit()


def test_twilio_failed_callback_carries_an_error_code_and_the_configured_auth_token(
    client: TestClient, receiver: Receiver
) -> None:
    configure(client, twilio_auth_tokens={ACCOUNT: "configured-token"})
    url = receiver.url()
    sid = send_sms(client, status_callback=url)

    assert callback(client, sid, "failed", error_code=30007).status_code == 200
    assert callback(client, sid, "undelivered").status_code == 200

    failed, undelivered = receiver.wait(url, 2)
    for received in (failed, undelivered):
        expected = twilio_signature("configured-token", received.url, received.form())
        assert received.headers["x-twilio-signature"] == expected
    assert (failed.form()["MessageStatus"], failed.form()["ErrorCode"]) == ("failed", "30007")
    assert (undelivered.form()["MessageStatus"], undelivered.form()["ErrorCode"]) == ("undelivered", "30003")


def test_twilio_message_without_status_callback_answers_409(client: TestClient) -> None:
    sid = send_sms(client)

    response = callback(client, sid, "sent")

    assert response.status_code == 409
    assert "StatusCallback" in response.json()["detail"]


# --- Meta webhooks -----------------------------------------------------------------------------------------


def test_whatsapp_status_webhook_is_signed_over_the_raw_body(client: TestClient, receiver: Receiver) -> None:
    url = receiver.url()
    webhook_for(client, url, display_phone_number="2250700000000")
    wamid = send_wa(client)

    before = int(time.time())
    response = callback(client, wamid, "read")

    assert response.status_code == 200, response.text
    assert (response.json()["delivered_to"], response.json()["status_code"]) == (url, 200)
    [received] = receiver.at(url)
    assert_meta_signed(received)
    value = value_of(received)
    assert value["metadata"]["display_phone_number"] == "2250700000000"
    [status] = value["statuses"]
    assert (status["id"], status["status"], status["recipient_id"]) == (wamid, "read", NUMBER.lstrip("+"))
    assert status["biz_opaque_callback_data"] == "camp=42;rcpt=7"
    assert isinstance(status["timestamp"], str) and before <= int(status["timestamp"]) <= time.time()
    assert "errors" not in status


def test_whatsapp_failed_status_carries_errors(client: TestClient, receiver: Receiver) -> None:
    url = receiver.url()
    webhook_for(client, url)
    wamid = send_wa(client, reference=None)

    assert callback(client, wamid, "failed", error_code=131047, error_message="window closed").status_code == 200
    assert callback(client, wamid, "undelivered").status_code == 200

    first, second = receiver.wait(url, 2)
    [failed] = value_of(first)["statuses"]
    assert failed["status"] == "failed"
    assert "biz_opaque_callback_data" not in failed
    [error] = failed["errors"]
    assert (error["code"], error["title"], error["error_data"]) == (
        131047,
        "Re-engagement message",
        {"details": "window closed"},
    )
    assert error["message"]
    [default] = value_of(second)["statuses"]
    assert (default["status"], default["errors"][0]["code"]) == ("failed", 131026)


def test_whatsapp_message_without_a_configured_webhook_answers_409(client: TestClient) -> None:
    wamid = send_wa(client)

    response = callback(client, wamid, "sent")

    assert response.status_code == 409
    assert PHONE_ID in response.json()["detail"]


def test_reply_webhook_is_an_inbound_text_signed_over_the_raw_body(client: TestClient, receiver: Receiver) -> None:
    url = receiver.url()
    webhook_for(client, url, display_phone_number="2250700000000")
    wamid = send_wa(client)

    response = client.post(
        "/_sandbox/replies",
        json={"from": NUMBER, "phone_number_id": PHONE_ID, "text": "Oui merci ✅", "context_message_id": wamid},
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["delivered_to"], answer["status_code"]) == (url, 200)
    assert answer["message_id"].startswith("wamid.")
    [received] = receiver.at(url)
    assert_meta_signed(received)
    value = value_of(received)
    assert value["contacts"] == [{"profile": {"name": "Sandbox User"}, "wa_id": "2250707123456"}]
    [message] = value["messages"]
    assert message["id"] == answer["message_id"]
    assert (message["from"], message["type"], message["text"]) == ("2250707123456", "text", {"body": "Oui merci ✅"})
    assert message["context"] == {"from": "2250700000000", "id": wamid}
    assert message["timestamp"].isdigit()


def test_reply_without_context_uses_the_given_name(client: TestClient, receiver: Receiver) -> None:
    url = receiver.url()
    webhook_for(client, url)

    response = client.post(
        "/_sandbox/replies", json={"from": "2250707123456", "phone_number_id": PHONE_ID, "text": "STOP", "name": "Awa"}
    )

    assert response.status_code == 200, response.text
    value = value_of(receiver.wait(url, 1)[0])
    assert value["contacts"][0]["profile"] == {"name": "Awa"}
    assert "context" not in value["messages"][0]


def test_reply_to_a_number_without_a_webhook_answers_409(client: TestClient) -> None:
    response = client.post("/_sandbox/replies", json={"from": NUMBER, "phone_number_id": PHONE_ID, "text": "hi"})

    assert response.status_code == 409


def test_reply_refuses_a_sender_that_is_not_a_number(client: TestClient) -> None:
    response = client.post("/_sandbox/replies", json={"from": "Awa", "phone_number_id": PHONE_ID, "text": "hi"})

    assert response.status_code == 422


# --- Automatic statuses ------------------------------------------------------------------------------------


def test_auto_statuses_arrive_in_order_for_both_providers(client: TestClient, receiver: Receiver) -> None:
    twilio_url, meta_url = receiver.url(), receiver.url()
    webhook_for(client, meta_url)
    configure(client, auto_statuses=["sent", "delivered", "read"])

    sid = send_sms(client, status_callback=twilio_url)
    wamid = send_wa(client)

    sms = receiver.wait(twilio_url, 2)
    # An SMS is never `read`: Twilio reports that only for WhatsApp.
    assert [r.form()["MessageStatus"] for r in sms] == ["sent", "delivered"]
    assert all(r.headers["x-twilio-signature"] == twilio_signature(TOKEN, r.url, r.form()) for r in sms)
    whatsapp = receiver.wait(meta_url, 3)
    assert [value_of(r)["statuses"][0]["status"] for r in whatsapp] == ["sent", "delivered", "read"]
    assert {value_of(r)["statuses"][0]["id"] for r in whatsapp} == {wamid}
    for received in whatsapp:
        assert_meta_signed(received)

    logged = client.get("/_sandbox/callbacks").json()
    assert logged["count"] == 5
    assert [(c["message_id"], c["status"]) for c in logged["callbacks"] if c["kind"] == "twilio_status"] == [
        (sid, "sent"),
        (sid, "delivered"),
    ]
    assert {(c["url"], c["status_code"]) for c in logged["callbacks"]} == {(twilio_url, 200), (meta_url, 200)}


def test_auto_statuses_do_not_delay_the_provider_answer(client: TestClient, receiver: Receiver) -> None:
    url = receiver.url("?delay=1")
    configure(client, auto_statuses=["sent"])

    started = time.monotonic()
    send_sms(client, status_callback=url)

    assert time.monotonic() - started < 0.5
    receiver.wait(url, 1)


def test_auto_statuses_skip_messages_with_nowhere_to_go(client: TestClient) -> None:
    configure(client, auto_statuses=["sent"])

    send_sms(client)
    send_wa(client)
    time.sleep(0.2)

    assert client.get("/_sandbox/callbacks").json() == {"count": 0, "callbacks": []}


# --- Errors, log and config --------------------------------------------------------------------------------


def test_unknown_message_answers_404(client: TestClient) -> None:
    response = callback(client, "SM" + "0" * 32, "delivered")

    assert response.status_code == 404


def test_receiver_status_and_answer_are_reported(client: TestClient, receiver: Receiver) -> None:
    url = receiver.url("?answer=503")
    sid = send_sms(client, status_callback=url)

    response = callback(client, sid, "sent")

    assert response.status_code == 200
    assert (response.json()["status_code"], response.json()["body"][:4]) == (503, "got ")


def test_unreachable_receiver_answers_502_and_is_logged(client: TestClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sid = send_sms(client, status_callback=closed)

    response = callback(client, sid, "sent")

    assert response.status_code == 502
    assert "ConnectError" in response.json()["detail"]
    [logged] = client.get("/_sandbox/callbacks").json()["callbacks"]
    assert (logged["url"], logged["status_code"], logged["kind"]) == (closed, None, "twilio_status")
    assert logged["error"].startswith("ConnectError")


def test_deleting_messages_clears_the_callback_log(client: TestClient, receiver: Receiver) -> None:
    sid = send_sms(client, status_callback=receiver.url())
    assert callback(client, sid, "sent").status_code == 200
    assert client.get("/_sandbox/callbacks").json()["count"] == 1

    client.delete("/_sandbox/messages")

    assert client.get("/_sandbox/callbacks").json() == {"count": 0, "callbacks": []}
    assert callback(client, sid, "sent").status_code == 404


def test_callbacks_can_go_through_an_injected_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with TestClient(create_app(callback_transport=httpx.MockTransport(handler))) as client:
        webhook_for(client, "https://hooks.example/meta")
        wamid = send_wa(client)
        response = callback(client, wamid, "delivered")

    assert response.json() == {"delivered_to": "https://hooks.example/meta", "status_code": 204, "body": ""}
    [request] = seen
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Hub-Signature-256"] == expected


def test_config_patch_keeps_other_keys_and_put_replaces_them(client: TestClient) -> None:
    configure(client, latency_ms=5, auto_statuses=["sent"])
    webhook_for(client, "https://hooks.example/meta")

    config = client.get("/_sandbox/config").json()
    assert (config["latency_ms"], config["auto_statuses"], config["callback_timeout_seconds"]) == (5, ["sent"], 5)
    assert config["whatsapp_webhooks"][PHONE_ID]["url"] == "https://hooks.example/meta"

    assert client.put("/_sandbox/config", json={"latency_ms": 0}).json() == {
        "latency_ms": 0,
        "twilio_auth_tokens": {},
        "whatsapp_webhooks": {},
        "auto_statuses": [],
        "callback_timeout_seconds": 5,
    }


@pytest.mark.parametrize(
    "config",
    [
        {"auto_statuses": ["queued"]},
        {"whatsapp_webhooks": {PHONE_ID: {"url": "ftp://x", "app_secret": "s"}}},
        {"whatsapp_webhooks": {PHONE_ID: {"url": "https://x"}}},
        {"callback_timeout_seconds": 0},
    ],
)
def test_invalid_callback_config_is_refused(client: TestClient, config: dict[str, Any]) -> None:
    assert client.put("/_sandbox/config", json=config).status_code == 422
