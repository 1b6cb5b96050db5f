"""What the sandbox writes the same way wherever it writes it: the providers' wire details shared by their
routes (`twilio.py`, `graph.py`) and the callbacks they send back (`webhooks.py`, `callbacks.py`).

It imports no other sandbox module, so every one of them can build on it.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

__all__ = ["API_VERSION", "describe_error", "format_retry_after", "iso_millis", "new_wamid", "utc_now"]

# Twilio's REST API version: in its request paths, its Message resources and its status callbacks.
API_VERSION = "2010-04-01"

# Graph API error code -> (title, default details), for error answers and failed-status webhooks alike.
# A fault's own `message` replaces the details.
_ERRORS: dict[int, tuple[str, str]] = {
    100: ("Invalid parameter", "Invalid parameter"),
    190: ("Invalid OAuth access token", "Invalid OAuth access token - Cannot parse access token"),
    2500: ("Unknown path components", "Unknown path components"),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131008: ("Required parameter is missing", "Required parameter is missing"),
    131009: ("Parameter value is not valid", "Parameter value is not valid"),
    131026: ("Message undeliverable", "Message failed to send because the recipient cannot receive it."),
    131047: ("Re-engagement message", "More than 24 hours have passed since the recipient last replied."),
    131049: (
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    ),
    131050: ("User stopped marketing messages", "The recipient has stopped marketing messages from this business."),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number to the same "
        "phone number in a short period of time.",
    ),
    132000: ("Number of parameters does not match the expected number of params", "Template parameter count mismatch"),
    132001: ("Template name does not exist in the translation", "Template name does not exist in the translation"),
}


def describe_error(code: int, details: str | None = None) -> tuple[str, str]:
    """(title, details) for a Graph error code; `details`, when given, wins and names unknown codes."""
    title, default_details = _ERRORS.get(code, (details or "Error", details or "Error"))
    return title, details or default_details


def new_wamid(digits: str) -> str:
    """A WhatsApp message id for a message to or from `digits` (sent messages and inbound replies alike)."""
    # Real wamids are base64 of a small binary blob that embeds the recipient (hence "wamid.HBgL..."); keep that look.
    blob = b"\x1c\x18" + bytes([len(digits)]) + digits.encode() + b"\x15\x02\x00\x11\x18\x12" + os.urandom(9)
    return "wamid." + base64.b64encode(blob).decode()


def format_retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds as an integer (the HTTP form), fractions kept for fast tests."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_millis(at: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, e.g. 2025-01-31T09:00:00.123Z."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
