"""One API call described as data (`Call`), and the I/O-free halves shared by the sync and async clients:
building the JSON body and turning an `httpx.Response` into a typed result or a typed error."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from dispatcher.client.errors import DispatcherError, error_for

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

Params = dict[str, str | int | float]


# Bytes of a file read and sent at a time: an upload is never held whole in memory.
UPLOAD_PIECE = 1 << 16


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent as the request body, read piece by piece while it is sent (by the executors)."""

    path: Path
    content_type: str


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """What to send (method, path, query, JSON body or a file, headers) and how to read the answer (`parse`)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Params = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    upload: Upload | None = None

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `httpx.Client.request` / `httpx.AsyncClient.request`; an upload's body is
        added by the executor (a sync or an async reader of the file)."""
        headers = {**self.headers, "Content-Type": self.upload.content_type} if self.upload else self.headers
        kwargs: dict[str, Any] = {"params": self.params or None, "headers": headers or None}
        if self.body is not None:
            kwargs["json"] = self.body
        return kwargs


def handle(call: Call[T], response: httpx.Response) -> T:
    """The call's typed result, or the typed error the answer describes."""
    if response.status_code >= 400:
        raise error_for(response)
    try:
        data: Any = response.json() if response.content else None
    except ValueError:
        raise DispatcherError(
            f"HTTP {response.status_code}: the answer is not JSON: {response.text[:200]!r}",
            status_code=response.status_code,
            body=response.text,
            response=response,
        ) from None
    try:
        return call.parse(data)
    except (pydantic.ValidationError, TypeError, KeyError) as exc:
        raise DispatcherError(
            f"HTTP {response.status_code}: unexpected answer to {call.method} {call.path}: {exc}",
            status_code=response.status_code,
            body=data,
            response=response,
        ) from exc


def streamed(_: Any) -> None:
    """The `parse` of a call whose answer is streamed as bytes (`SyncResource._stream`), never parsed."""
    return None


def check_streamed(call: Call[Any], response: httpx.Response) -> None:
    """Raise the typed error an answer describes (its body must have been read), or a `DispatcherError` if
    its media type is not the one the call's `Accept` header asked for (a server without that format)."""
    if response.status_code >= 400:
        raise error_for(response)
    wanted = call.headers.get("Accept", "")
    got = response.headers.get("content-type", "").split(";")[0].strip()
    if wanted and got != wanted:
        raise DispatcherError(
            f"HTTP {response.status_code}: {call.method} {call.path} answered {got or 'no content type'}, not {wanted}",
            status_code=response.status_code,
            response=response,
        )


def model(cls: type[ModelT]) -> Callable[[Any], ModelT]:
    """A parser validating the answer as `cls`."""
    return cls.model_validate


def model_list(cls: type[ModelT]) -> Callable[[Any], list[ModelT]]:
    """A parser for `{"data": [...]}` (or a bare JSON array) of `cls`."""

    def parse(data: Any) -> list[ModelT]:
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise TypeError(f"expected a list of {cls.__name__}, got {type(items).__name__}")
        return [cls.model_validate(item) for item in items]

    return parse


def path(*parts: str | int) -> str:
    """`/v1/...` from fixed segments and ids; ids are percent-encoded and must not be empty."""
    out = []
    for part in parts:
        text = str(part)
        if not text.strip():
            raise ValueError(f"an id cannot be empty (in {'/'.join(map(str, parts))!r})")
        out.append(quote(text, safe=""))
    return "/" + "/".join(out)


def query(**values: str | int | float | None) -> Params:
    """The query string's parameters, leaving out those not given (the server's defaults apply)."""
    return {k: v for k, v in values.items() if v is not None}


def iso(value: datetime | date | str) -> str:
    """ISO 8601; a naive datetime is read as the local time of this machine and sent with its offset."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.astimezone()).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def time_of_day(value: datetime | time | str) -> str:
    """A recurring slot's time of day as written ("HH:MM", or "HH:MM:SS"); the date and offset are dropped."""
    if isinstance(value, datetime):
        value = value.time()
    if isinstance(value, time):
        return value.replace(tzinfo=None).isoformat("minutes" if value.second == value.microsecond == 0 else "auto")
    return value


def jsonable(value: Any) -> Any:
    """`value` with datetimes as ISO strings, pydantic models dumped by alias and tuples as lists."""
    if isinstance(value, pydantic.BaseModel):
        return jsonable(value.model_dump(by_alias=True, exclude_none=True))
    if isinstance(value, datetime | date):
        return iso(value)
    if isinstance(value, time):
        return time_of_day(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [jsonable(v) for v in value]
    json.dumps(value)  # anything else must already be JSON: fail here, not inside httpx
    return value


def compact(**values: Any) -> dict[str, Any]:
    """A JSON object of the values given (None left out, so the server's defaults apply)."""
    return {k: jsonable(v) for k, v in values.items() if v is not None}
