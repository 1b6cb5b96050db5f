"""The two documented submission shapes, parsed into one internal `CampaignSpec`.

- the SMS document's campaign object: `name`, `contacts`, `groupsIds`, `text`, `senderId`, `type`...
- the WhatsApp document's envelope: `title`, `start_datetime`, `contacts_and_data` with the global
  configuration under `_` (or `*`, as the playground writes it) and `contacts`.

Both keep the location of every field in the original payload, so a later check (a phone, a contact
id, a variable) can name the exact field and contact index in its 422 answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dispatcher.errors import Loc, SpecError
from dispatcher.inputs import FIELD_NAME, date_problem, fields_problem

Scalar = str | int | float | bool | None


def _storable(fields: dict[str, Scalar]) -> dict[str, Scalar]:
    problem = fields_problem(fields)
    if problem is not None:
        raise ValueError(problem)
    return fields


# A contact's custom fields, bounded as `dispatcher.inputs.fields_problem` says.
Fields = Annotated[dict[str, Scalar], AfterValidator(_storable)]


def _schedulable(value: datetime) -> datetime:
    problem = date_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A date to fire at or until: refused at parse time when too far ahead or beyond what UTC can hold.
ScheduleDate = Annotated[datetime, AfterValidator(_schedulable)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SmsContactIn(BaseModel):
    """A recipient: `id` of a saved contact and/or `phone`. Extra keys are custom fields (`@ville`)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str | int | None = None
    phone: str | int | None = None
    name: str | None = Field(default=None, max_length=200)
    firstName: str | None = Field(default=None, max_length=100)
    lastName: str | None = Field(default=None, max_length=100)
    sex: Literal["M", "F"] | None = None
    fields: Fields = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_id_or_phone(self) -> SmsContactIn:
        if self.id is None and self.phone is None:
            raise ValueError("a contact needs a phone (or the id of a saved contact)")
        # Extra keys are custom fields too: the same limits, on what will be stored (most contacts have none:
        # a 100k list would otherwise build 100k empty dicts here).
        if self.model_extra or self.fields:
            _storable(self.custom_fields())
        return self

    def custom_fields(self) -> dict[str, Scalar]:
        # Extra keys no text can name (`"Code postal"`, `"e-mail"`: a spreadsheet's headers) are left out.
        extra = {k: v for k, v in (self.model_extra or {}).items() if isinstance(v, Scalar) and FIELD_NAME.fullmatch(k)}
        return {**extra, **self.fields}


class SmsCampaignIn(_Strict):
    """The SMS document's `sms.campain.create(...)` object."""

    name: str | None = Field(default=None, max_length=200)
    contacts: list[SmsContactIn] = Field(default_factory=list, max_length=100_000)
    groupsIds: list[str | int] = Field(default_factory=list, max_length=1000)
    text: str = Field(min_length=1, max_length=5000)
    senderId: str | int | None = None
    type: Literal["SMS", "SCHEDULED", "RECURRING"] = "SMS"
    scheduledDate: ScheduleDate | None = None
    recurring: dict[str, Any] | None = None
    timezone: str | None = None
    recurringUntil: ScheduleDate | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _standard_is_sms(cls, value: object) -> object:
        # The SMS document's type for "send now" is "SMS"; its prose calls it a standard campaign.
        return "SMS" if value == "STANDARD" else value


class EnvelopeContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    wa_id: str | int | None = None
    phone: str | int | None = None
    name: str | None = Field(default=None, max_length=200)
    data: Fields = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_number(self) -> EnvelopeContactIn:
        if self.wa_id is None and self.phone is None:
            raise ValueError("a contact needs wa_id (WhatsApp) or phone (SMS)")
        return self


class EnvelopeGlobalIn(_Strict):
    channel: Literal["whatsapp", "sms"]
    sender_label_id: str | int | None = None
    message_template_id: str | int | None = None
    text: str | None = Field(default=None, max_length=5000)
    conversation_tags: list[str] = Field(default_factory=list, max_length=50)
    trigger: Literal["any-reply"] | None = None

    @field_validator("conversation_tags")
    @classmethod
    def _tags_not_blank(cls, tags: list[str]) -> list[str]:
        if any(not t.strip() for t in tags):
            raise ValueError("conversation tags cannot be empty")
        return [t.strip() for t in tags]


class ContactsAndDataIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    underscore: EnvelopeGlobalIn | None = Field(default=None, alias="_")
    star: EnvelopeGlobalIn | None = Field(default=None, alias="*")
    contacts: list[EnvelopeContactIn] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_global(self) -> ContactsAndDataIn:
        if (self.underscore is None) == (self.star is None):
            raise ValueError('give the global configuration once, under "_" (or "*")')
        return self

    @property
    def global_key(self) -> str:
        return "_" if self.underscore is not None else "*"

    @property
    def config(self) -> EnvelopeGlobalIn:
        config = self.underscore or self.star
        assert config is not None
        return config


class EnvelopeIn(_Strict):
    """The WhatsApp document's `POST /v1/campaigns` payload (also used with `channel: "sms"`)."""

    title: str = Field(min_length=1, max_length=200)
    start_datetime: ScheduleDate | None = None
    contacts_and_data: ContactsAndDataIn


@dataclass(slots=True)
class RecipientSpec:
    """One listed recipient, with where it came from in the payload."""

    loc: Loc
    contact_id: str | int | None = None
    phone: str | int | None = None
    phone_field: str = "phone"
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    sex: str | None = None
    fields: dict[str, Scalar] = field(default_factory=dict)
    data: dict[str, Scalar] | None = None


@dataclass(slots=True)
class CampaignSpec:
    """What to send, to whom and when, whatever the payload shape. `locs` maps logical fields to payload fields."""

    name: str
    channel: str
    type: str
    text: str | None
    sender_ref: str | int | None
    recipients: list[RecipientSpec]
    group_ids: list[str | int] = field(default_factory=list)
    template_ref: str | int | None = None
    scheduled_at: datetime | None = None
    recurring: dict[str, Any] | None = None
    timezone: str | None = None
    recurring_until: datetime | None = None
    conversation_tags: list[str] = field(default_factory=list)
    trigger: str | None = None
    locs: dict[str, Loc] = field(default_factory=dict)


def parse(payload: object) -> CampaignSpec:
    """Parse either documented shape; raise SpecError naming every offending field."""
    if not isinstance(payload, dict):
        raise SpecError.single((), "the body must be a JSON object", "type_error")
    try:
        if "contacts_and_data" in payload:
            return _from_envelope(EnvelopeIn.model_validate(payload))
        return _from_sms(SmsCampaignIn.model_validate(payload))
    except ValidationError as exc:
        raise SpecError.from_pydantic(exc) from None


def _from_sms(doc: SmsCampaignIn) -> CampaignSpec:
    recipients = [
        RecipientSpec(
            loc=("contacts", i),
            contact_id=c.id,
            phone=c.phone,
            name=c.name,
            first_name=c.firstName,
            last_name=c.lastName,
            sex=c.sex,
            fields=c.custom_fields(),
        )
        for i, c in enumerate(doc.contacts)
    ]
    return CampaignSpec(
        name=doc.name or "",
        channel="sms",
        type=doc.type,
        text=doc.text,
        sender_ref=doc.senderId,
        recipients=recipients,
        group_ids=list(doc.groupsIds),
        scheduled_at=doc.scheduledDate,
        recurring=doc.recurring,
        timezone=doc.timezone,
        recurring_until=doc.recurringUntil,
        locs={
            "text": ("text",),
            "sender": ("senderId",),
            "groups": ("groupsIds",),
            "contacts": ("contacts",),
            "scheduled_at": ("scheduledDate",),
            "recurring": ("recurring",),
            "timezone": ("timezone",),
            "recurring_until": ("recurringUntil",),
        },
    )


def _from_envelope(doc: EnvelopeIn) -> CampaignSpec:
    cad = doc.contacts_and_data
    config = cad.config
    g = ("contacts_and_data", cad.global_key)
    if config.channel == "sms" and not config.text:
        raise SpecError.single((*g, "text"), 'an SMS campaign needs "text" in the global configuration', "missing")
    recipients = [
        RecipientSpec(
            loc=("contacts_and_data", "contacts", i),
            phone=c.wa_id if c.wa_id is not None else c.phone,
            phone_field="wa_id" if c.wa_id is not None else "phone",
            name=c.name,
            fields=dict(c.data) if config.channel == "sms" else {},
            data=dict(c.data),
        )
        for i, c in enumerate(cad.contacts)
    ]
    return CampaignSpec(
        name=doc.title,
        channel=config.channel,
        type="SCHEDULED" if doc.start_datetime is not None else "SMS",
        text=config.text,
        sender_ref=config.sender_label_id,
        template_ref=config.message_template_id,
        recipients=recipients,
        scheduled_at=doc.start_datetime,
        conversation_tags=config.conversation_tags,
        trigger=config.trigger,
        locs={
            "text": (*g, "text"),
            "sender": (*g, "sender_label_id"),
            "template": (*g, "message_template_id"),
            "contacts": ("contacts_and_data", "contacts"),
            "scheduled_at": ("start_datetime",),
            "groups": ("groupsIds",),
        },
    )
