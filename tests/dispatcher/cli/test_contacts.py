"""`dispatcher contacts import` through `dispatcher.client` against `httpx.MockTransport`: group, upload, follow."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.cli import contacts as cli_contacts
from tests.support.cli_api import Api, run

GROUPS = {"data": [{"id": "3", "name": "Clients", "size": 0}, {"id": "4", "name": "2024", "size": 0}]}
QUEUED: dict[str, Any] = {"id": "9", "status": "queued", "groupId": "3", "rows": 0, "errors": [], "ignoredColumns": []}
DONE = {
    **QUEUED,
    "status": "done",
    "rows": 3,
    "created": 1,
    "updated": 1,
    "invalid": 1,
    "errors": [{"line": 4, "column": "phone", "reason": "'12' is not a valid phone number"}],
    "ignoredColumns": ["Code postal"],
}


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"phone,Code postal\n2250700000001,1\n2250700000002,2\n12,3\n")
    return path


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_contacts, "_follow", functools.partial(cli_contacts._follow, interval=0))


def accepted(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202, json=QUEUED)


@pytest.mark.usefixtures("settings")
def test_import_uploads_into_the_named_group_and_follows_it_to_the_end(
    monkeypatch: pytest.MonkeyPatch, file: Path
) -> None:
    api = Api(GROUPS, accepted, {**QUEUED, "status": "running", "rows": 2}, DONE)
    result = run(monkeypatch, api, "contacts", "import", str(file), "--group", "Clients", "--country", "CI")
    assert result.exit_code == 0, result.output
    upload = api.requests[1]
    assert (upload.method, upload.url.path) == ("POST", "/v1/contacts/imports")
    assert dict(upload.url.params) == {"groupId": "3", "country": "CI"}
    assert upload.headers["Content-Type"] == "text/csv" and upload.content == file.read_bytes()
    assert "done: 3 rows, 1 created, 1 updated, 1 invalid" in result.output
    assert "line 4 phone: '12' is not a valid phone number" in result.output
    assert "columns ignored (no text can name them as @field): Code postal" in result.output


@pytest.mark.usefixtures("settings")
def test_a_group_is_found_by_id_and_a_new_name_creates_one(monkeypatch: pytest.MonkeyPatch, file: Path) -> None:
    by_id = Api(GROUPS, accepted, DONE)
    assert run(monkeypatch, by_id, "contacts", "import", str(file), "--group", "4").exit_code == 0
    assert by_id.requests[1].url.params["groupId"] == "4"
    created = Api(GROUPS, {"id": "5", "name": "New", "size": 0}, accepted, DONE)
    result = run(monkeypatch, created, "contacts", "import", str(file), "--group", "New", "--ndjson")
    assert result.exit_code == 0 and "group 'New' created (5)" in result.output
    assert created.requests[1].method == "POST" and created.requests[1].url.path == "/v1/groups"
    assert created.requests[2].headers["Content-Type"] == "application/x-ndjson"


@pytest.mark.usefixtures("settings")
def test_an_unknown_group_id_is_refused_and_a_failed_import_exits_1(
    monkeypatch: pytest.MonkeyPatch, file: Path
) -> None:
    unknown = run(monkeypatch, Api(GROUPS), "contacts", "import", str(file), "--group", "77")
    assert unknown.exit_code == 1 and "no group has the id 77" in unknown.output
    failed = {**DONE, "status": "failed", "statusReason": "the group was deleted during the import"}
    result = run(monkeypatch, Api(GROUPS, accepted, failed), "contacts", "import", str(file), "--group", "Clients")
    assert result.exit_code == 1 and "failed (the group was deleted during the import)" in result.output
