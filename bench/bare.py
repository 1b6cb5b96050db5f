"""The bare comparison tasks: only the provider call a send makes, in the same Celery app and worker.

Same HTTP request as `workers.providers.twilio.TwilioSms.send` for a sandbox sender (form fields, Basic
auth, Idempotency-Key header, the status-callback URL); no limiter, no database, no counters. The worker
loads them with `--include bench.bare`.

* `bare_send` goes through the same shared, pooled `workers.http` client as our adapters: the strict
  baseline, which the pipeline target is judged against.
* `naive_send` is the task as it is usually first written, `httpx.post(...)`: a client, and so a
  connection, per call. Printed for reference only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx

from dispatcher.config import get_settings
from workers.app import app
from workers.http import get_client

NAME = "bench.bare_send"
NAIVE_NAME = "bench.naive_send"
ACCOUNT_SID = "ACsandbox"
AUTH_TOKEN = "sandbox"


@lru_cache(maxsize=1)
def _endpoint() -> tuple[str, str]:
    settings = get_settings()
    url = f"{settings.sandbox_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    return url, f"{settings.api_url}/v1/webhooks/twilio/0"


def _post(client: httpx.Client | None, message_id: int, to: str, body: str, sender: str) -> str:
    url, callback = _endpoint()
    form = {"To": to, "From": sender, "Body": body, "StatusCallback": f"{callback}?mid={message_id}"}
    request: dict[str, Any] = {
        "data": form,
        "auth": (ACCOUNT_SID, AUTH_TOKEN),
        "headers": {"Idempotency-Key": f"msg-{message_id}"},
    }
    response = client.post(url, **request) if client is not None else httpx.post(url, timeout=10.0, **request)
    response.raise_for_status()
    return str(response.json()["sid"])


@app.task(name=NAME)  # type: ignore[untyped-decorator]  # Celery's decorator is untyped
def bare_send(message_id: int, to: str, body: str, sender: str) -> str:
    return _post(get_client(), message_id, to, body, sender)


@app.task(name=NAIVE_NAME)  # type: ignore[untyped-decorator]
def naive_send(message_id: int, to: str, body: str, sender: str) -> str:
    return _post(None, message_id, to, body, sender)
