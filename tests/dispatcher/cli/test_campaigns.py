"""`dispatcher campaigns ...` through `dispatcher.client` against `httpx.MockTransport`: requests, output, errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.cli import campaigns as cli_campaigns
from dispatcher.config import get_settings
from tests.support.cli_api import URL, Api, run

NOW = "2024-03-18T08:00:00.123456Z"
STATS = {"total": 3, "sent": 2, "failed": 1, "skipped": 0, "unknown": 0, "delivered": 1, "read": 0, "pending": 0}
PENDING: dict[str, Any] = {
    "id": "1",
    "name": "Bienvenue",
    "type": "SMS",
    "channel": "sms",
    "status": "PENDING",
    "statusReason": None,
    "senderLabel": "My Sender",
    "stats": {**STATS, "sent": 0, "failed": 0, "delivered": 0, "pending": 3},
    "createdAt": NOW,
    "errors": [],
    "encoding": "GSM-7",
    "totalSegments": 3,
    "recipients": 3,
    "warnings": ["sender 'X' does not exist: the default sender is used"],
}
SENT = {
    **PENDING,
    "status": "SENT",
    "statusReason": "all messages handled",
    "stats": STATS,
    "scheduledDate": "2024-03-19T09:00:00Z",
    "errors": [{"code": "21610", "error": "unsubscribed", "count": 1}],
}


def campaign_file(tmp_path: Path) -> Path:
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps({"contacts": [{"phone": "2250707123456"}], "text": "Bonjour", "senderId": "X"}))
    return path


@pytest.mark.usefixtures("settings")
def test_send_posts_the_file_as_is_and_prints_what_was_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api = Api(PENDING)
    result = run(monkeypatch, api, "campaigns", "send", str(campaign_file(tmp_path)), "--idempotency-key", "k1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "campaign 1 accepted: 3 recipients, GSM-7, 3 segments, status PENDING",
        "warning: sender 'X' does not exist: the default sender is used",
    ]
    (request,) = api.requests
    assert (request.method, str(request.url)) == ("POST", f"{URL}/v1/campaigns")
    assert request.headers["Authorization"] == "Bearer dsp_cli-token"
    assert request.headers["Idempotency-Key"] == "k1"
    assert json.loads(request.content) == json.loads(campaign_file(tmp_path).read_text())


@pytest.mark.usefixtures("settings")
def test_a_whatsapp_campaign_is_described_by_its_template(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    whatsapp = {**PENDING, "channel": "whatsapp", "template": "commande_prete", "language": "fr", "warnings": []}
    whatsapp.update(encoding=None, totalSegments=None)
    result = run(monkeypatch, Api(whatsapp), "campaigns", "send", str(campaign_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.stdout == "campaign 1 accepted: 3 recipients, template commande_prete (fr), status PENDING\n"


@pytest.mark.usefixtures("settings")
def test_send_watch_polls_without_recipients_until_the_campaign_is_final(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli_campaigns, "_watch", functools.partial(cli_campaigns._watch, interval=0))
    api = Api(PENDING, PENDING, SENT)
    result = run(monkeypatch, api, "campaigns", "send", str(campaign_file(tmp_path)), "--watch")
    assert result.exit_code == 0, result.output
    assert [(r.method, r.url.path, r.url.query) for r in api.requests[1:]] == [
        ("GET", "/v1/campaigns/1", b"contacts=false"),
        ("GET", "/v1/campaigns/1", b"contacts=false"),
    ]
    assert "3/3 sent 2  failed 1  pending 0" in result.stdout and "[SENT]" in result.stdout
    assert result.stdout.endswith("campaign 1: SENT (all messages handled)\n  1 × 21610: unsubscribed\n")


@pytest.mark.usefixtures("settings")
def test_list_sends_the_filters_and_prints_a_row_per_campaign(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api({"data": [SENT, {**PENDING, "id": "2", "createdAt": "2024-03-18T09:30:00Z"}], "page": 2, "total": 12})
    result = run(monkeypatch, api, "campaigns", "list", "--status", "SENT", "--page", "2", "--limit", "5")
    assert result.exit_code == 0, result.output
    assert dict(api.requests[0].url.params) == {"status": "SENT", "page": "2", "limit": "5"}
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines() if "│" in line]
    assert rows == [
        ["1", "Bienvenue", "SMS", "SENT", "3", "2", "1", "0", NOW],
        ["2", "Bienvenue", "SMS", "PENDING", "3", "0", "0", "3", "2024-03-18T09:30:00Z"],
    ]
    assert result.stdout.endswith("page 2 · 12 campaigns\n")
    refused = run(monkeypatch, Api(), "campaigns", "list", "--status", "DONE")
    assert refused.exit_code == 2 and "'ALL', 'PENDING', 'SENT', 'FAILED', 'PAUSED', 'CANCELLED'" in refused.stderr


@pytest.mark.usefixtures("settings")
def test_show_lists_the_fields_set_under_their_api_names(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(monkeypatch, Api(SENT), "campaigns", "show", "1")
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1]
        for line in result.stdout.splitlines()
        if len(cells := [cell.strip() for cell in line.split("│")[1:-1]]) == 2
    }
    assert rows == {
        "id": "1",
        "name": "Bienvenue",
        "type": "SMS",
        "channel": "sms",
        "status": "SENT",
        "statusReason": "all messages handled",
        "senderLabel": "My Sender",
        "scheduledDate": "2024-03-19T09:00:00Z",
        "recipients": "3",
        "encoding": "GSM-7",
        "totalSegments": "3",
        "createdAt": NOW,
        "stats": "total 3  sent 2  failed 1  skipped 0  unknown 0  delivered 1  read 0  pending 0",
    }
    assert result.stdout.endswith("  1 × 21610: unsubscribed\n")


CSV = [b"phone,contactId,status\r\n", b"+2250700000001,3,read\r\n", b'+2250700000002,4,"a, ""b""\n"\r\n']


def streamed(pieces: list[bytes], then: Exception | None = None) -> Callable[[httpx.Request], httpx.Response]:
    def body() -> Iterator[bytes]:
        yield from pieces
        if then is not None:
            raise then

    return lambda _: httpx.Response(200, headers={"content-type": "text/csv; charset=utf-8"}, content=body())


@pytest.mark.usefixtures("settings")
def test_export_writes_the_csv_to_stdout_as_it_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(streamed(CSV))
    result = run(monkeypatch, api, "campaigns", "export", "7", "--run", "11", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"".join(CSV) and result.stderr == ""
    (request,) = api.requests
    assert (request.url.path, dict(request.url.params)) == (
        "/v1/campaigns/7/messages",
        {"run": "11", "status": "failed"},
    )
    assert request.headers["Accept"] == "text/csv" and request.headers["Authorization"] == "Bearer dsp_cli-token"


@pytest.mark.usefixtures("settings")
def test_export_errors_go_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    not_found = Api(lambda _: httpx.Response(404, json={"detail": "campaign 9 not found"}))
    missing = run(monkeypatch, not_found, "campaigns", "export", "9")
    assert (missing.exit_code, missing.stdout, missing.stderr) == (1, "", "Error: HTTP 404: campaign 9 not found\n")
    cut = Api(streamed(CSV[:2], then=httpx.RemoteProtocolError("incomplete chunked read")))
    result = run(monkeypatch, cut, "campaigns", "export", "7")
    # What arrived is written; the exit status and the message say the file is not whole.
    assert result.exit_code == 1 and result.stdout_bytes == b"".join(CSV[:2])
    assert result.stderr == "Error: the export of campaign 7 was cut short after 47 bytes: incomplete chunked read\n"


@pytest.mark.usefixtures("settings")
def test_refusals_name_each_field_and_other_errors_show_the_detail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    detail = [
        {"loc": ["body", "contacts", 0, "phone"], "msg": "not a valid phone number", "type": "phone"},
        {"loc": ["header", "Idempotency-Key"], "msg": "reused with another payload", "type": "idempotency"},
    ]
    invalid = Api(lambda _: httpx.Response(422, json={"detail": detail}))
    refused = run(monkeypatch, invalid, "campaigns", "send", str(campaign_file(tmp_path)))
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: HTTP 422:\n"
        "  body.contacts.0.phone: not a valid phone number\n"
        "  header.Idempotency-Key: reused with another payload\n"
    )
    not_found = Api(lambda _: httpx.Response(404, json={"detail": "campaign 9 not found"}))
    missing = run(monkeypatch, not_found, "campaigns", "show", "9")
    assert (missing.exit_code, missing.stderr) == (1, "Error: HTTP 404: campaign 9 not found\n")
    down = run(monkeypatch, Api(lambda _: httpx.Response(503, text="upstream down")), "campaigns", "watch", "9")
    assert down.exit_code == 1 and down.stderr == "Error: HTTP 503: upstream down\n"


@pytest.mark.usefixtures("settings")
def test_an_unreachable_api_is_named_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = run(monkeypatch, Api(refuse), "campaigns", "list")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == f"Error: cannot reach the API at {URL}: [Errno 111] Connection refused\n"


@pytest.mark.usefixtures("settings")
def test_without_a_token_the_cli_says_where_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DISPATCHER_API_TOKEN")
    get_settings.cache_clear()
    result = run(monkeypatch, Api(), "campaigns", "list")
    assert result.exit_code == 1 and "no API token: set DISPATCHER_API_TOKEN" in result.stderr
    saved = tmp_path / "state" / "token"
    saved.parent.mkdir()
    saved.write_text("dsp_saved\n")
    api = Api({"data": [], "page": 1, "total": 0})
    assert run(monkeypatch, api, "campaigns", "list").exit_code == 0
    assert api.requests[0].headers["Authorization"] == "Bearer dsp_saved"
