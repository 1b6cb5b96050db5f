"""`dispatcher.submit_campaign` run in this process: rejections, database retries, and no token in logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from dispatcher.config import get_settings
from dispatcher.db.models import Rejection
from dispatcher.db.session import make_engine, session_factory

TOKEN_SECRET_PART = "dsp_"  # every token starts so; the rest is checked below


@pytest.fixture
def account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, str]]:
    """A migrated SQLite database in the settings, and an account with its token."""
    from dispatcher.audience.accounts import create_account
    from dispatcher.db.migrate import upgrade
    from dispatcher.db.session import session_scope

    url = f"sqlite:///{tmp_path / 'submit.db'}"
    upgrade(url)
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", url)
    get_settings.cache_clear()
    with session_scope(url) as session:
        created, token = create_account(session, "producer")
        account_id = created.id
    yield account_id, token
    get_settings.cache_clear()


def rejections() -> list[Rejection]:
    with session_factory()() as session:
        return list(session.scalars(select(Rejection).order_by(Rejection.id)))


def run(**kwargs: Any) -> Any:
    from workers.submit import submit_campaign

    return submit_campaign.apply(kwargs=kwargs).get()


PAYLOAD = {"contacts": [{"phone": "2250700000001"}], "text": "x"}


def test_an_unexpected_error_is_a_rejection_in_the_accounts_list(
    account: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id, token = account

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("something we did not foresee")

    monkeypatch.setattr("workers.submit.submit", broken)
    result = run(payload=PAYLOAD, token=token)
    [rejection] = rejections()
    assert result["rejected"] == rejection.id
    # Recorded for the account, so `dispatcher campaigns rejected` (GET /v1/rejections) shows it
    assert rejection.account_id == account_id
    assert rejection.reason["errors"][0]["type"] == "internal"
    assert "RuntimeError" in rejection.reason["errors"][0]["msg"]


def test_a_database_that_does_not_answer_is_retried_five_times_then_rejected(
    account: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = account
    calls: list[int] = []

    def down(*_args: Any, **_kwargs: Any) -> None:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr("workers.submit.submit", down)
    result = run(payload=PAYLOAD, token=token)
    assert len(calls) == 6  # the first try and five retries
    [rejection] = rejections()
    assert result["rejected"] == rejection.id
    assert "did not answer after 5 retries" in rejection.reason["errors"][0]["msg"]


def test_retry_delays_grow_and_never_exceed_a_minute() -> None:
    from workers.submit import MAX_BACKOFF_SECONDS, retry_delay

    for retries in range(12):
        assert 0 <= retry_delay(retries) <= MAX_BACKOFF_SECONDS == 60


def test_a_retry_shows_the_token_masked_to_flower() -> None:
    from workers.submit import masked_kwargs

    shown = masked_kwargs({"payload": {"contacts": []}, "token": "dsp_secret-token-value", "idempotency_key": "k"})
    assert "dsp_secret" not in shown and "'token': '***'" in shown and "'idempotency_key': 'k'" in shown


def test_a_payload_with_nan_or_nul_is_rejected_naming_the_field(account: tuple[int, str]) -> None:
    _, token = account
    run(payload={"contacts": [{"phone": "2250700000001", "x": float("nan")}], "text": "@x"}, token=token)
    run(payload={"contacts": [{"phone": "2250700000001"}], "text": "a\x00b"}, token=token)
    first, second = rejections()
    assert first.reason["errors"][0]["loc"] == ["payload", "contacts", 0, "x"]
    assert second.reason["errors"][0]["loc"] == ["payload", "text"]
    assert "\x00" not in str(second.payload)  # kept as its repr: PostgreSQL refuses NUL in JSON


def test_the_worker_never_logs_the_token(account: tuple[int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatcher.logs import configure

    _, token = account
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure("DEBUG", json_logs=True)  # the worker's logging
    [handler] = root.handlers
    stream = io.StringIO()
    handler.setStream(stream)
    # Show every record's arguments too: Celery puts the task's kwargs there, and some handlers print them.
    handler.setFormatter(logging.Formatter("%(name)s %(message)s %(args)s"))
    try:
        run(payload={"contacts": [{"phone": "22500000000"}], "text": "x"}, token=token)  # invalid phone
        run(payload=PAYLOAD, token=token + "-wrong")  # unknown token

        def broken(*_args: Any, **_kwargs: Any) -> None:
            raise RuntimeError(f"failed for {token}")

        monkeypatch.setattr("workers.submit.submit", broken)
        run(payload=PAYLOAD, token=token)
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    output = stream.getvalue()
    assert len(rejections()) == 3 and "celery.app.trace" in output
    assert token.removeprefix(TOKEN_SECRET_PART) not in output


def test_sql_parameters_never_reach_error_messages(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hidden.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (phone TEXT UNIQUE)"))
        conn.execute(text("INSERT INTO t VALUES (:p)"), {"p": "+2250700000001"})
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:p)"), {"p": "+2250700000001"})
    assert "+2250700000001" not in str(caught.value)
    assert "hidden" in str(caught.value)
