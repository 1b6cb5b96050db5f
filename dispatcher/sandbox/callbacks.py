"""Sends the providers' callbacks from the sandbox: Twilio status callbacks, Meta status and reply webhooks.

Each callback is built by `webhooks.py`, signed by `dispatcher.tracking.signatures` over the exact bytes
and URL posted, and POSTed with one `httpx.AsyncClient` per event loop. Automatic statuses
(`SandboxConfig.auto_statuses`) run as background tasks, so provider answers never wait for a receiver;
the tasks are kept in a set until done (the loop only holds weak references) and are cancelled by `clear()`
and `aclose()`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from dispatcher.sandbox import webhooks
from dispatcher.sandbox.config import CallbackStatus, SandboxConfig, WhatsAppWebhook
from dispatcher.sandbox.store import MessageRecord, MessageStore
from dispatcher.sandbox.wire import iso_millis, new_wamid, utc_now
from dispatcher.tracking.signatures import meta_signature, twilio_signature

__all__ = ["CallbackError", "CallbackSender", "Delivery"]

CallbackKind = Literal["twilio_status", "whatsapp_status", "whatsapp_reply"]
AUTO_STATUS_GAP_SECONDS = 0.05
_LOG_SIZE = 10_000
_ANSWER_CHARS = 500


class CallbackError(Exception):
    """A callback that could not be sent; `status` is the HTTP status the control route answers with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True, slots=True)
class Delivery:
    """How the receiver answered: what `POST /_sandbox/callbacks` and `/_sandbox/replies` return."""

    url: str
    status_code: int
    body: str


@dataclass(frozen=True, slots=True)
class _Outgoing:
    kind: CallbackKind
    message_id: str
    status: str | None
    url: str
    content: bytes
    headers: dict[str, str]


class CallbackSender:
    def __init__(self, store: MessageStore, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._store = store
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)
        self._tokens: dict[str, str] = {}  # Twilio SID -> Basic-auth password it was sent with
        self._tasks: set[asyncio.Task[None]] = set()

    def accepted(self, record: MessageRecord, config: SandboxConfig, auth_token: str | None = None) -> None:
        """Note a message the provider routes just stored; start its automatic statuses. Call from the loop."""
        if auth_token is not None and record["status_callback"]:
            with self._lock:
                self._tokens[record["id"]] = auth_token
        if config.auto_statuses:
            task = asyncio.get_running_loop().create_task(self._auto(record, config))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def send_status(
        self,
        message_id: str,
        status: CallbackStatus,
        config: SandboxConfig,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> Delivery:
        record = self._store.get(message_id)
        if record is None:
            raise CallbackError(404, f"no stored message {message_id}")
        return await self._post(self._status(record, status, config, error_code, error_message), config)

    async def send_reply(
        self, config: SandboxConfig, *, phone_number_id: str, sender: str, text: str, name: str, context: str | None
    ) -> tuple[str, Delivery]:
        """Send an inbound text from `sender` to the business number; returns the new wamid and the answer."""
        hook = self._hook(config, phone_number_id)
        wamid = new_wamid(sender.lstrip("+"))
        payload = webhooks.meta_reply(
            phone_number_id,
            hook,
            sender=sender,
            name=name,
            text=text,
            message_id=wamid,
            context_message_id=context,
            at=utc_now(),
        )
        return wamid, await self._post(_meta("whatsapp_reply", wamid, None, hook, payload), config)

    def sent(self) -> list[dict[str, Any]]:
        """What was posted (or tried), oldest first; the last 10,000 only."""
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        """Forget the log and remembered tokens; cancel pending automatic statuses. Call from the loop."""
        for task in list(self._tasks):
            task.cancel()
        with self._lock:
            self._log.clear()
            self._tokens = {}

    async def aclose(self) -> None:
        self.clear()
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def _auto(self, record: MessageRecord, config: SandboxConfig) -> None:
        for status in config.auto_statuses:
            if status == "read" and record["provider"] == "twilio" and not record["to"].startswith("whatsapp:"):
                continue  # an SMS has no read receipt: Twilio reports `read` only for WhatsApp
            await asyncio.sleep(AUTO_STATUS_GAP_SECONDS)
            try:
                await self._post(self._status(record, status, config, None, None), config)
            except CallbackError as error:
                if error.status == 409:
                    return  # nowhere to send this message's statuses: not an error for automatic ones
                # A failed POST is in the log; go on with the next status, as a provider would.

    def _status(
        self,
        record: MessageRecord,
        status: CallbackStatus,
        config: SandboxConfig,
        error_code: int | None,
        error_message: str | None,
    ) -> _Outgoing:
        now = utc_now()
        if record["provider"] == "whatsapp_cloud":
            hook = self._hook(config, record["account"])
            payload = webhooks.meta_status(record, status, hook, error_code, error_message, now)
            return _meta("whatsapp_status", record["id"], status, hook, payload)
        url = record["status_callback"]
        if not url:
            raise CallbackError(409, f"message {record['id']} was sent without a StatusCallback")
        token = config.twilio_auth_tokens.get(record["account"])
        if token is None:
            with self._lock:
                token = self._tokens.get(record["id"])
        if token is None:
            raise CallbackError(409, f"no auth token for {record['account']}: set twilio_auth_tokens")
        params = webhooks.twilio_status_form(record, status, error_code, now)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": twilio_signature(token, url, params),
        }
        return _Outgoing("twilio_status", record["id"], status, url, urlencode(params).encode(), headers)

    @staticmethod
    def _hook(config: SandboxConfig, phone_number_id: str) -> WhatsAppWebhook:
        hook = config.whatsapp_webhooks.get(phone_number_id)
        if hook is None:
            raise CallbackError(409, f"no whatsapp_webhooks entry for phone_number_id {phone_number_id}")
        return hook

    async def _post(self, outgoing: _Outgoing, config: SandboxConfig) -> Delivery:
        entry: dict[str, Any] = {
            "at": iso_millis(utc_now()),
            "kind": outgoing.kind,
            "message_id": outgoing.message_id,
            "status": outgoing.status,
            "url": outgoing.url,
            "status_code": None,
            "error": None,
        }
        try:
            response = await self._http().post(
                outgoing.url,
                content=outgoing.content,
                headers=outgoing.headers,
                timeout=config.callback_timeout_seconds,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # str() of a timeout can be empty: keep the class name.
            entry["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._record(entry)
            raise CallbackError(502, f"POST {outgoing.url} failed: {entry['error']}") from exc
        entry["status_code"] = response.status_code
        self._record(entry)
        return Delivery(outgoing.url, response.status_code, response.text[:_ANSWER_CHARS])

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    def _http(self) -> httpx.AsyncClient:
        # Pooled connections belong to the loop that opened them, and a TestClient used without `with` runs each
        # request in a new loop: so one client per loop. An abandoned client's loop is already gone.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False)
            self._client_loop = loop
        return self._client


def _meta(
    kind: CallbackKind, message_id: str, status: str | None, hook: WhatsAppWebhook, payload: dict[str, Any]
) -> _Outgoing:
    content = webhooks.encode_json(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        "X-Hub-Signature-256": meta_signature(hook.app_secret, content),
    }
    return _Outgoing(kind, message_id, status, hook.url, content, headers)
