"""Fault rules: which numbers get which failure, for how many requests and for how long.

A rule lists numbers (matched after `normalise_number`) or "*" for every number. Lookups go through a dict
keyed by number plus the short list of wildcard rules, never through all rules. When several rules match,
the newest wins; a rule whose `times` is used up for that number, or whose duration is over, no longer
matches, so the next newest one answers instead.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatcher.inputs import ascii_digits
from dispatcher.sandbox.store import normalise_number
from dispatcher.sandbox.wire import iso_millis, utc_now

__all__ = ["FaultBook", "FaultKind", "FaultRule", "FaultSpec"]

FaultKind = Literal["permanent", "transient", "throttle", "ambiguous"]


class FaultSpec(BaseModel):
    """Body of `POST /_sandbox/faults`. Fields that do not apply to `kind` are accepted and ignored."""

    model_config = ConfigDict(extra="forbid")

    numbers: list[str] | Literal["*"]
    kind: FaultKind
    code: int | None = Field(default=None, ge=1)
    message: str | None = None
    retry_after: float = Field(default=1.0, ge=0, le=86_400)
    times: int | None = Field(default=None, ge=1)
    duration_seconds: float | None = Field(default=None, gt=0)
    delay_seconds: float = Field(default=30.0, ge=0, le=3_600)

    @field_validator("numbers")
    @classmethod
    def _normalise(cls, value: list[str] | Literal["*"]) -> list[str] | Literal["*"]:
        if value == "*":
            return value
        if not value:
            raise ValueError('give at least one number, or "*" for every number')
        numbers = [normalise_number(raw) for raw in value]
        bad = [
            raw for raw, number in zip(value, numbers, strict=True) if not (ascii_digits(number) and len(number) <= 15)
        ]
        if bad:
            raise ValueError(f"not phone numbers (up to 15 digits, optional leading +): {bad}")
        # Stored as E.164 so the echo shows what will be matched.
        return [f"+{number}" for number in dict.fromkeys(numbers)]


@dataclass(eq=False)
class FaultRule:
    spec: FaultSpec
    seq: int
    id: str = field(default_factory=lambda: f"flt_{uuid.uuid4().hex[:12]}")
    created_at: datetime = field(default_factory=utc_now)
    # Monotonic deadline: wall-clock jumps must not revive or kill a rule.
    deadline: float | None = None
    answered: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    # Normalised numbers, or None for the wildcard; computed once since match() reads it on every request.
    keys: list[str] | None = field(init=False)

    def __post_init__(self) -> None:
        self.keys = None if self.spec.numbers == "*" else [normalise_number(n) for n in self.spec.numbers]

    @property
    def kind(self) -> FaultKind:
        return self.spec.kind

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def used_up(self, number: str) -> bool:
        return self.spec.times is not None and self.hits.get(number, 0) >= self.spec.times

    def exhausted(self) -> bool:
        """True when no number can ever match again (only possible for explicit number lists with `times`)."""
        return self.keys is not None and all(self.used_up(key) for key in self.keys)

    def describe(self) -> dict[str, Any]:
        expires_at = None
        if self.spec.duration_seconds is not None:
            expires_at = iso_millis(self.created_at + timedelta(seconds=self.spec.duration_seconds))
        return {
            "id": self.id,
            **self.spec.model_dump(),
            "created_at": iso_millis(self.created_at),
            "expires_at": expires_at,
            "answered": self.answered,
        }


class FaultBook:
    """The active fault rules, indexed by normalised number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._rules: dict[str, FaultRule] = {}
        # Each list is in creation order, so the newest candidates are at the end.
        self._by_number: dict[str, list[FaultRule]] = {}
        self._wildcard: list[FaultRule] = []

    def add(self, spec: FaultSpec) -> FaultRule:
        deadline = None if spec.duration_seconds is None else time.monotonic() + spec.duration_seconds
        with self._lock:
            rule = FaultRule(spec=spec, seq=next(self._seq), deadline=deadline)
            self._rules[rule.id] = rule
            keys = rule.keys
            if keys is None:
                self._wildcard.append(rule)
            for key in keys or ():
                self._by_number.setdefault(key, []).append(rule)
        return rule

    def match(self, number: str) -> FaultRule | None:
        """The newest rule still answering for `number`, with its use for that number counted; else None."""
        key = normalise_number(number)
        with self._lock:
            specific = self._by_number.get(key)
            if not specific and not self._wildcard:
                return None
            now = time.monotonic()
            # Few rules per number: sorting the two short candidate lists is cheaper than being clever.
            candidates: list[FaultRule] = [*(specific or ()), *self._wildcard]
            for rule in sorted(candidates, key=lambda r: r.seq, reverse=True):
                if rule.expired(now):
                    self._drop(rule)
                    continue
                if rule.used_up(key):
                    continue
                rule.hits[key] = rule.hits.get(key, 0) + 1
                rule.answered += 1
                return rule
        return None

    def active(self) -> list[FaultRule]:
        """Rules that can still match, oldest first; drops the others on the way."""
        now = time.monotonic()
        with self._lock:
            for rule in list(self._rules.values()):
                if rule.expired(now) or rule.exhausted():
                    self._drop(rule)
            return list(self._rules.values())

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            rule = self._rules.get(rule_id)
            if rule is not None:
                self._drop(rule)
            return rule is not None

    def clear(self) -> int:
        with self._lock:
            dropped = len(self._rules)
            self._rules = {}
            self._by_number = {}
            self._wildcard = []
        return dropped

    def _drop(self, rule: FaultRule) -> None:
        # Caller holds the lock.
        self._rules.pop(rule.id, None)
        keys = rule.keys
        if keys is None:
            self._wildcard = [r for r in self._wildcard if r is not rule]
        for key in keys or ():
            remaining = [r for r in self._by_number.get(key, ()) if r is not rule]
            if remaining:
                self._by_number[key] = remaining
            else:
                self._by_number.pop(key, None)
