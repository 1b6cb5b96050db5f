"""Fresh migrated databases and ready accounts, shared by the tests' fixtures and `bench/`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def fresh_database(kind: str, folder: Path, pg_admin_url: str, *, prefix: str = "dispatcher_test") -> Iterator[str]:
    """A migrated database: a SQLite file in `folder`, or a new PostgreSQL database dropped afterwards.

    Creating the PostgreSQL database raises what the server said (callers decide whether that skips).
    """
    from dispatcher.db.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{folder / 'dispatcher.db'}"
        upgrade(url)
        yield url
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        admin.dispose()
        raise
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        from dispatcher.db.session import get_engine

        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sandbox_account(db_url: str, name: str, *, rate: float = 1000, burst: int = 1000) -> tuple[int, str, int]:
    """A new account with its API token and a default, active sandbox SMS sender: (account, token, sender)."""
    from dispatcher.audience.accounts import create_account
    from dispatcher.audience.senders import with_sandbox_secrets
    from dispatcher.db.models import Sender
    from dispatcher.db.session import session_scope

    with session_scope(db_url) as session:
        account, token = create_account(session, name)
        sender = Sender(
            account_id=account.id,
            channel="sms",
            label="My Sender",
            provider="sandbox",
            settings=with_sandbox_secrets({}),
            active=True,
            is_default=True,
            rate=rate,
            burst=burst,
        )
        session.add(sender)
        session.flush()
        return account.id, token, sender.id


def started_run(db_url: str, r: object, recipients: int, *, rate: float = 1000, burst: int = 1000) -> tuple[int, int]:
    """An SMS campaign to `recipients` new contacts, its run started (message rows queued) but none of its
    sends published: (campaign id, run id)."""
    import uuid

    from dispatcher.campaigns.submission import submit
    from dispatcher.config import Settings
    from dispatcher.db.session import session_factory
    from workers import fanout

    account_id, _token, _sender = sandbox_account(db_url, f"run-{uuid.uuid4().hex[:8]}", rate=rate, burst=burst)
    with session_factory(db_url)() as session:
        contacts = [{"phone": f"22507{n:08d}"} for n in range(recipients)]
        submitted = submit(session, account_id, {"contacts": contacts, "text": "Promo"}, Settings())
        (run_id,) = submitted.runs_to_start
        assert fanout.start_run(session, r, run_id, lambda refs, channel: None) == recipients  # type: ignore[arg-type]
        return submitted.campaign.id, run_id
