"""Provider callback bodies, read defensively into what the dispatcher acts on.

A signed body is authentic, not necessarily well formed: Meta batches many entries in one POST, adds
fields over time, and a provider bug or an API version change can send an item we cannot read. One
unreadable item is skipped (and counted), never a 500: Meta retries a failed webhook for days, so a
500 would replay the whole batch, and the readable items in it would wait behind the broken one.

Values are also fitted to what the database stores: NUL characters (PostgreSQL refuses them in text)
are dropped from free text and make an id unreadable; codes and names are cut to their column sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from dispatcher.tracking.receipts import StatusEvent

# Column sizes in dispatcher/db/models.py: Message.error_code, Contact.name.
ERROR_CODE_MAX = 32
NAME_MAX = 200
# Latest timestamp read as given (year 9999 overflows on some platforms; later ones mean "now").
TIMESTAMP_MAX = 253_402_300_799

M = TypeVar("M", bound=BaseModel)

_TWILIO_STATUSES = {"delivered": "delivered", "read": "read", "failed": "failed", "undelivered": "failed"}


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL character")
    return value


def _strip_nul(value: Any) -> Any:
    return value.replace("\x00", "") if isinstance(value, str) else value


Id = Annotated[str, BeforeValidator(_no_nul), Field(min_length=1, max_length=512)]
Text = Annotated[str, BeforeValidator(_strip_nul)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _ErrorData(_Lenient):
    details: Text | None = None


class _Error(_Lenient):
    code: int | Text | None = None
    title: Text | None = None
    message: Text | None = None
    error_data: _ErrorData | None = None


class _Status(_Lenient):
    id: Id
    status: Id
    errors: list[_Error] = []


class _Body(_Lenient):
    body: Text | None = None


class _Message(_Lenient):
    sender: Id = Field(alias="from")
    timestamp: Any = None  # a string of seconds on the wire; unreadable means now
    text: _Body | None = None


class _Profile(_Lenient):
    name: Text | None = None


class _Contact(_Lenient):
    wa_id: Id
    profile: _Profile | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """A reply: who sent it (as the provider wrote the number), what and when, and their profile name."""

    sender: str
    text: str | None
    at: datetime
    name: str | None


@dataclass(slots=True)
class MetaBatch:
    statuses: list[StatusEvent] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    skipped: int = 0


def meta_batch(payload: Any) -> MetaBatch:
    """Every status event and inbound message of a Meta webhook body, in order; unreadable items skipped."""
    batch = MetaBatch()
    for value in _values(payload):
        for item in _list(value.get("statuses")):
            status = _read(_Status, item, batch)
            if status is not None:
                batch.statuses.append(_status_event(status))
        names = _profile_names(_list(value.get("contacts")), batch)
        for item in _list(value.get("messages")):
            message = _read(_Message, item, batch)
            if message is not None:
                text = message.text.body if message.text else None
                batch.inbound.append(Inbound(message.sender, text, _at(message.timestamp), names.get(message.sender)))
    return batch


def twilio_event(params: dict[str, str]) -> StatusEvent | None:
    """A Twilio status callback as a status event; None for states we do not track or an unreadable sid."""
    new_status = _TWILIO_STATUSES.get(params.get("MessageStatus", ""))
    sid = params.get("MessageSid", "")
    if new_status is None or not sid or "\x00" in sid:
        return None
    code = _strip_nul(params.get("ErrorCode") or "")[:ERROR_CODE_MAX] or None
    text = f"Twilio {params['MessageStatus']}" if new_status == "failed" else None
    return StatusEvent(sid, new_status, code, text)


def _values(payload: Any) -> list[dict[str, Any]]:
    """Every change value of a Meta webhook (one POST can batch many entries and changes)."""
    values: list[dict[str, Any]] = []
    entries = payload.get("entry") if isinstance(payload, dict) else None
    for entry in _list(entries):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            if isinstance(change, dict) and isinstance(change.get("value"), dict):
                values.append(change["value"])
    return values


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _read(model: type[M], item: Any, batch: MetaBatch) -> M | None:
    try:
        return model.model_validate(item)
    except ValidationError:
        batch.skipped += 1
        return None


def _status_event(status: _Status) -> StatusEvent:
    error = status.errors[0] if status.errors else _Error()
    details = error.error_data.details if error.error_data else None
    text = details or error.message or error.title
    code = str(error.code)[:ERROR_CODE_MAX] if error.code is not None else None
    return StatusEvent(status.id, status.status, code, text)


def _profile_names(items: list[Any], batch: MetaBatch) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for item in items:
        contact = _read(_Contact, item, batch)
        if contact is not None:
            name = contact.profile.name if contact.profile else None
            names[contact.wa_id] = name[:NAME_MAX] if name else None
    return names


def _at(timestamp: Any) -> datetime:
    try:
        seconds = int(timestamp)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC)
    if not 0 < seconds <= TIMESTAMP_MAX:
        return datetime.now(UTC)
    return datetime.fromtimestamp(seconds, UTC)
