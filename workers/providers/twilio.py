"""Twilio Programmable Messaging (and the sandbox, which speaks the same wire format).

POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded, HTTP Basic auth.
Errors come as {"code", "message", "more_info", "status"}; we branch on the code, not the HTTP status.
"""

from __future__ import annotations

from typing import Any

import httpx

from dispatcher.inputs import ascii_digits
from workers.providers.base import (
    Outbound,
    Permanent,
    ProviderError,
    SendResult,
    Throttled,
    Transient,
    accepted,
    parse_retry_after,
    transport_error,
)

THROTTLE_CODES = frozenset({20429, 14107})
# Codes where the same request may succeed later (handset off, carrier hiccup, Twilio internal error).
TRANSIENT_CODES = frozenset({20500, 20503, 30001, 30003, 30008})


class TwilioSms:
    """Sends through one Twilio account (or the sandbox at another base URL)."""

    def __init__(self, client: httpx.AsyncClient, settings: dict[str, Any]) -> None:
        self.client = client
        self.base_url = str(settings.get("base_url") or "https://api.twilio.com").rstrip("/")
        self.account_sid = str(settings["account_sid"])
        self.auth_token = str(settings["auth_token"])
        self.sender_field = "MessagingServiceSid" if settings.get("messaging_service_sid") else "From"
        self.sender = str(settings.get("messaging_service_sid") or settings["from"])
        self.status_callback = settings.get("status_callback")

    async def send(self, message: Outbound) -> SendResult:
        form = {"To": message.to, self.sender_field: self.sender, "Body": message.body}
        if self.status_callback:
            # Our message id rides in the callback URL: Twilio echoes it, so receipts match without a lookup.
            form["StatusCallback"] = f"{self.status_callback}?mid={message.message_id}"
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            # Providers that deduplicate (the sandbox) answer a retried request once; others ignore the header.
            headers = {"Idempotency-Key": f"msg-{message.message_id}"}
            response = await self.client.post(url, data=form, auth=(self.account_sid, self.auth_token), headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if response.status_code in (200, 201):
            return accepted(response, lambda body: body["sid"])
        raise classify(response)


def classify(response: httpx.Response) -> ProviderError:
    body = _json(response)
    code = body.get("code")
    text = str(body.get("message") or response.reason_phrase or f"HTTP {response.status_code}")
    code_int = int(code) if isinstance(code, int | str) and ascii_digits(str(code)) else None
    if response.status_code == 429 or code_int in THROTTLE_CODES:
        return Throttled(text, code_int or 429, parse_retry_after(response.headers.get("Retry-After")))
    if response.status_code >= 500 or code_int in TRANSIENT_CODES:
        return Transient(text, code_int or response.status_code)
    return Permanent(text, code_int or response.status_code)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
