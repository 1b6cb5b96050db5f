"""What the providers send back: Twilio's status callback form and Meta's status and inbound-message webhooks.

Pure builders, no I/O: `callbacks.py` signs and posts what these return.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from dispatcher.sandbox.config import CallbackStatus, WhatsAppWebhook
from dispatcher.sandbox.store import MessageRecord
from dispatcher.sandbox.wire import API_VERSION, describe_error

__all__ = ["encode_json", "meta_reply", "meta_status", "twilio_status_form"]

_FAILURES = ("failed", "undelivered")
# Used when a failed/undelivered callback is asked for without an error code.
_TWILIO_DEFAULT_ERRORS: dict[str, int] = {"failed": 30008, "undelivered": 30003}
_META_DEFAULT_ERROR = 131026
_META_ERRORS_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def twilio_status_form(
    record: MessageRecord, status: CallbackStatus, error_code: int | None, at: datetime
) -> dict[str, str]:
    """The parameters Twilio posts to a message's StatusCallback (reference/providers.md §2.4)."""
    sid = record["id"]
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": record["account"],
        "From": record["from"],
        "To": record["to"],
        "ApiVersion": API_VERSION,
    }
    if record["from"].startswith("MG"):
        params["MessagingServiceSid"] = record["from"]
    if status in _FAILURES:
        params["ErrorCode"] = str(error_code or _TWILIO_DEFAULT_ERRORS[status])
    if status in ("delivered", "undelivered"):
        # Carrier time, YYMMDDhhmm with no time zone, as Twilio relays it.
        params["RawDlrDoneDate"] = at.strftime("%y%m%d%H%M")
    return params


def _waba_id(phone_number_id: str, hook: WhatsAppWebhook) -> str:
    """The configured WABA id, else a 15-digit id derived from the number (stable across restarts)."""
    if hook.waba_id:
        return hook.waba_id
    digest = int(hashlib.sha256(phone_number_id.encode()).hexdigest()[:15], 16)
    return str(100_000_000_000_000 + digest % 900_000_000_000_000)


def _envelope(phone_number_id: str, hook: WhatsAppWebhook, value: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        "display_phone_number": hook.display_phone_number or phone_number_id,
        "phone_number_id": phone_number_id,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": _waba_id(phone_number_id, hook),
                "changes": [
                    {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": metadata, **value}}
                ],
            }
        ],
    }


def meta_status(
    record: MessageRecord,
    status: CallbackStatus,
    hook: WhatsAppWebhook,
    error_code: int | None,
    error_message: str | None,
    at: datetime,
) -> dict[str, Any]:
    """A Meta status webhook for a stored WhatsApp message. WhatsApp has no `undelivered`: it is sent as `failed`."""
    failed = status in _FAILURES
    entry: dict[str, Any] = {
        "id": record["id"],
        "status": "failed" if failed else status,
        "timestamp": str(int(at.timestamp())),
        "recipient_id": record["to"].lstrip("+"),
    }
    if record["reference"] is not None:
        entry["biz_opaque_callback_data"] = record["reference"]
    if failed:
        code = error_code or _META_DEFAULT_ERROR
        title, details = describe_error(code, error_message)
        entry["errors"] = [
            {
                "code": code,
                "title": title,
                "message": title,
                "error_data": {"details": details},
                "href": _META_ERRORS_HREF,
            }
        ]
    else:
        # Per-message pricing: templates are billed (the sandbox calls them marketing), free text is service.
        billed = record["template"] is not None
        entry["pricing"] = {
            "billable": billed,
            "pricing_model": "PMP",
            "category": "marketing" if billed else "service",
            "type": "regular" if billed else "free_customer_service",
        }
    return _envelope(record["account"], hook, {"statuses": [entry]})


def meta_reply(
    phone_number_id: str,
    hook: WhatsAppWebhook,
    *,
    sender: str,
    name: str,
    text: str,
    message_id: str,
    context_message_id: str | None,
    at: datetime,
) -> dict[str, Any]:
    """A Meta inbound-message webhook: `sender` wrote `text` to the business number, maybe replying to a message."""
    wa_id = sender.lstrip("+")
    message: dict[str, Any] = {
        "from": wa_id,
        "id": message_id,
        "timestamp": str(int(at.timestamp())),
        "type": "text",
        "text": {"body": text},
    }
    if context_message_id is not None:
        message["context"] = {"from": hook.display_phone_number or phone_number_id, "id": context_message_id}
    value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}
    return _envelope(phone_number_id, hook, value)


def encode_json(payload: dict[str, Any]) -> bytes:
    """Compact JSON with non-ASCII escaped as \\uXXXX, like Meta: the signature covers exactly these bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()
