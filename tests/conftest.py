"""Shared fixtures: a Redis database of our own, SQLite and PostgreSQL databases, and real processes.

Integration tests run against a real Redis (database DISPATCHER_TEST_REDIS_DB, default 13; the keys
this project makes there are deleted before and after), a real sandbox gateway and a real Celery
worker started as subprocesses, once per database backend. Outside CI a missing PostgreSQL or Redis
skips those tests; in CI it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support import processes
from tests.support.processes import Stack
from tests.support.redis_keys import delete_ours
from tests.support.tenants import Tenant, make_tenant

CI = bool(os.environ.get("CI"))
REDIS_DB = int(os.environ.get("DISPATCHER_TEST_REDIS_DB", "13"))
REDIS_BASE = os.environ.get("DISPATCHER_TEST_REDIS", "redis://127.0.0.1:6379")
PG_ADMIN_URL = os.environ.get("DISPATCHER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _unavailable(what: str, exc: Exception) -> None:
    if CI:
        raise RuntimeError(f"{what} is required in CI: {exc}") from exc
    pytest.skip(f"{what} not available: {exc}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = f"{REDIS_BASE}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    # Our own database number, and even there only the keys and queues this project makes.
    delete_ours(client)
    yield url
    delete_ours(client)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.support.databases import fresh_database

    database = fresh_database(request.param, tmp_path_factory.mktemp("db"), PG_ADMIN_URL)
    try:
        url = database.__enter__()
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    try:
        yield url
    finally:
        database.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.Service]:
    logs = tmp_path_factory.mktemp("sandbox")
    with processes.sandbox(logs) as service:
        yield service


@pytest.fixture(scope="session")
def stack(
    db_url: str, redis_url: str, sandbox: processes.Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Stack]:
    """Settings for this backend in this process, plus a real worker process using the same ones."""
    logs: Path = tmp_path_factory.mktemp("worker")
    with processes.stack(db_url, redis_url, sandbox, logs) as running:
        yield running


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return make_tenant(stack)


@pytest.fixture
def sandbox_box(stack: Stack) -> Iterator[httpx.Client]:
    """The sandbox's control API, emptied of messages and faults before and after the test."""
    with httpx.Client(base_url=stack.sandbox.url, timeout=30) as box:
        box.delete("/_sandbox/messages")
        box.delete("/_sandbox/faults")
        box.put("/_sandbox/config", json={"latency_ms": 0})
        yield box
        box.delete("/_sandbox/faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the live stack (a worker, the sandbox, Redis) is an integration test, wherever it lives:
    the tree mirrors the source, so integration and unit tests of one module sit side by side."""
    live = {"stack", "redis_url", "sandbox", "tenant", "sandbox_box", "db_url"}
    for item in items:
        if live & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
