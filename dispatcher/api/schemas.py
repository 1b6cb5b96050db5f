"""Request and response models of the resources API (senders, contacts, groups), named by role."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatcher.campaigns.payloads import Fields, Scalar
from dispatcher.content.phones import PhoneError, normalize


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _e164(value: str | int | None) -> str:
    """A contact's phone in E.164, or a message a user understands."""
    if value is None:
        raise ValueError("a contact keeps a phone: give a new number or leave phone out")
    try:
        return normalize(value)
    except PhoneError as exc:
        raise ValueError(str(exc)) from None


class SenderCreate(_In):
    channel: Literal["sms", "whatsapp"] = "sms"
    label: str = Field(min_length=1, max_length=100, description='The SMS sender name ("My Sender") or WhatsApp id')
    provider: Literal["sandbox", "twilio", "whatsapp_cloud"] = "sandbox"
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Provider base URL and credentials. Stored, never returned or logged."
    )
    active: bool = True
    default: bool = False
    rate: float | None = Field(default=None, gt=0, le=10_000, description="Messages per second (sms 10, whatsapp 80)")
    burst: int = Field(default=10, ge=1, le=100_000)


class SenderUpdate(_In):
    """Only the keys given change. `settings` are merged into the saved ones (null removes a key); the
    channel and provider of a sender never change: add another sender instead."""

    label: str | None = Field(default=None, min_length=1, max_length=100)
    settings: dict[str, Any] | None = None
    active: bool | None = None
    default: bool | None = None
    rate: float | None = Field(default=None, gt=0, le=10_000)
    burst: int | None = Field(default=None, ge=1, le=100_000)


class SenderPublic(BaseModel):
    id: str
    channel: str
    label: str
    provider: str
    active: bool
    default: bool
    rate: float
    burst: int
    createdAt: datetime


class ContactCreate(_In):
    phone: str | int
    name: str | None = Field(default=None, max_length=200)
    firstName: str | None = Field(default=None, max_length=100)
    lastName: str | None = Field(default=None, max_length=100)
    sex: Literal["M", "F"] | None = None
    fields: Fields = Field(default_factory=dict, description="Custom fields, used as @name in texts")

    _phone = field_validator("phone")(_e164)


class ContactUpdate(_In):
    """Only the keys given change; null clears a name, and a field set to null is removed."""

    phone: str | int | None = None
    name: str | None = Field(default=None, max_length=200)
    firstName: str | None = Field(default=None, max_length=100)
    lastName: str | None = Field(default=None, max_length=100)
    sex: Literal["M", "F"] | None = None
    # Checked by the route against the saved fields: a removal (null) is always allowed.
    fields: dict[str, Scalar] | None = Field(default=None, description="Merged into the saved fields; null removes one")

    _phone = field_validator("phone")(_e164)


class GroupCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    contactIds: list[str | int] = Field(default_factory=list, max_length=100_000)


class GroupUpdate(_In):
    name: str = Field(min_length=1, max_length=200)


class GroupPublic(BaseModel):
    id: str
    name: str
    size: int
    createdAt: datetime


class GroupMembersAdd(_In):
    contactIds: list[str | int] = Field(default_factory=list, max_length=100_000)
    contacts: list[ContactCreate] = Field(default_factory=list, max_length=100_000)


class ImportRowError(BaseModel):
    """A row not imported: its line in the file (the header is line 1), the column at fault, why."""

    line: int
    column: str | None
    reason: str


class ImportPublic(BaseModel):
    """A contact import; the counters move as the worker goes (`rows` = created + updated + invalid)."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    statusReason: str | None = None
    groupId: str | None
    format: Literal["csv", "ndjson"]
    country: str | None
    rows: int
    created: int
    updated: int
    invalid: int
    errors: list[ImportRowError] = Field(description="The first 1,000 rows not imported")
    ignoredColumns: list[str] = Field(description="Columns that set nothing: no text can name them as @field")
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    updatedAt: datetime
