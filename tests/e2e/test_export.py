"""A campaign sent on the real stack, exported as CSV: one row per recipient whose statuses add up to the stats."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from dispatcher.campaigns import export
from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone, make_tenant

HEADER = "phone,contactId,status,errorCode,error,providerMessageId,sentAt,deliveredAt,readAt,runId"
# A provider's error text a CSV writer must quote: a comma, quotes and a newline.
AWKWARD = 'Refused, "STOP" received\nfrom the recipient'


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.text)))


def stats_of(rows: list[dict[str, str]]) -> dict[str, int]:
    """The details' stats as the CSV's statuses count them (delivered and read are sent messages too)."""
    n = Counter(row["status"] for row in rows)
    return {
        "total": len(rows),
        "sent": n["sent"] + n["delivered"] + n["read"],
        "failed": n["failed"],
        "skipped": n["skipped"],
        "unknown": n["unknown"],
        "delivered": n["delivered"] + n["read"],
        "read": n["read"],
        "pending": n["queued"] + n["sending"],
    }


def callback(box: httpx.Client, message_id: str, status: str) -> None:
    answer = box.post("/_sandbox/callbacks", json={"message_id": message_id, "status": status})
    assert answer.status_code == 200 and answer.json()["status_code"] == 200, answer.text


def wait_stats(tenant: Tenant, campaign_id: str, **expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        details: dict[str, Any] = tenant.get(f"/v1/campaigns/{campaign_id}").json()
        if all(details["stats"][k] == v for k, v in expected.items()) or time.monotonic() > deadline:
            return details
        time.sleep(0.1)


@pytest.fixture
def sent_campaign(tenant: Tenant, sandbox_box: httpx.Client) -> dict[str, Any]:
    """30 recipients: 3 refused by the provider with an awkward text, 5 delivered and 2 read by receipts."""
    phones = [ci_phone(95_000 + i) for i in range(30)]
    fault = {"numbers": phones[:3], "kind": "permanent", "code": 21211, "message": AWKWARD}
    assert sandbox_box.post("/_sandbox/faults", json=fault).status_code == 201
    created = tenant.post("/v1/campaigns", {"contacts": [{"phone": p} for p in phones], "text": "Bonjour"}).json()
    tenant.wait_final(created["id"])
    received = sorted(sandbox_box.get("/_sandbox/messages").json()["messages"], key=lambda m: m["to"])
    for message in received[:5]:
        callback(sandbox_box, message["id"], "delivered")
    for message in received[5:7]:
        callback(sandbox_box, message["id"], "read")
    return wait_stats(tenant, created["id"], delivered=7, read=2)


def test_the_csv_has_a_row_per_recipient_whose_statuses_add_up_to_the_stats(
    tenant: Tenant, sent_campaign: dict[str, Any]
) -> None:
    campaign_id = sent_campaign["id"]
    response = tenant.get(f"/v1/campaigns/{campaign_id}/messages", params={"format": "csv"})
    assert response.text.startswith(HEADER + "\r\n")
    assert response.headers["content-disposition"] == f'attachment; filename="campaign-{campaign_id}-messages.csv"'
    rows = rows_of(response)
    assert stats_of(rows) == sent_campaign["stats"]
    assert (sent_campaign["stats"]["total"], sent_campaign["stats"]["failed"]) == (30, 3)
    # Each row names its recipient, run and provider answer; the awkward text reads back whole.
    assert {row["runId"] for row in rows} == {sent_campaign["runs"][0]["id"]}
    assert {row["phone"] for row in rows} == {c["phone"] for c in sent_campaign["contacts"]}
    failed = [row for row in rows if row["status"] == "failed"]
    assert {(row["errorCode"], row["error"], row["providerMessageId"]) for row in failed} == {("21211", AWKWARD, "")}
    for row in rows:
        sent = row["status"] in ("sent", "delivered", "read")
        assert bool(row["providerMessageId"]) is sent and bool(row["sentAt"]) is sent
        assert bool(row["deliveredAt"]) is (row["status"] in ("delivered", "read"))
        assert bool(row["readAt"]) is (row["status"] == "read")
    assert all(row["sentAt"].endswith("Z") for row in rows if row["sentAt"])
    read_row = next(row for row in rows if row["status"] == "read")
    assert read_row["sentAt"] < read_row["deliveredAt"] <= read_row["readAt"]


def test_format_csv_and_accept_text_csv_ask_for_the_same_file(tenant: Tenant, sent_campaign: dict[str, Any]) -> None:
    path = f"/v1/campaigns/{sent_campaign['id']}/messages"
    by_format = tenant.get(path, params={"format": "csv"})
    by_accept = tenant.client.get(path, headers={"Authorization": f"Bearer {tenant.token}", "Accept": "text/csv"})
    assert rows_of(by_accept) == rows_of(by_format)
    # JSON stays the answer by default, for `*/*`, and when `format=json` overrides the Accept header.
    for headers, params in (({}, {}), ({"Accept": "*/*"}, {}), ({"Accept": "text/csv"}, {"format": "json"})):
        answer = tenant.client.get(
            path, params=params, headers={"Authorization": f"Bearer {tenant.token}", **headers}
        ).json()
        assert (answer["total"], answer["limit"], len(answer["data"])) == (30, 100, 30)


def test_a_run_filter_and_a_run_of_another_campaign(tenant: Tenant, sent_campaign: dict[str, Any]) -> None:
    path = f"/v1/campaigns/{sent_campaign['id']}/messages"
    run_id = sent_campaign["runs"][0]["id"]
    response = tenant.get(path, params={"format": "csv", "run": run_id})
    assert len(rows_of(response)) == 30
    assert (
        f'filename="campaign-{sent_campaign["id"]}-run-{run_id}-messages.csv"'
        in response.headers["content-disposition"]
    )
    assert len(rows_of(tenant.get(path, params={"format": "csv", "run": run_id, "status": "FAILED"}))) == 3
    assert tenant.get(path, params={"run": run_id}).json()["total"] == 30  # the JSON list takes it too
    other = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(95_100)}], "text": "x"}).json()
    tenant.wait_final(other["id"])
    other_run = tenant.get(f"/v1/campaigns/{other['id']}").json()["runs"][0]["id"]
    for params in ({"format": "csv", "run": other_run}, {"format": "csv", "run": "x"}):
        missing = tenant.get(path, params=params)
        assert missing.status_code == 404 and missing.json()["detail"] == f"run {params['run']} not found"


def test_another_accounts_campaign_is_a_404(stack: Stack, sent_campaign: dict[str, Any]) -> None:
    other = make_tenant(stack, "export-other")
    path = f"/v1/campaigns/{sent_campaign['id']}/messages"
    for response in (
        other.get(path, params={"format": "csv"}),
        other.client.get(path, headers={"Authorization": f"Bearer {other.token}", "Accept": "text/csv"}),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": f"campaign {sent_campaign['id']} not found"}


def test_the_answer_streams_chunk_by_chunk(
    tenant: Tenant, sent_campaign: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 4)
    path = f"/v1/campaigns/{sent_campaign['id']}/messages?format=csv"
    with tenant.client.stream("GET", path, headers={"Authorization": f"Bearer {tenant.token}"}) as response:
        pieces = list(response.iter_raw())
    # The header, then 30 rows in chunks of 4: eight pieces of body, each sent as soon as it was read.
    assert len(pieces) == 1 + 8
    assert len(list(csv.reader(io.StringIO(b"".join(pieces).decode())))) == 31
