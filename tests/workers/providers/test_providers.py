"""Provider adapters over httpx.MockTransport (on an AsyncClient): the request each builds and how each answer is
classified."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from workers.providers.base import Ambiguous, Outbound, Permanent, TemplateCall, Throttled, Transient, parse_retry_after
from workers.providers.registry import MissingSetting
from workers.providers.twilio import TwilioSms
from workers.providers.whatsapp_cloud import WhatsAppCloud

TWILIO = {"base_url": "https://api.test", "account_sid": "AC1", "auth_token": "tok", "from": "MyBrand"}
GRAPH = {"base_url": "https://graph.test", "phone_number_id": "123", "access_token": "tok", "api_version": "v21.0"}


def graph_error(code: int, status: int = 400, **extra: object) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "error": {
                "message": f"(#{code}) x",
                "type": "OAuthException",
                "code": code,
                "error_data": {"details": f"details {code}"},
                **extra,
            }
        },
    )


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        pytest.param(graph_error(130429), Throttled, "130429", id="throughput"),
        pytest.param(graph_error(80007), Throttled, "80007", id="waba-rate"),
        pytest.param(graph_error(131056), Throttled, "131056", id="pair-rate"),
        pytest.param(graph_error(131000, 500), Transient, "131000", id="something-went-wrong"),
        pytest.param(graph_error(2, 503), Transient, "2", id="service-unavailable"),
        pytest.param(graph_error(131026), Permanent, "131026", id="undeliverable"),
        pytest.param(graph_error(132000), Permanent, "132000", id="param-count"),
        pytest.param(graph_error(132001), Permanent, "132001", id="template-missing"),
        pytest.param(graph_error(190, 401), Permanent, "190", id="token-expired"),
        pytest.param(
            httpx.Response(400, json={"error": {"code": "131050", "message": "stopped"}}),
            Permanent,
            "131050",
            id="code-as-string",
        ),
        pytest.param(httpx.Response(502, text="bad gateway"), Transient, "502", id="html-5xx"),
    ],
)
def test_meta_error_codes_land_in_the_right_class(answer: httpx.Response, kind: type, code: str) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer))
    with pytest.raises(kind) as caught:
        message = Outbound(1, "+2250707123456", "x", TemplateCall("t", "fr", ("a",)))
        asyncio.run(WhatsAppCloud(client, GRAPH).send(message))
    assert caught.value.code == code
    if code == "131056":
        assert caught.value.sender_wide is False
    if code == "130429":
        assert caught.value.sender_wide is True


def test_whatsapp_sends_the_template_with_its_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"wa_id": "2250707123456"}],
                "messages": [{"id": "wamid.ABC"}],
            },
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    message = Outbound(7, "+2250707123456", "Bonjour Jean", TemplateCall("promo_fr", "fr", ("Jean", "ORD-1")))
    result = asyncio.run(WhatsAppCloud(client, GRAPH).send(message))
    assert result.provider_message_id == "wamid.ABC"
    request = seen[0]
    assert str(request.url) == "https://graph.test/v21.0/123/messages"
    assert request.headers["Authorization"] == "Bearer tok"
    body = json.loads(request.content)
    assert body["to"] == "2250707123456" and body["type"] == "template"
    assert body["template"] == {
        "name": "promo_fr",
        "language": {"code": "fr"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Jean"}, {"type": "text", "text": "ORD-1"}]}
        ],
    }
    assert body["biz_opaque_callback_data"] == "m=7"


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        pytest.param(
            httpx.Response(429, headers={"Retry-After": "3"}, json={"code": 20429}), Throttled, "20429", id="429"
        ),
        pytest.param(httpx.Response(400, json={"code": 21211, "message": "bad To"}), Permanent, "21211", id="bad-to"),
        pytest.param(
            httpx.Response(400, json={"code": 21610, "message": "unsubscribed"}), Permanent, "21610", id="unsubscribed"
        ),
        pytest.param(httpx.Response(503, json={"code": 20500}), Transient, "20500", id="503"),
        pytest.param(httpx.Response(401, json={"code": 20003}), Permanent, "20003", id="auth"),
    ],
)
def test_twilio_answers_are_classified_by_code(answer: httpx.Response, kind: type, code: str) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer))
    with pytest.raises(kind) as caught:
        asyncio.run(TwilioSms(client, TWILIO).send(Outbound(1, "+2250707123456", "hi")))
    assert caught.value.code == code
    if kind is Throttled:
        assert caught.value.retry_after == 3.0


def test_twilio_request_is_form_encoded_with_basic_auth_and_our_reference() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM1"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    twilio = TwilioSms(client, {**TWILIO, "status_callback": "https://us/cb"})
    asyncio.run(twilio.send(Outbound(9, "+2250707123456", "Prix: 10€")))
    request = seen[0]
    assert request.url.path == "/2010-04-01/Accounts/AC1/Messages.json"
    assert request.headers["Idempotency-Key"] == "msg-9"
    assert request.headers["Authorization"].startswith("Basic ")
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {
        "To": "+2250707123456",
        "From": "MyBrand",
        "Body": "Prix: 10€",
        "StatusCallback": "https://us/cb?mid=9",
    }


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(httpx.ConnectError("refused"), Transient, id="connect"),
        pytest.param(httpx.ConnectTimeout("slow"), Transient, id="connect-timeout"),
        pytest.param(httpx.PoolTimeout("pool"), Transient, id="pool"),
        pytest.param(httpx.ReadTimeout("read"), Ambiguous, id="read-timeout-after-the-request-left"),
        pytest.param(httpx.RemoteProtocolError("dropped"), Ambiguous, id="dropped-mid-answer"),
    ],
)
def test_network_failures_are_transient_before_the_request_left_and_ambiguous_after(
    error: Exception, kind: type
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with pytest.raises(kind):
        asyncio.run(TwilioSms(client, TWILIO).send(Outbound(1, "+2250707123456", "hi")))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, text="<html>ok</html>"), id="not-json"),
        pytest.param(httpx.Response(200, json={}), id="no-id"),
        pytest.param(httpx.Response(200, json={"messages": []}), id="empty-list"),
        pytest.param(httpx.Response(200, json=["x"]), id="a-list"),
        pytest.param(httpx.Response(200, json={"sid": None, "messages": [{"id": None}]}), id="null-id"),
    ],
)
@pytest.mark.parametrize("adapter", ["twilio", "whatsapp"])
def test_a_success_we_cannot_read_is_ambiguous_not_failed(answer: httpx.Response, adapter: str) -> None:
    # The provider took the message: failing it would invite a resend, and a resend a duplicate.
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer))
    provider = TwilioSms(client, TWILIO) if adapter == "twilio" else WhatsAppCloud(client, GRAPH)
    answer.status_code = 201 if adapter == "twilio" else 200
    with pytest.raises(Ambiguous) as caught:
        asyncio.run(provider.send(Outbound(1, "+2250707123456", "hi")))
    assert caught.value.code == "bad_answer"


def test_retry_after_accepts_seconds_and_http_dates_and_is_clamped() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("0") == 1.0
    assert parse_retry_after("99999") == 900.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_sandbox_sms_sender_authenticates_with_its_own_token_else_the_operators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sandbox signs status callbacks with the password a message was sent with, so this decides
    # which secret the API must check the callback with.
    from dispatcher.config import get_settings
    from workers.providers.registry import provider_for

    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _request: httpx.Response(201, json={"sid": "SM1"})))
    own = provider_for("sandbox", "sms", client, {"auth_token": "per-sender", "from": "X"})
    assert isinstance(own, TwilioSms) and own.auth_token == "per-sender"
    monkeypatch.setenv("DISPATCHER_SANDBOX_WEBHOOK_SECRET", "operator-secret")
    get_settings.cache_clear()
    try:
        legacy = provider_for("sandbox", "sms", client, {"from": "X"})
        assert isinstance(legacy, TwilioSms) and legacy.auth_token == "operator-secret"
        # ...but the operator's secret never goes to a URL the sender's owner chose
        with pytest.raises(MissingSetting, match="auth_token"):
            provider_for("sandbox", "sms", client, {"from": "X", "base_url": "https://collector.example"})
    finally:
        monkeypatch.delenv("DISPATCHER_SANDBOX_WEBHOOK_SECRET")
        get_settings.cache_clear()
