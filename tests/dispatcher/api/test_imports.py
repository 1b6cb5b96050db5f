"""`POST /v1/contacts/imports` and `GET /v1/contacts/imports/{id}`: what is answered at once, and refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from dispatcher.config import Settings, get_settings
from dispatcher.db.models import ContactImport, ContactImportChunk
from dispatcher.db.session import session_scope
from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone, make_tenant

CSV = b"phone,name\n" + b"".join(b"%s,N%d\n" % (ci_phone(90_000 + i).encode(), i) for i in range(20))


@pytest.fixture
def group_id(tenant: Tenant) -> str:
    return str(tenant.post("/v1/groups", {"name": "Imported"}).json()["id"])


def stored_imports(stack: Stack, account_id: int) -> tuple[int, int]:
    """How many imports the account has, and how many chunks of them are stored."""
    with session_scope(stack.db_url) as session:
        imports = session.scalar(select(func.count()).where(ContactImport.account_id == account_id)) or 0
        chunks = session.scalar(
            select(func.count())
            .select_from(ContactImportChunk)
            .join(ContactImport, ContactImport.id == ContactImportChunk.import_id)
            .where(ContactImport.account_id == account_id)
        )
    return imports, chunks or 0


def test_an_upload_is_answered_202_and_its_import_followed(tenant: Tenant, group_id: str) -> None:
    answer = tenant.upload(f"/v1/contacts/imports?groupId={group_id}", CSV)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["status"] in ("queued", "running", "done") and started["groupId"] == group_id
    assert (started["format"], started["country"]) == ("csv", None)
    done = tenant.wait_import(started["id"])
    assert (done["rows"], done["created"], done["errors"], done["ignoredColumns"]) == (20, 20, [], [])
    assert done["startedAt"] <= done["finishedAt"]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "words"),
    [
        pytest.param("application/json", CSV, 415, "text/csv or application/x-ndjson", id="json"),
        pytest.param("text/csv; charset=latin-1", CSV, 415, "UTF-8", id="latin-1"),
        pytest.param("text/csv", b"", 422, "empty", id="empty"),
        pytest.param("text/csv", b"name\nAwa\n", 422, "no phone column", id="no-phone"),
        pytest.param("text/csv", b"phone,name\n2250700000001,Kon\xe9\n", 422, "line 2", id="not-utf8"),
        pytest.param("application/x-ndjson", CSV, 422, "not a JSON object", id="csv-as-ndjson"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_and_nothing_stored(
    stack: Stack, tenant: Tenant, group_id: str, content_type: str, body: bytes, status: int, words: str
) -> None:
    answer = tenant.upload(f"/v1/contacts/imports?groupId={group_id}", body, content_type)
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert stored_imports(stack, tenant.account_id)[0] == 0


def test_query_parameters_are_checked_before_the_file_is_read(stack: Stack, tenant: Tenant, group_id: str) -> None:
    other = make_tenant(stack, "other")
    others_group = other.post("/v1/groups", {"name": "Theirs"}).json()["id"]
    for query, loc in [
        (f"groupId={others_group}", ["query", "groupId"]),
        ("groupId=nope", ["query", "groupId"]),
        ("", ["query", "groupId"]),
        (f"groupId={group_id}&country=XX", ["query", "country"]),
    ]:
        answer = tenant.upload(f"/v1/contacts/imports?{query}", CSV)
        assert answer.status_code == 422, (query, answer.text)
        assert answer.json()["detail"][0]["loc"] == loc
    assert stored_imports(stack, tenant.account_id)[0] == 0


@pytest.fixture
def max_rows(tenant: Tenant) -> Iterator[None]:
    app = tenant.client.app
    app.dependency_overrides[get_settings] = lambda: Settings(import_max_rows=10)  # type: ignore[attr-defined]
    yield
    app.dependency_overrides.clear()  # type: ignore[attr-defined]


@pytest.mark.usefixtures("max_rows")
def test_more_rows_than_the_limit_is_refused_with_413(stack: Stack, tenant: Tenant, group_id: str) -> None:
    answer = tenant.upload(f"/v1/contacts/imports?groupId={group_id}", CSV)
    assert answer.status_code == 413 and "more than 10 rows" in answer.json()["detail"]
    assert stored_imports(stack, tenant.account_id)[0] == 0


def test_another_accounts_import_is_not_found(stack: Stack, tenant: Tenant, group_id: str) -> None:
    started = tenant.upload(f"/v1/contacts/imports?groupId={group_id}", CSV).json()
    other = make_tenant(stack, "other")
    assert other.get(f"/v1/contacts/imports/{started['id']}").status_code == 404
    assert tenant.get("/v1/contacts/imports/999999").status_code == 404
    assert tenant.get("/v1/contacts/imports/x").status_code == 404
    tenant.wait_import(started["id"])
    assert stored_imports(stack, tenant.account_id)[1] == 0  # the worker deleted the file


def test_the_openapi_document_describes_both_file_types(tenant: Tenant) -> None:
    operation = tenant.get("/openapi.json").json()["paths"]["/v1/contacts/imports"]["post"]
    assert set(operation["requestBody"]["content"]) == {"text/csv", "application/x-ndjson"}
    assert {"202", "413", "415", "422"} <= set(operation["responses"])
