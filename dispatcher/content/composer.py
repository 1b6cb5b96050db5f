"""Turns a campaign text and a contact into the exact SMS that will be sent, with its encoding and segments."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.content.encoding import analyse
from dispatcher.content.personalisation import Person, render

# Providers cap concatenated SMS (Twilio: 1,600 chars, about 10 GSM segments); beyond that it is a mistake.
MAX_SEGMENTS = 10


@dataclass(frozen=True, slots=True)
class ComposedSms:
    body: str
    encoding: str
    segments: int


def compose_sms(text: str, person: Person) -> ComposedSms:
    body = render(text, person)
    layout = analyse(body)
    return ComposedSms(body=body, encoding=str(layout.encoding), segments=layout.segments)
