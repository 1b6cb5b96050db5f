"""Typed errors raised by the client, one class per kind of answer the API gives.

Every error carries `status_code` (None when no answer was received) and `body`, the parsed JSON of the
answer (or its text when it was not JSON). The API answers 401/404/409 with `{"detail": "text"}` and 422
with `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`.
"""

from __future__ import annotations

from typing import Any

import httpx


class DispatcherError(Exception):
    """Base class of every client error; also raised as is for an answer no subclass describes."""

    def __init__(
        self, message: str, *, status_code: int | None = None, body: Any = None, response: httpx.Response | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.response = response


class AuthenticationError(DispatcherError):
    """401: the Bearer token is missing, invalid or revoked."""


class NotFoundError(DispatcherError):
    """404: no such resource in this account (another account's ids answer the same)."""


class ConflictError(DispatcherError):
    """409: the request contradicts the resource's state (e.g. pausing a campaign that was sent)."""


class ServerError(DispatcherError):
    """5xx: the server failed; retrying later may help (use an Idempotency-Key when creating)."""


class TransportError(DispatcherError):
    """No answer: connection refused, DNS failure, timeout... `__cause__` is the httpx exception."""


class ValidationError(DispatcherError):
    """422: the request was refused; `errors` lists every offending field as `{loc, msg, type}`.

    `str()` names each field path, e.g. `contacts.0.phone: ...`, without the leading `body` of `loc`.
    """

    def __init__(
        self,
        errors: list[dict[str, Any]],
        *,
        status_code: int | None = 422,
        body: Any = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.errors = errors
        lines = [f"{path}: {item.get('msg', '')}" for path, item in zip(self.field_paths, errors, strict=True)]
        summary = "; ".join(lines) if lines else "the request was refused"
        super().__init__(f"invalid request: {summary}", status_code=status_code, body=body, response=response)

    @property
    def field_paths(self) -> list[str]:
        """Each error's `loc` as a dotted path, `body` left out: `["contacts.0.phone", "text"]`."""
        return [field_path(item.get("loc", [])) for item in self.errors]


def field_path(loc: Any) -> str:
    """`["body", "contacts", 0, "phone"]` -> `"contacts.0.phone"`; other sources (`header`, `query`) are kept."""
    parts = [str(p) for p in loc] if isinstance(loc, list | tuple) else [str(loc)]
    if len(parts) > 1 and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "(request)"


_BY_STATUS: dict[int, type[DispatcherError]] = {401: AuthenticationError, 404: NotFoundError, 409: ConflictError}


def error_for(response: httpx.Response) -> DispatcherError:
    """The typed error describing an answer of status 400 or more."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail = body.get("detail") if isinstance(body, dict) else None
    status = response.status_code
    if status == 422 and isinstance(detail, list):
        items = [d if isinstance(d, dict) else {"loc": [], "msg": str(d), "type": "unknown"} for d in detail]
        return ValidationError(items, status_code=status, body=body, response=response)
    if isinstance(detail, list):  # a refusal in the 422's shape under another status (413: too large)
        text = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    else:
        text = detail if isinstance(detail, str) else (str(body)[:300] if body else response.reason_phrase)
    message = f"HTTP {status}: {text}"
    if status == 422:
        return ValidationError(
            [{"loc": [], "msg": text, "type": "unknown"}], status_code=status, body=body, response=response
        )
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else DispatcherError)
    return cls(message, status_code=status, body=body, response=response)
