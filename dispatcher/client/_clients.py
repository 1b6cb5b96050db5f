"""`Client` and `AsyncClient`: one shared httpx client each, and the resources that use it."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Self

import httpx

from dispatcher.client.campaigns import AsyncCampaigns, Campaigns
from dispatcher.client.resources import AsyncContacts, AsyncGroups, AsyncSenders, Contacts, Groups, Senders
from dispatcher.client.templates import AsyncTemplates, Templates

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "campaign-dispatcher-client/0.1.0"


def _settings(base_url: str | None, token: str | None, timeout: float) -> dict[str, Any]:
    """httpx client arguments: the given URL and token, else `DISPATCHER_API_URL` / `DISPATCHER_API_TOKEN`."""
    url = base_url or os.environ.get("DISPATCHER_API_URL") or DEFAULT_URL
    secret = token or os.environ.get("DISPATCHER_API_TOKEN")
    if not secret:
        raise ValueError("no API token: pass token= or set DISPATCHER_API_TOKEN (from `dispatcher accounts create`)")
    headers = {"Authorization": f"Bearer {secret}", "Accept": "application/json", "User-Agent": USER_AGENT}
    return {"base_url": url.rstrip("/"), "headers": headers, "timeout": timeout}


class Client:
    """The sync client: `client.campaigns`, `.senders`, `.contacts`, `.groups` and `.templates`.

    `base_url` defaults to `DISPATCHER_API_URL` (else http://127.0.0.1:8000) and `token` to
    `DISPATCHER_API_TOKEN`. `transport` replaces the network (e.g. `httpx.MockTransport` in tests).
    Use it as a context manager, or call `close()`, to release the connection pool.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(transport=transport, **_settings(base_url, token, timeout))
        self.campaigns = Campaigns(self._http)
        self.senders = Senders(self._http)
        self.contacts = Contacts(self._http)
        self.groups = Groups(self._http)
        self.templates = Templates(self._http)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"


class AsyncClient:
    """The async client: the same resources as `Client`, whose methods are awaited.

    Use it as an async context manager, or await `aclose()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(transport=transport, **_settings(base_url, token, timeout))
        self.campaigns = AsyncCampaigns(self._http)
        self.senders = AsyncSenders(self._http)
        self.contacts = AsyncContacts(self._http)
        self.groups = AsyncGroups(self._http)
        self.templates = AsyncTemplates(self._http)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"
