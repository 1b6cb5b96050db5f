"""The bare comparison task: only the provider call a send makes, in the same Celery app and worker.

Same HTTP request as `workers.providers.twilio.TwilioSms.send` for a sandbox sender (form fields, Basic
auth, Idempotency-Key header, the status-callback URL), through the same shared `workers.http` client;
no limiter, no database, no counters. The worker loads it with `--include bench.bare`.
"""

from __future__ import annotations

from functools import lru_cache

from dispatcher.config import get_settings
from workers.app import app
from workers.http import get_client

NAME = "bench.bare_send"
ACCOUNT_SID = "ACsandbox"
AUTH_TOKEN = "sandbox"


@lru_cache(maxsize=1)
def _endpoint() -> tuple[str, str]:
    settings = get_settings()
    url = f"{settings.sandbox_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    return url, f"{settings.api_url}/v1/webhooks/twilio/0"


@app.task(name=NAME)  # type: ignore[untyped-decorator]  # Celery's decorator is untyped
def bare_send(message_id: int, to: str, body: str, sender: str) -> str:
    url, callback = _endpoint()
    form = {"To": to, "From": sender, "Body": body, "StatusCallback": f"{callback}?mid={message_id}"}
    response = get_client().post(
        url, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), headers={"Idempotency-Key": f"msg-{message_id}"}
    )
    response.raise_for_status()
    return str(response.json()["sid"])
