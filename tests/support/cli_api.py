"""The CLI against canned API answers: `dispatcher ...` run by click, its client on an `httpx.MockTransport`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from dispatcher.cli import remote
from dispatcher.cli.main import main
from dispatcher.client import Client

URL = "http://api.test:8000"

Answer = dict[str, Any] | Callable[[httpx.Request], httpx.Response]


class Api:
    """Canned answers, one per request in order, and the requests the CLI sent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else httpx.Response(200, json=answer)


def run(monkeypatch: pytest.MonkeyPatch, api: Api, *args: str) -> Result:
    """`dispatcher ARGS` with the CLI's client sending to `api` instead of the network."""
    monkeypatch.setattr(remote, "Client", functools.partial(Client, transport=httpx.MockTransport(api.handle)))
    monkeypatch.setenv("COLUMNS", "150")
    return CliRunner().invoke(main, list(args))
