"""Meta WhatsApp Cloud API: template messages through the Graph API (and the sandbox, same wire format).

POST {base_url}/{version}/{phone_number_id}/messages with a Bearer token. Errors come in the Graph
envelope {"error": {"code", "message", "error_data": {"details"}}}; we branch on `code`, never on the
HTTP status alone, because Meta does not promise a 429 for throttling (reference/providers.md §1.3).
"""

from __future__ import annotations

from typing import Any

import httpx

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

DEFAULT_VERSION = "v21.0"
# Throughput of the number (130429), of the business account (80007) or of the app (4): the whole sender waits.
SENDER_THROTTLE = frozenset({130429, 80007, 4})
# Too many messages to this one user in a short time: only this recipient waits (Meta suggests 4^n s).
PAIR_THROTTLE = frozenset({131056})
TRANSIENT = frozenset({1, 2, 131000, 131016})


class WhatsAppCloud:
    """Sends approved templates (and plain text inside a customer-service window) from one phone number."""

    def __init__(self, client: httpx.AsyncClient, settings: dict[str, Any]) -> None:
        self.client = client
        base = str(settings.get("base_url") or "https://graph.facebook.com").rstrip("/")
        version = str(settings.get("api_version") or DEFAULT_VERSION)
        self.url = f"{base}/{version}/{settings['phone_number_id']}/messages"
        self.headers = {"Authorization": f"Bearer {settings['access_token']}"}

    async def send(self, message: Outbound) -> SendResult:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.lstrip("+"),
            # Echoed in status webhooks; matching still uses the wamid (reference/providers.md §0.2).
            "biz_opaque_callback_data": f"m={message.message_id}",
        }
        if message.template is not None:
            payload["type"] = "template"
            payload["template"] = {
                "name": message.template.name,
                "language": {"code": message.template.language},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": p} for p in message.template.params]}
                ],
            }
        else:
            payload.update(type="text", text={"body": message.body})
        try:
            response = await self.client.post(self.url, json=payload, headers=self.headers)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if response.status_code == 200:
            return accepted(response, lambda body: body["messages"][0]["id"])
        raise classify(response)


def classify(response: httpx.Response) -> ProviderError:
    """Map a Graph error answer onto the taxonomy of `workers.providers.base`."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    try:
        code: int | None = int(str(error.get("code")))  # some gateways send it as a string
    except (TypeError, ValueError):
        code = None
    details = (error.get("error_data") or {}).get("details")
    text = str(details or error.get("message") or f"HTTP {response.status_code}")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if code in SENDER_THROTTLE or (code is None and response.status_code == 429):
        return Throttled(text, code or 429, retry_after)
    if code in PAIR_THROTTLE:
        return Throttled(text, code, retry_after, sender_wide=False)
    if code in TRANSIENT or error.get("is_transient") is True or response.status_code >= 500:
        return Transient(text, code or response.status_code)
    return Permanent(text, code or response.status_code)
