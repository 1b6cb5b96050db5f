"""The sandbox's settings: `PUT`/`PATCH`/`GET /_sandbox/config`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CallbackStatus", "SandboxConfig", "WhatsAppWebhook"]

CallbackStatus = Literal["sent", "delivered", "read", "failed", "undelivered"]


def _http_url(value: str) -> str:
    # Checked but kept verbatim (no pydantic HttpUrl): Twilio signs the URL exactly as given, and so do we.
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class WhatsAppWebhook(BaseModel):
    """Where and how the sandbox sends Meta webhooks (statuses and inbound replies) for one phone number id."""

    model_config = ConfigDict(extra="forbid")

    url: str
    app_secret: str = Field(min_length=1)
    display_phone_number: str | None = Field(
        default=None, description="metadata.display_phone_number; default: the phone number id"
    )
    waba_id: str | None = Field(default=None, description="entry[].id; default: a stable id derived from the number")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class SandboxConfig(BaseModel):
    """Body of `PUT /_sandbox/config` (replaces everything) and `PATCH` (replaces the keys given)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, le=600_000)
    twilio_auth_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="account SID -> auth token used to sign Twilio callbacks; an account not listed is signed "
        "with the Basic-auth password its message was sent with",
    )
    whatsapp_webhooks: dict[str, WhatsAppWebhook] = Field(
        default_factory=dict, description="phone_number_id -> where and how to send its Meta webhooks"
    )
    auto_statuses: list[CallbackStatus] = Field(
        default_factory=list,
        max_length=10,
        description="status callbacks sent in this order, ~50 ms apart, after every accepted message",
    )
    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
