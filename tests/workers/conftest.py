"""Loopback servers for the provider clients' tests (tests/support/loopback.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.loopback import Forward, Provider, serve


@pytest.fixture
def local_provider() -> Iterator[int]:
    Provider.seen = []
    yield from serve(Provider)


@pytest.fixture
def forward_proxy() -> Iterator[int]:
    Forward.seen, Forward.proxy_auth = [], []
    yield from serve(Forward)
