"""(provider, channel) -> adapter. A sender's `provider` and `settings` select and configure its adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from dispatcher.config import get_settings
from workers.providers.base import Provider
from workers.providers.twilio import TwilioSms
from workers.providers.whatsapp_cloud import WhatsAppCloud

Factory = Callable[[httpx.AsyncClient, dict[str, Any]], Provider]


def _sandbox_sms(client: httpx.AsyncClient, settings: dict[str, Any]) -> Provider:
    # The sandbox speaks Twilio's wire format at our own gateway; settings may point it elsewhere. It signs
    # status callbacks with the auth token it was sent, so a sender without its own signs with the fallback.
    own = get_settings()
    merged = {"base_url": own.sandbox_url, "account_sid": "ACsandbox", **settings}
    if not merged.get("auth_token"):
        # The operator's fallback secret only ever goes to the operator's own sandbox, never to a URL a
        # tenant chose (it would let them sign receipts for every legacy sandbox sender).
        if str(merged["base_url"]).rstrip("/") != own.sandbox_url.rstrip("/"):
            raise MissingSetting("auth_token")
        fallback = own.sandbox_webhook_secret
        merged["auth_token"] = fallback.get_secret_value() if fallback is not None else "sandbox"
    return TwilioSms(client, merged)


def _sandbox_whatsapp(client: httpx.AsyncClient, settings: dict[str, Any]) -> Provider:
    defaults = {"base_url": get_settings().sandbox_url, "access_token": "sandbox"}
    return WhatsAppCloud(client, {**defaults, **settings})


PROVIDERS: dict[tuple[str, str], Factory] = {
    ("sandbox", "sms"): _sandbox_sms,
    ("twilio", "sms"): TwilioSms,
    ("sandbox", "whatsapp"): _sandbox_whatsapp,
    ("whatsapp_cloud", "whatsapp"): WhatsAppCloud,
}


class ProviderConfigError(Exception):
    """A sender whose provider or settings cannot make an adapter. Not a provider's answer: every message
    to this sender fails with code `config` until the sender is fixed."""


class UnknownProvider(ProviderConfigError):
    def __init__(self, name: str, channel: str) -> None:
        super().__init__(f"unknown provider {name} for {channel}")


class MissingSetting(ProviderConfigError):
    def __init__(self, setting: str) -> None:
        super().__init__(f"sender setting {setting!r} is missing")


def provider_for(name: str, channel: str, client: httpx.AsyncClient, settings: dict[str, Any]) -> Provider:
    """The adapter for a sender; raises `ProviderConfigError` for an unknown provider or a missing setting
    (adapters read their required settings with `settings[...]` when they are built)."""
    factory = PROVIDERS.get((name, channel))
    if factory is None:
        raise UnknownProvider(name, channel)
    try:
        return factory(client, settings)
    except KeyError as exc:
        raise MissingSetting(str(exc.args[0]) if exc.args else "?") from None


def is_idempotent(name: str, channel: str) -> bool:
    """Does this provider deduplicate a repeated request carrying our message id?

    The sandbox honours an Idempotency-Key header (SMS); Twilio and WhatsApp Cloud have no such key.
    """
    return name == "sandbox" and channel == "sms"
