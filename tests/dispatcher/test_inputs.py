"""Pure checks on untrusted input: digits, provider URLs, dates, JSON values, sandbox secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from beat_schedule.grid import ScheduleError
from beat_schedule.rules import parse_recurring
from dispatcher.api.bodies import body_problem, query_problem
from dispatcher.audience.contacts import parse_id
from dispatcher.audience.senders import SANDBOX_SECRETS, with_sandbox_secrets
from dispatcher.content.templates import variable_count
from dispatcher.inputs import (
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    ascii_digits,
    date_problem,
    fields_problem,
    json_problem,
    provider_url_problem,
)
from dispatcher.sandbox.faults import FaultSpec
from workers.providers.base import Permanent
from workers.providers.twilio import classify

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"), [("123", True), ("١٢٣", False), ("²", False), ("12³", False), ("", False)]
)
def test_only_ascii_digits_are_digits(text: str, expected: bool) -> None:
    assert ascii_digits(text) is expected


@pytest.mark.parametrize("raw", ["١٢", "²", "۱", "12\u0663"])
def test_ids_written_in_other_scripts_name_nothing(raw: str) -> None:
    assert parse_id(raw) is None
    assert parse_id("12") == 12


@pytest.mark.parametrize("code", ["²", "٢١٢١١"])
def test_a_twilio_error_code_in_other_digits_is_no_code(code: str) -> None:
    # Given Twilio (or a proxy) answers with a code int() cannot read or would misread
    response = httpx.Response(400, json={"code": code, "message": "bad"})
    # Then the error is classified by HTTP status, without raising
    error = classify(response)
    assert isinstance(error, Permanent) and error.code == "400"


def test_recurring_times_are_written_in_ascii_digits() -> None:
    assert parse_recurring({"monday": "09:00"}, "UTC", 15).times
    with pytest.raises(ScheduleError, match="recurring.monday"):
        parse_recurring({"monday": "٠٩:٠٠"}, "UTC", 15)


@pytest.mark.parametrize("value", ["9999-12-31T23:45:00-05:00", "0001-01-01T00:00:00+05:00", "2205-03-18T09:00:00Z"])
def test_a_recurring_time_dated_beyond_any_schedule_names_its_weekday(value: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_recurring({"monday": value}, "UTC", 15)
    assert caught.value.field == "recurring.monday"
    # The SDK's JS Dates carry a meaningless date of about now: only the time counts
    assert parse_recurring({"monday": "2026-03-18T09:00:00.000Z"}, "UTC", 15).times[0][1].hour == 9


def test_template_placeholders_are_ascii_numbers() -> None:
    assert variable_count("Bonjour {{1}}, commande {{2}}") == 2
    assert variable_count("Bonjour {{١}}") == 0  # not a placeholder Meta would fill


def test_sandbox_fault_numbers_must_be_ascii_digits() -> None:
    with pytest.raises(ValueError, match="not phone numbers"):
        FaultSpec(numbers=["+٢٢٥٠٧٠٠٠٠٠٠٠١"], kind="permanent")
    assert FaultSpec(numbers=["2250700000001"], kind="permanent").numbers == ["+2250700000001"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8025",
        "http://localhost:8025",
        "http://api.localhost/",
        "http://10.0.0.5",
        "http://192.168.1.1",
        "http://172.16.0.1",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:80",
        "http://[fe80::1]",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0",
        "http://127.1",
        "http://2130706433",
        "http://0x7f000001",
    ],
)
def test_private_provider_urls_are_refused_unless_allowed(url: str) -> None:
    assert "private" in (provider_url_problem(url, allow_private=False) or "")
    assert provider_url_problem(url, allow_private=True) is None


@pytest.mark.parametrize(
    "url", ["ftp://api.twilio.com", "https://", "api.twilio.com", "http://[::1", "http://h:99999", "javascript:x", 42]
)
def test_provider_urls_must_be_http_with_a_host(url: object) -> None:
    assert provider_url_problem(url, allow_private=True) is not None


@pytest.mark.parametrize("url", ["https://api.twilio.com", "https://graph.facebook.com/v21.0", "http://8.8.8.8:80"])
def test_public_provider_urls_are_accepted(url: str) -> None:
    assert provider_url_problem(url, allow_private=False) is None


def test_dates_more_than_ten_years_ahead_or_beyond_utc_are_refused() -> None:
    assert date_problem(NOW + timedelta(days=365 * 9), NOW) is None
    assert date_problem(NOW + timedelta(days=366 * 11), NOW) == "is more than 10 years ahead"
    assert date_problem(datetime(9999, 12, 31, 23, 45, tzinfo=timezone(timedelta(hours=-5))), NOW) == "is out of range"
    assert date_problem(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), NOW) == "is out of range"
    assert date_problem(datetime(9999, 12, 31, 23, 45), NOW) == "is more than 10 years ahead"  # naive: read as UTC


@pytest.mark.parametrize(
    ("value", "loc"),
    [
        ({"a": [1, {"b": float("nan")}]}, ("a", 1, "b")),
        ({"x": float("inf")}, ("x",)),
        ([float("-inf")], (0,)),
        ({"t": "a\x00b"}, ("t",)),
        ({"k\x00": 1}, ("k\x00",)),
    ],
)
def test_json_problems_name_where_they_are(value: object, loc: tuple[object, ...]) -> None:
    found = json_problem(value)
    assert found is not None and found[0] == loc


def test_clean_json_has_no_problem() -> None:
    assert json_problem({"a": [1, 2.5, "x", None, True, {"b": "é"}]}) is None


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"a": NaN}', ("body", "a")),
        (b'{"a": [Infinity]}', ("body", "a", 0)),
        (b'{"a": -Infinity}', ("body", "a")),
        (b'{"a": 1e999}', ("body", "a")),
        (b'{"a": 1E+400}', ("body", "a")),
        (b'{"a": "x\\u0000"}', ("body", "a")),
    ],
)
def test_bodies_with_values_we_cannot_store_are_found(raw: bytes, loc: tuple[object, ...]) -> None:
    found = body_problem(raw)
    assert found is not None and found[0] == loc


def test_a_body_that_is_not_utf8_is_named() -> None:
    assert body_problem('{"text": "café"}'.encode("latin-1")) == (
        ("body",),
        "must be JSON encoded in UTF-8 (invalid byte at position 13)",
    )
    assert body_problem('{"text": "café"}'.encode()) is None


def test_ordinary_and_invalid_bodies_pass_to_the_app() -> None:
    assert body_problem(b'{"text": "NaN is a word", "n": 1e10}') is None
    assert body_problem(b'{"broken": NaN') is None  # FastAPI reports invalid JSON itself
    assert body_problem(b"[" * 100_000 + b"NaN" + b"]" * 100_000) is None  # too deep to decode: FastAPI's 400


def test_the_body_check_reads_the_content_type_fastapi_reads() -> None:
    import asyncio

    from dispatcher.api.bodies import BodyGuard

    reached: list[bool] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append(True)

    sent: list[dict[str, object]] = []
    body = b'{"fields": {"x": NaN}}'
    headers = [(b"content-type", b"application/json"), (b"content-type", b"text/plain")]
    scope = {"type": "http", "method": "POST", "path": "/v1/contacts", "headers": headers, "query_string": b""}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(BodyGuard(app)(scope, receive, send))  # type: ignore[arg-type]
    assert not reached and sent[0]["status"] == 422


def test_nul_in_a_query_parameter_is_found() -> None:
    assert query_problem(b"phone=%00225") == (("query", "phone"), "must not contain NUL (\\u0000) characters")
    assert query_problem(b"phone=225&page=2") is None


def test_each_sandbox_sender_gets_its_own_random_secrets() -> None:
    first, second = with_sandbox_secrets({}), with_sandbox_secrets({})
    for name in SANDBOX_SECRETS:
        assert len(first[name]) >= 40 and first[name] != second[name]
        assert first[name] != "sandbox"
    # Given ones are kept, the rest generated
    given = with_sandbox_secrets({"app_secret": "mine", "base_url": "http://x"})
    assert given["app_secret"] == "mine" and given["base_url"] == "http://x" and given["verify_token"]


def test_custom_fields_are_bounded_in_count_name_and_value() -> None:
    assert fields_problem({f"f{i}": "x" * MAX_FIELD_VALUE for i in range(MAX_FIELDS)}) is None
    assert "at most 50" in (fields_problem({f"f{i}": 1 for i in range(MAX_FIELDS + 1)}) or "")
    assert "longer than 64" in (fields_problem({"n" * 65: "x"}) or "")
    assert "'ville' is longer than 1024" in (fields_problem({"ville": "x" * (MAX_FIELD_VALUE + 1)}) or "")
    assert fields_problem({"n": 10**30, "ok": None, "b": True}) is None  # only text is measured
    assert "only letters, digits and _" in (fields_problem({":": "x"}) or "")
    assert "only letters, digits and _" in (fields_problem({"first-name": "x"}) or "")
    assert fields_problem({"nom_complet": "x", "1": "y", "Ville2": "z"}) is None
