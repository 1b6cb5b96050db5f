"""Thread-safe in-memory record of what the sandbox accepted, and counters of every provider request.

Every write is an append or a counter bump under one lock, and every read copies a slice under that lock,
so the store stays cheap at benchmark rates (~1,000 requests/s) whatever the number of stored messages:
the `to` and `provider` filters go through per-key lists of positions instead of scanning all messages.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from datetime import datetime
from typing import Any, Literal, TypedDict, get_args

__all__ = [
    "OUTCOMES",
    "PROVIDERS",
    "MessageRecord",
    "MessageStore",
    "Outcome",
    "Provider",
    "TemplateRecord",
    "normalise_number",
]

Provider = Literal["twilio", "whatsapp_cloud"]
Outcome = Literal["accepted", "permanent", "transient", "throttle", "ambiguous", "invalid", "unauthorized", "replayed"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


class TemplateRecord(TypedDict):
    name: str
    language: str
    parameters: list[str]


# Functional form because "from" is a Python keyword.
MessageRecord = TypedDict(
    "MessageRecord",
    {
        "id": str,
        "provider": Provider,
        "to": str,
        "from": str,
        "body": str | None,
        "template": TemplateRecord | None,
        "reference": str | None,
        "status_callback": str | None,
        "received_at": str,
        "account": str,
    },
)


def normalise_number(raw: str) -> str:
    """The key a phone number is matched on: no whitespace and no leading `+`.

    A `+` in a query string arrives as a space, so `?to=+225...` still finds `+225...`.
    """
    return "".join(raw.split()).lstrip("+")


def _empty_counters() -> dict[Provider, dict[Outcome, int]]:
    return {provider: dict.fromkeys(OUTCOMES, 0) for provider in PROVIDERS}


class MessageStore:
    """Accepted messages in arrival order, plus request counters by provider and outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[MessageRecord] = []
        self._by_id: dict[str, int] = {}
        # Positions in _messages, ascending, so `since` is a bisect rather than a scan.
        self._by_to: dict[str, list[int]] = {}
        self._by_provider: dict[str, list[int]] = {}
        self._counters = _empty_counters()
        self._per_second: dict[int, int] = {}
        self._max_per_second = 0
        # Idempotency-Key -> the answer first given for it (a retried request gets it again, stores nothing).
        self._answers: dict[str, dict[str, Any]] = {}

    def replay(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._answers.get(key)

    def remember(self, key: str, answer: dict[str, Any]) -> None:
        with self._lock:
            self._answers.setdefault(key, answer)

    def count(self, provider: Provider, outcome: Outcome) -> None:
        """Count a request that stored nothing (an error answer)."""
        with self._lock:
            self._counters[provider][outcome] += 1

    def accept(self, record: MessageRecord, outcome: Outcome, at: datetime) -> None:
        """Store a message the provider accepted. `at` must be the instant written in `record["received_at"]`."""
        second = int(at.timestamp())
        with self._lock:
            position = len(self._messages)
            self._messages.append(record)
            self._by_id[record["id"]] = position
            self._by_to.setdefault(normalise_number(record["to"]), []).append(position)
            self._by_provider.setdefault(record["provider"], []).append(position)
            self._counters[record["provider"]][outcome] += 1
            # Ambiguous answers are stored messages too: they count against a provider's rate like any other.
            in_second = self._per_second.get(second, 0) + 1
            self._per_second[second] = in_second
            self._max_per_second = max(self._max_per_second, in_second)

    def get(self, message_id: str) -> MessageRecord | None:
        """The stored message with this id (Twilio SID or wamid), or None."""
        with self._lock:
            position = self._by_id.get(message_id)
            return None if position is None else self._messages[position]

    def messages(
        self, *, to: str | None = None, provider: str | None = None, since: int = 0
    ) -> tuple[list[MessageRecord], int]:
        """Messages stored at position `since` or later, filtered; and the total stored (the next `since`).

        `since` indexes the whole list, not the filtered one, so a pager can always resume from the total.
        """
        with self._lock:
            total = len(self._messages)
            if to is None and provider is None:
                return self._messages[since:], total
            positions = self._by_to.get(normalise_number(to), []) if to is not None else None
            if positions is None:
                positions = self._by_provider.get(provider or "", [])
            selected = [self._messages[i] for i in positions[bisect_left(positions, since) :]]
        if to is not None and provider is not None:
            selected = [record for record in selected if record["provider"] == provider]
        return selected, total

    def clear(self) -> int:
        """Forget every message and every counter; returns how many messages were dropped."""
        with self._lock:
            dropped = len(self._messages)
            self._messages = []
            self._by_id = {}
            self._by_to = {}
            self._by_provider = {}
            self._counters = _empty_counters()
            self._per_second = {}
            self._max_per_second = 0
            self._answers = {}
        return dropped

    def stats(self) -> dict[str, Any]:
        with self._lock:
            by_provider = {provider: dict(counts) for provider, counts in self._counters.items()}
            per_second = sorted(self._per_second.items())
            max_per_second = self._max_per_second
            stored = len(self._messages)
        by_outcome = {outcome: sum(counts[outcome] for counts in by_provider.values()) for outcome in OUTCOMES}
        return {
            "requests": sum(by_outcome.values()),
            "messages": stored,
            "by_provider": by_provider,
            "by_outcome": by_outcome,
            "max_per_second": max_per_second,
            "per_second": [[second, count] for second, count in per_second],
        }
