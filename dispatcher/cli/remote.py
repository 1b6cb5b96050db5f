"""The CLI's way to the API: one `dispatcher.client.Client` with the settings' URL and token, and the one
place where the client's typed errors become the messages a user reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from dispatcher.client import Client, DispatcherError, TransportError, ValidationError
from dispatcher.config import get_settings

console = Console()


def token() -> str:
    """DISPATCHER_API_TOKEN, else the token `dispatcher up` saved."""
    settings = get_settings()
    if settings.api_token is not None:
        secret = settings.api_token.get_secret_value()
    else:
        saved = settings.state_dir / "token"
        secret = saved.read_text().strip() if saved.exists() else ""
    if not secret:
        raise click.ClickException(
            "no API token: set DISPATCHER_API_TOKEN (from `dispatcher accounts create NAME`) or run `dispatcher up`"
        )
    return secret


@contextmanager
def api() -> Iterator[Client]:
    """A client of the API (DISPATCHER_API_URL); an error it raises ends the command with a readable message."""
    url = get_settings().api_url
    try:
        with Client(base_url=url, token=token(), timeout=30) as client:
            yield client
    except TransportError as exc:
        raise click.ClickException(f"cannot reach the API at {url}: {exc.__cause__}") from None
    except DispatcherError as exc:
        raise click.ClickException(problem(exc)) from None


def problem(exc: DispatcherError) -> str:
    """An error answer in one line, or a refused request with one line per field (named as the API does)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    return f"HTTP {exc.status_code}:\n  " + "\n  ".join(refusal(e) for e in exc.errors)


def refusal(error: Mapping[str, Any]) -> str:
    """`body.contacts.0.phone: msg`: the field as its `loc` names it, then why (the message alone without one)."""
    field = ".".join(str(part) for part in error.get("loc", []))
    return f"{field}: {error.get('msg')}" if field else str(error.get("msg"))
