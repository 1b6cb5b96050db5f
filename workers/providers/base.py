"""The provider seam: one small interface and one error taxonomy for every adapter.

Error taxonomy (what the send task does with each):

* ProviderError              -- base; `code` and `text` are the provider's own, stored on the message
  * Throttled(retry_after)   -- the provider asked us to slow down (HTTP 429, Twilio 20429, Meta 130429...).
                                The sender pauses for everyone and the message goes back with a countdown.
                                Never counts as a failure or an attempt.
  * Transient                -- worth retrying: 5xx, connection refused/reset, connect or pool timeouts.
                                The request never reached the provider or was refused as a whole.
                                Bounded exponential backoff with jitter.
  * Ambiguous                -- the request left and we do not know what happened (read timeout, connection
                                dropped mid-response). Status `unknown`; never re-sent blindly.
  * Permanent                -- this message will never succeed as is (invalid number, unsubscribed,
                                template mismatch, bad credentials). Status `failed` with the code.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from workers.egress import EgressRefused


@dataclass(frozen=True, slots=True)
class TemplateCall:
    """An approved WhatsApp template and its body parameters, in order."""

    name: str
    language: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to one recipient: an SMS body, or a template (whose rendered `body` is only a preview)."""

    message_id: int
    to: str  # E.164 with '+'
    body: str
    template: TemplateCall | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str


class ProviderError(Exception):
    def __init__(self, text: str, code: str | int | None = None) -> None:
        super().__init__(f"{code}: {text}" if code is not None else text)
        self.code = None if code is None else str(code)
        self.text = text


class Throttled(ProviderError):
    """`sender_wide`: the whole sender must slow down (account or number throughput); otherwise only this
    recipient is over its limit (WhatsApp's pair rate, 131056) and only this message waits."""

    def __init__(
        self, text: str, code: str | int | None = None, retry_after: float | None = None, *, sender_wide: bool = True
    ) -> None:
        super().__init__(text, code)
        self.retry_after = retry_after
        self.sender_wide = sender_wide


class Transient(ProviderError):
    pass


class Ambiguous(ProviderError):
    pass


class Permanent(ProviderError):
    pass


class Provider(Protocol):
    """Sends one message; returns the provider's message id or raises a ProviderError subclass. Adapters
    call through an `httpx.AsyncClient`, so the sends of a batch can run concurrently on one loop."""

    async def send(self, message: Outbound) -> SendResult: ...


# Retry-After is clamped: below 1 s is noise, above 15 min would outlive our countdown budget.
MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1.0, 900.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, seconds))


def accepted(response: httpx.Response, extract: Callable[[Any], object]) -> SendResult:
    """The provider's message id from a success answer. A success whose body we cannot read is
    ambiguous, not a failure: the provider took the message, so it must never be re-sent blindly."""
    try:
        provider_id = extract(response.json())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Ambiguous(
            f"HTTP {response.status_code} without a readable message id ({type(exc).__name__})", "bad_answer"
        ) from exc
    if not isinstance(provider_id, str | int) or not str(provider_id):
        raise Ambiguous(f"HTTP {response.status_code} without a message id", "bad_answer")
    return SendResult(provider_message_id=str(provider_id))


def transport_error(exc: httpx.TransportError) -> ProviderError:
    """Classify an httpx failure by whether the request can have reached the provider."""
    # Connect and pool failures happen before a byte of the request is sent; a write failure means
    # the request was incomplete, which no server acts on. Anything later is ambiguous.
    if isinstance(exc.__cause__, EgressRefused):
        return Permanent(str(exc), "egress")  # the sender's URL leads into our network: no retry helps
    if isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.WriteError | httpx.WriteTimeout
    ):
        return Transient(f"{type(exc).__name__}: {exc}", "network")
    if isinstance(exc, httpx.ProxyError):
        # The operator's proxy refused to open the tunnel (down, denied, bad credentials): nothing reached
        # the provider. Retried with backoff; the error budget pauses a campaign if it lasts.
        return Transient(f"ProxyError: {exc}", "proxy")
    return Ambiguous(f"{type(exc).__name__}: {exc}", "network")
