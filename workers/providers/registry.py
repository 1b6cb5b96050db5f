"""Provider name -> adapter. A sender's `provider` and `settings` select and configure its adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from dispatcher.config import get_settings
from workers.providers.base import SmsProvider
from workers.providers.twilio import TwilioSms


def _sandbox(client: httpx.Client, settings: dict[str, Any]) -> SmsProvider:
    # The sandbox speaks Twilio's wire format at our own gateway; settings may point it elsewhere.
    merged = {
        "base_url": get_settings().sandbox_url,
        "account_sid": "ACsandbox",
        "auth_token": "sandbox",
        "from": settings.get("from") or "Sandbox",
        **settings,
    }
    return TwilioSms(client, merged)


SMS_PROVIDERS: dict[str, Callable[[httpx.Client, dict[str, Any]], SmsProvider]] = {
    "sandbox": _sandbox,
    "twilio": TwilioSms,
}


class UnknownProvider(KeyError):
    pass


def sms_provider(name: str, client: httpx.Client, settings: dict[str, Any]) -> SmsProvider:
    try:
        factory = SMS_PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(name) from None
    return factory(client, settings)


def is_idempotent(name: str, settings: dict[str, Any]) -> bool:
    """Does this provider deduplicate a repeated request carrying our message id?

    The sandbox honours an Idempotency-Key header; Twilio's Messages API has no idempotency key.
    """
    return name == "sandbox"
