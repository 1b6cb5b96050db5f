"""Errors a user can act on. The API turns them into 4xx answers whose JSON names the field.

The body of a 422 has FastAPI's shape, so clients parse one format:
`{"detail": [{"loc": ["body", "contacts", 3, "phone"], "msg": "...", "type": "..."}]}`.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import ValidationError

Loc = tuple[str | int, ...]

# A payload with 100,000 bad phones should not produce a 100,000-item answer.
MAX_ERRORS = 50


class SpecError(Exception):
    """The submission cannot be accepted; `errors` lists every offending field found."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]))
        self.errors = errors[:MAX_ERRORS]

    @classmethod
    def single(cls, loc: Loc, msg: str, type_: str = "value_error") -> Self:
        return cls([item(loc, msg, type_)])

    @classmethod
    def from_pydantic(cls, exc: ValidationError) -> Self:
        errors = exc.errors(include_url=False)
        return cls([item(tuple(e["loc"]), user_message(e["msg"]), e["type"]) for e in errors])


def user_message(msg: str) -> str:
    """A pydantic error message as our validators wrote it: without pydantic's "Value error, " prefix."""
    return msg.removeprefix("Value error, ")


def item(loc: Loc, msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


class Collector:
    """Gathers errors across a whole payload, so one answer names them all."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def add(self, loc: Loc, msg: str, type_: str = "value_error") -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(item(loc, msg, type_))

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecError(self.errors)


class InputError(SpecError):
    """Like SpecError, for input outside the JSON body: each `loc` starts with where it is ("query",
    "header", or "body" for an uploaded file), and is answered as is."""


class TooLarge(Exception):
    """The request is larger than we accept (answered 413)."""


class UnsupportedMediaType(Exception):
    """The body's Content-Type is not one the route reads (answered 415)."""


class NotFound(Exception):
    """An id that does not exist in the caller's account (another account's id looks the same)."""

    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"{what} {ident} not found")
        self.what = what
        self.ident = ident


class IdempotencyMismatch(Exception):
    """An Idempotency-Key reused with a different payload (answered 422, as the IETF draft says)."""


class Conflict(Exception):
    """The request contradicts the resource's current state (e.g. resuming a cancelled campaign)."""
