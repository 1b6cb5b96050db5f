"""SMS personalisation: `@variables` in the campaign text, filled per contact.

Built-ins: `@nom_complet` (full name), `@prenom` (first name), `@nom` (last name), `@telephone`.
Any other `@name` is a custom field of the contact. An `@` preceded by a letter, digit or dot is
not a variable, so e-mail addresses in a text stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VARIABLE = re.compile(r"(?<![\w.@])@([A-Za-z_][A-Za-z0-9_]*)")
BUILTINS = ("nom_complet", "prenom", "nom", "telephone")
# The same, capturing one preceding space that an empty value removes with it.
_WITH_SPACE = re.compile(r"( ?)" + VARIABLE.pattern)


@dataclass(frozen=True, slots=True)
class Person:
    """What personalisation reads from a contact."""

    phone: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    fields: Mapping[str, object] | None = None


def variables_in(text: str) -> list[str]:
    """The distinct variable names in `text`, in order of first use."""
    return list(dict.fromkeys(VARIABLE.findall(text)))


def custom_variables(text: str) -> list[str]:
    return [name for name in variables_in(text) if name not in BUILTINS]


def missing_fields(person: Person, names: Iterable[str]) -> list[str]:
    """Custom variables this person has no value for."""
    fields = person.fields or {}
    return [name for name in names if name not in BUILTINS and fields.get(name) in (None, "")]


def values_for(person: Person) -> dict[str, str]:
    full = person.name or " ".join(p for p in (person.first_name, person.last_name) if p)
    values = {str(k): _text(v) for k, v in (person.fields or {}).items()}
    values.update(
        nom_complet=full,
        prenom=person.first_name or "",
        nom=person.last_name or "",
        telephone=person.phone,
    )
    return values


def render(text: str, person: Person) -> str:
    """Fill every variable. A built-in with no value disappears with the space before it
    ("Bonjour @prenom," -> "Bonjour,") rather than leaving a double space."""
    if "@" not in text:
        return text
    values = values_for(person)

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(2), "")
        return match.group(1) + value if value else ""

    return _WITH_SPACE.sub(fill, text)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
