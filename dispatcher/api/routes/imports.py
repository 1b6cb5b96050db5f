"""`/v1/contacts/imports`: a CSV or NDJSON file of contacts, imported into a group by a worker.

The upload is stored in the database as it arrives, in chunks (`dispatcher.audience.uploads`), and the
answer is a 202 as soon as it is whole; a worker imports it (`dispatcher.import_contacts`) and the
import's counters say how far it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from dispatcher.api.deps import AccountDep, SessionDep, SettingsDep, owned
from dispatcher.api.openapi import ERRORS
from dispatcher.api.schemas import ImportPublic, ImportRowError
from dispatcher.audience import imports, uploads
from dispatcher.audience.contacts import parse_id
from dispatcher.campaigns import enqueue
from dispatcher.content.phones import region
from dispatcher.db.models import ContactImport, Group
from dispatcher.errors import InputError, NotFound, TooLarge

router = APIRouter(prefix="/v1/contacts/imports", tags=["contacts"])

_FILE = {"schema": {"type": "string", "format": "binary"}}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A CSV file with a header row (`phone` required; `name`, `firstName`, `lastName`, `sex`, "
        "`timezone`; other columns are custom fields), or NDJSON: one JSON object a line, with the same keys.",
        "content": {"text/csv": _FILE, "application/x-ndjson": _FILE},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"description": "More rows than DISPATCHER_IMPORT_MAX_ROWS, or a line longer than 8 MiB"},
    415: {"description": "Not text/csv or application/x-ndjson, or not UTF-8"},
}


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=_RESPONSES, openapi_extra=_BODY)
async def create_import(
    request: Request,
    session: SessionDep,
    account: AccountDep,
    settings: SettingsDep,
    groupId: Annotated[str, Query(description="The group the contacts join (created or updated by phone)")],
    country: Annotated[str | None, Query(description="Reads national numbers (0707123456) in this country")] = None,
) -> ImportPublic:
    """Upload a file of contacts into a group: answered 202 once stored; follow it with GET."""
    fmt = uploads.format_of(request.headers.get("content-type"))
    region_code = _region(country)
    group_id = await run_in_threadpool(_group_id, session, account.id, groupId)
    import_id = await run_in_threadpool(imports.begin, session, account.id, group_id, fmt, region_code)
    cutter = uploads.Cutter(fmt, settings.import_max_rows)
    body = request.stream()
    try:
        await _receive(session, import_id, cutter, body)
    except (InputError, TooLarge):
        # Read the rest, so the client (still sending) gets the answer rather than a broken connection.
        async for _ in body:
            pass
        await run_in_threadpool(imports.discard, session, import_id)
        raise
    except BaseException:  # the client went away, or storing failed
        await run_in_threadpool(imports.discard, session, import_id)
        raise
    record = await run_in_threadpool(imports.queue, session, import_id, cutter)
    await run_in_threadpool(enqueue.import_contacts, import_id)
    return _public(record)


async def _receive(session: Session, import_id: int, cutter: uploads.Cutter, body: AsyncIterator[bytes]) -> None:
    async for piece in body:
        for chunk in cutter.feed(piece):
            await run_in_threadpool(imports.store, session, import_id, chunk)
    for chunk in cutter.close():
        await run_in_threadpool(imports.store, session, import_id, chunk)


@router.get("/{import_id}", responses=ERRORS)
def get_import(import_id: str, session: SessionDep, account: AccountDep) -> ImportPublic:
    """An import's status and counters, and the first 1,000 rows it could not import."""
    record = imports.get(session, account.id, parse_id(import_id))
    if record is None:
        raise NotFound("import", import_id)
    return _public(record)


def _region(country: str | None) -> str | None:
    if country is None or not country.strip():
        return None
    found = region(country)
    if found is None:
        raise InputError.single(("query", "country"), f"{country!r} is not a country code; use two letters, e.g. CI")
    return found


def _group_id(session: Session, account_id: int, raw: str) -> int:
    try:
        return owned(session, Group, account_id, raw, "group").id
    except NotFound:
        raise InputError.single(
            ("query", "groupId"), f"group {raw!r} does not exist in this account", "not_found"
        ) from None


def _public(record: ContactImport) -> ImportPublic:
    return ImportPublic(
        id=str(record.id),
        status=record.status,
        statusReason=record.status_reason,
        groupId=str(record.group_id) if record.group_id is not None else None,
        format=record.format,
        country=record.country,
        rows=record.rows,
        created=record.created,
        updated=record.updated,
        invalid=record.invalid,
        errors=[ImportRowError(**e) for e in record.errors],
        ignoredColumns=record.ignored_columns,
        createdAt=record.created_at,
        startedAt=record.started_at,
        finishedAt=record.finished_at,
        updatedAt=record.updated_at,
    )
