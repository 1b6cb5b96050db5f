"""The CLI tests' settings: a fake API URL and token, and a state folder of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.config import get_settings
from tests.support.cli_api import URL


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("DISPATCHER_API_URL", URL)
    monkeypatch.setenv("DISPATCHER_API_TOKEN", "dsp_cli-token")
    monkeypatch.setenv("DISPATCHER_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
