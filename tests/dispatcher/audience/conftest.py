"""A session on each test database (`db_url`: SQLite, then PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from dispatcher.db.session import session_factory


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with session_factory(db_url)() as s:
        yield s
