"""`dispatcher.campaigns.export` on SQLite and PostgreSQL: the CSV, its filters, and that it reads chunk by chunk."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, insert

from dispatcher.campaigns import export
from dispatcher.campaigns.export import COLUMNS, ExportScope
from dispatcher.db.models import Message
from dispatcher.db.session import get_engine
from tests.support.databases import sandbox_account
from tests.support.messages import STATUS_MIX, Seeded, seed_campaign


@pytest.fixture
def account(db_url: str) -> tuple[int, int]:
    account_id, _, sender_id = sandbox_account(db_url, "export")
    return account_id, sender_id


def seeded(db_url: str, account: tuple[int, int], messages: int, runs: int = 1) -> Seeded:
    return seed_campaign(db_url, *account, messages, runs=runs)


def read(pieces: Iterator[str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO("".join(pieces))))


def test_every_message_is_one_row_under_the_header(db_url: str, account: tuple[int, int]) -> None:
    campaign = seeded(db_url, account, 25)
    text = "".join(export.csv_chunks(ExportScope(account[0], campaign.campaign_id), db_url))
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    rows = read(iter([text]))
    assert [r["phone"] for r in rows] == [f"+22507{i:08d}" for i in range(25)]
    assert [r["status"] for r in rows] == [STATUS_MIX[i % len(STATUS_MIX)] for i in range(25)]
    first_read = rows[2]
    assert first_read["status"] == "read" and first_read["runId"] == str(campaign.run_ids[0])
    # Times are ISO 8601 in UTC; a time not reached (or an absent value) is an empty field.
    assert first_read["sentAt"].endswith("Z") and first_read["deliveredAt"] < first_read["readAt"]
    failed = rows[4]
    assert (failed["errorCode"], failed["error"], failed["providerMessageId"], failed["sentAt"]) == (
        "21610",
        "Unsubscribed recipient",
        "",
        "",
    )


def test_run_and_status_filters(db_url: str, account: tuple[int, int]) -> None:
    campaign = seeded(db_url, account, 20, runs=2)
    first, second = campaign.run_ids
    in_second = read(export.csv_chunks(ExportScope(account[0], campaign.campaign_id, run_id=second), db_url))
    assert len(in_second) == 10 and {r["runId"] for r in in_second} == {str(second)}
    failed = read(export.csv_chunks(ExportScope(account[0], campaign.campaign_id, status="failed"), db_url))
    assert [r["phone"] for r in failed] == ["+2250700000004", "+2250700000014"]
    assert read(export.csv_chunks(ExportScope(account[0], campaign.campaign_id, run_id=first, status="failed"), db_url))


def test_texts_with_commas_quotes_and_newlines_read_back_whole(db_url: str, account: tuple[int, int]) -> None:
    campaign = seeded(db_url, account, 1)
    awkward = 'Refused, "STOP" received\non line two; ünïcødé 😀'
    _add(db_url, account, campaign, contact_id=2, error_text=awkward)
    rows = read(export.csv_chunks(ExportScope(account[0], campaign.campaign_id), db_url))
    assert rows[1]["error"] == awkward


def test_another_accounts_rows_are_never_exported(db_url: str, account: tuple[int, int]) -> None:
    # Given a row of another account filed under our campaign's id (the query's own scope is the guard)
    campaign = seeded(db_url, account, 3)
    other_account, _, _ = sandbox_account(db_url, "other")
    _add(db_url, (other_account, account[1]), campaign, contact_id=99)
    rows = read(export.csv_chunks(ExportScope(account[0], campaign.campaign_id), db_url))
    assert len(rows) == 3 and "99" not in {r["contactId"] for r in rows}
    assert read(export.csv_chunks(ExportScope(other_account, campaign.campaign_id + 1_000), db_url)) == []


def test_the_export_reads_chunk_by_chunk_holding_no_connection_between(
    db_url: str, account: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = seeded(db_url, account, 7)
    monkeypatch.setattr(export, "CHUNK_ROWS", 2)
    engine = get_engine(db_url)
    queries: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM messages" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        pieces = export.csv_chunks(ExportScope(account[0], campaign.campaign_id), db_url)
        # The header comes before any query, then each piece is one query of two rows, read as it is asked for.
        assert next(pieces) == ",".join(COLUMNS) + "\r\n" and queries == []
        assert next(pieces).count("\r\n") == 2 and len(queries) == 1
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert next(pieces).count("\r\n") == 2 and len(queries) == 2
        rest = list(pieces)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # 2 + 2 + 2 + 1: the short chunk is the last, no fifth query; each query starts after the last id seen.
    assert [piece.count("\r\n") for piece in rest] == [2, 1] and len(queries) == 4
    assert all("messages.id >" in q and "LIMIT" in q for q in queries)


def test_the_file_is_named_after_the_campaign_and_run() -> None:
    assert ExportScope(1, 7).filename == "campaign-7-messages.csv"
    assert ExportScope(1, 7, run_id=11).filename == "campaign-7-run-11-messages.csv"


def _add(db_url: str, account: tuple[int, int], campaign: Seeded, contact_id: int, **values: Any) -> None:
    row = {
        "run_id": campaign.run_ids[0],
        "campaign_id": campaign.campaign_id,
        "account_id": account[0],
        "sender_id": account[1],
        "contact_id": contact_id,
        "phone": "+2250799999999",
        "status": "failed",
        **values,
    }
    with get_engine(db_url).begin() as connection:
        connection.execute(insert(Message), [row])
