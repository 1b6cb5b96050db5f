"""One recipient's message, rendered, or the reasons it cannot be: the one rule for submission and fan-out.

Submission renders every recipient to refuse a campaign that cannot be sent (a 422 naming each field);
fan-out renders them again when the run starts, since contacts, groups and data may have changed since,
and skips a recipient it refuses rather than sending a broken message. A `Renderer` is built once per
campaign, so the work per recipient is the rendering itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from dispatcher.content import templates
from dispatcher.content.encoding import Encoding, analyse
from dispatcher.content.personalisation import Person, custom_variables, missing_fields, render
from dispatcher.db.models import Template

# Providers cap concatenated SMS (Twilio: 1,600 chars, about 10 GSM segments); beyond that it is a mistake.
MAX_SEGMENTS = 10

Data = Mapping[str, object]


class RefusalCode(enum.StrEnum):
    """Why a message cannot be sent; a skipped message row keeps it as its error code."""

    VARIABLE = "variable"  # the contact has no value for a custom @variable of the text
    TEMPLATE_DATA = "template_data"  # the data does not fill the template's {{n}} as Meta requires
    TOO_LONG = "too_long"  # the personalised text makes more than MAX_SEGMENTS segments
    EMPTY = "empty"  # nothing is left of the text once personalised


@dataclass(frozen=True, slots=True)
class Reason:
    """One thing that stops a recipient's message, in the words a 422 or a skipped row shows."""

    code: RefusalCode
    text: str
    # Where the fault is within the recipient, e.g. ("fields",) or ("data", "2"); None: in the campaign's text.
    key: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Every reason found (at least one), so a 422 can name them all; a skipped row keeps the first."""

    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Rendered:
    """The message exactly as it will be sent: the columns of its message row."""

    body: str
    segments: int
    encoding: Encoding | None = None  # SMS only
    template_params: list[str] | None = None  # WhatsApp only, in template order


class Renderer:
    """Renders one campaign's message per recipient: an SMS text or a WhatsApp template."""

    __slots__ = ("_custom", "_keys", "_template", "_text", "_wanted")

    def __init__(self, *, text: str | None = None, template: Template | None = None) -> None:
        if (text is None) == (template is None):
            raise ValueError("a renderer needs a text or a template")
        self._text = text
        self._custom = custom_variables(text) if text is not None else []
        # Read once: row after row, ORM attribute access would add up.
        self._template = _Template(template.name, template.body, template.variables) if template else None
        self._keys = tuple(str(i) for i in range(1, template.variables + 1)) if template else ()
        self._wanted = frozenset(self._keys)

    def render(self, person: Person, data: Data | None) -> Rendered | Refusal:
        """The message for this person (SMS) or this data (WhatsApp: exactly the keys "1".."n")."""
        if self._text is not None:
            return self._sms(self._text, person)
        assert self._template is not None
        return self._whatsapp(self._template, data or {})

    def _sms(self, text: str, person: Person) -> Rendered | Refusal:
        missing = missing_fields(person, self._custom)
        if missing:
            names = ", ".join("@" + m for m in missing)
            msg = f"unknown variable {names}: contact {person.phone} has no such field"
            return Refusal((Reason(RefusalCode.VARIABLE, msg, ("fields",)),))
        body = render(text, person)
        layout = analyse(body)
        if layout.segments > MAX_SEGMENTS:
            msg = f"the text makes {layout.segments} SMS segments (at most {MAX_SEGMENTS})"
            return Refusal((Reason(RefusalCode.TOO_LONG, msg),))
        if layout.segments == 0:
            msg = f"the text is empty once personalised for contact {person.phone}"
            return Refusal((Reason(RefusalCode.EMPTY, msg),))
        return Rendered(body=body, segments=layout.segments, encoding=layout.encoding)

    def _whatsapp(self, template: _Template, data: Data) -> Rendered | Refusal:
        reasons = [] if self._wanted == data.keys() else self._key_reasons(template, data)
        for key in self._keys:
            problem = templates.parameter_problem(data[key]) if key in data else None
            if problem:
                reasons.append(Reason(RefusalCode.TEMPLATE_DATA, problem, ("data", key)))
        if reasons:
            return Refusal(tuple(reasons))
        params = templates.parameters(data, template.variables)
        return Rendered(body=templates.render(template.body, params), segments=1, template_params=params)

    def _key_reasons(self, template: _Template, data: Data) -> list[Reason]:
        """Each missing key, then each extra one."""
        has = f"template {template.name!r} has {template.variables} variable(s)"
        missing = [
            Reason(RefusalCode.TEMPLATE_DATA, f"missing {{{{{key}}}}}: {has}", ("data", key))
            for key in self._keys
            if key not in data
        ]
        extra = [
            Reason(RefusalCode.TEMPLATE_DATA, f"{has}; {key!r} is not one of them", ("data", key))
            for key in sorted(data.keys() - self._wanted)
        ]
        return missing + extra


class _Template(NamedTuple):
    name: str
    body: str
    variables: int


@dataclass(slots=True)
class Totals:
    """What a campaign's rendered messages add up to. SMS figures stay None for a template campaign."""

    recipients: int = 0
    encoding: Encoding | None = None  # the worst: one UCS-2 message makes the campaign UCS-2
    segments: int | None = None  # the longest message
    total_segments: int | None = None

    def add(self, rendered: Rendered) -> None:
        self.recipients += 1
        if rendered.encoding is None:
            return  # a template message: no SMS segments
        if self.encoding is None or rendered.encoding != Encoding.GSM7:
            self.encoding = rendered.encoding
        self.segments = max(self.segments or 0, rendered.segments)
        self.total_segments = (self.total_segments or 0) + rendered.segments


class Personal(Protocol):
    """What a contact offers personalisation: a saved contact, or one a submission is creating."""

    @property
    def phone(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def fields(self) -> Mapping[str, Any] | None: ...


def to_person(contact: Personal) -> Person:
    return Person(
        phone=contact.phone,
        name=contact.name,
        first_name=contact.first_name,
        last_name=contact.last_name,
        fields=contact.fields,
    )
