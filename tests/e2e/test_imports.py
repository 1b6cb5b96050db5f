"""Contact imports on the real stack: the API stores the file, the worker imports it, campaigns use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dispatcher.cli.main import main
from dispatcher.config import get_settings
from tests.support.tenants import Tenant, ci_phone

BAD_EVERY = 997


def rows_file(n: int, *, first: int = 0, bad_every: int = 0) -> bytes:
    """A CSV of n contacts (name, custom field code, time zone); every `bad_every`th has a bad phone."""
    lines = ["phone,First Name,code,timezone"]
    for i in range(1, n + 1):
        phone = "12345" if bad_every and i % bad_every == 0 else ci_phone(first + i)
        lines.append(f"{phone},Awa{i},C{i:05d},Africa/Abidjan")
    return ("\r\n".join(lines) + "\r\n").encode()


def test_twenty_thousand_rows_are_imported_and_bad_lines_named(tenant: Tenant) -> None:
    # Given a group and a file of 20,000 rows, 20 of them with a bad phone and one with a bad time zone
    group = tenant.post("/v1/groups", {"name": "Clients"}).json()
    body = rows_file(20_000, first=100_000, bad_every=BAD_EVERY)
    body = body.replace(b"Awa5,C00005,Africa/Abidjan", b"Awa5,C00005,Africa/Nowhere")

    # When it is uploaded
    done = tenant.import_file(group["id"], body)

    # Then every row is counted, the bad ones named by their line in the file (the header is line 1)
    bad_rows = list(range(BAD_EVERY, 20_001, BAD_EVERY))
    assert (done["status"], done["rows"], done["invalid"]) == ("done", 20_000, len(bad_rows) + 1)
    assert (done["created"], done["updated"]) == (20_000 - len(bad_rows) - 1, 0)
    assert done["errors"][0] == {"line": 6, "column": "timezone", "reason": done["errors"][0]["reason"]}
    assert [(e["line"], e["column"]) for e in done["errors"][1:]] == [(i + 1, "phone") for i in bad_rows]
    assert tenant.get(f"/v1/groups/{group['id']}").json()["size"] == done["created"]
    # And a contact has its name, field and time zone
    found = tenant.get("/v1/contacts", params={"phone": ci_phone(100_001)}).json()["data"]
    assert [(c["firstName"], c["fields"]) for c in found] == [("Awa1", {"code": "C00001"})]


def test_the_same_file_twice_creates_nothing_twice(tenant: Tenant) -> None:
    group = tenant.post("/v1/groups", {"name": "Twice"}).json()
    body = rows_file(3_000, first=200_000)
    first = tenant.import_file(group["id"], body)
    second = tenant.import_file(group["id"], body)
    assert (first["created"], first["updated"]) == (3_000, 0)
    assert (second["status"], second["created"], second["updated"], second["invalid"]) == ("done", 0, 3_000, 0)
    assert tenant.get(f"/v1/groups/{group['id']}").json()["size"] == 3_000
    assert tenant.get("/v1/contacts", params={"limit": 1}).json()["total"] == 3_000


def test_a_campaign_to_the_imported_group_is_sent(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    # Given 300 contacts imported from NDJSON with national numbers read in CI
    group = tenant.post("/v1/groups", {"name": "Promo"}).json()
    lines = [f'{{"phone": "07{300_000 + i:08d}", "firstName": "Ben{i}", "code": "K{i}"}}' for i in range(300)]
    done = tenant.import_file(group["id"], "\n".join(lines).encode(), "application/x-ndjson", country="CI")
    assert (done["status"], done["created"]) == ("done", 300)

    # When a campaign is sent to the group
    campaign = tenant.post("/v1/campaigns", {"groupsIds": [group["id"]], "text": "Bonjour @prenom, code @code"})
    assert campaign.status_code == 201, campaign.text
    final = tenant.wait_final(campaign.json()["id"])

    # Then every imported contact got its personalised message
    assert (final["status"], final["stats"]["sent"]) == ("SENT", 300)
    received = {m["to"]: m["body"] for m in sandbox_box.get("/_sandbox/messages").json()["messages"]}
    assert received["+22507" + f"{300_007:08d}"] == "Bonjour Ben7, code K7"
    assert len(received) == 300


@pytest.fixture
def cli_token(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's settings (read once per process) with the tenant's token, the stack's API URL and a wide
    terminal; the stack's settings again afterwards."""
    monkeypatch.setenv("DISPATCHER_API_TOKEN", tenant.token)
    monkeypatch.setenv("COLUMNS", "150")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_token")
def test_the_cli_uploads_through_the_client_and_follows_the_import(tenant: Tenant, tmp_path: Path) -> None:
    # Given a CSV file and no group named "Newsletter" yet
    file = tmp_path / "contacts.csv"
    file.write_bytes(rows_file(500, first=400_000, bad_every=100))

    # When the CLI imports it (through the live API: DISPATCHER_API_URL is the stack's)
    result = CliRunner().invoke(main, ["contacts", "import", str(file), "--group", "Newsletter"])

    # Then the group is created, the import followed to its end, and the bad lines shown
    assert result.exit_code == 0, result.output
    assert "group 'Newsletter' created" in result.output
    assert "done: 500 rows, 495 created, 0 updated, 5 invalid" in result.output
    assert "line 101 phone:" in result.output
    groups = {g["name"]: g for g in tenant.get("/v1/groups").json()["data"]}
    assert groups["Newsletter"]["size"] == 495
    # And a second run into the group (by id now) updates the same contacts
    again = CliRunner().invoke(main, ["contacts", "import", str(file), "--group", groups["Newsletter"]["id"]])
    assert again.exit_code == 0 and "0 created, 495 updated" in again.output, again.output
