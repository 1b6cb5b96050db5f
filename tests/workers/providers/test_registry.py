"""The registry turns a sender's provider and settings into an adapter, or one typed configuration error."""

from __future__ import annotations

import httpx
import pytest

from workers.providers.registry import MissingSetting, ProviderConfigError, UnknownProvider, provider_for
from workers.providers.whatsapp_cloud import WhatsAppCloud

# Adapters make no call when they are built: a client that is never used will do.
UNUSED = httpx.AsyncClient(transport=httpx.MockTransport(lambda _request: httpx.Response(500)))


def test_a_known_provider_with_its_settings_makes_its_adapter() -> None:
    settings = {"phone_number_id": "123", "access_token": "t"}
    assert isinstance(provider_for("whatsapp_cloud", "whatsapp", UNUSED, settings), WhatsAppCloud)


@pytest.mark.parametrize(
    ("provider", "channel", "settings", "error", "text"),
    [
        ("carrier-pigeon", "sms", {}, UnknownProvider, "unknown provider carrier-pigeon for sms"),
        ("twilio", "whatsapp", {}, UnknownProvider, "unknown provider twilio for whatsapp"),
        ("twilio", "sms", {"from": "X"}, MissingSetting, "sender setting 'account_sid' is missing"),
        ("whatsapp_cloud", "whatsapp", {}, MissingSetting, "is missing"),
    ],
)
def test_a_sender_that_cannot_make_an_adapter_is_one_typed_error(
    provider: str, channel: str, settings: dict[str, str], error: type[ProviderConfigError], text: str
) -> None:
    with pytest.raises(error, match=text) as raised:
        provider_for(provider, channel, UNUSED, settings)
    assert isinstance(raised.value, ProviderConfigError) and not isinstance(raised.value, KeyError)
