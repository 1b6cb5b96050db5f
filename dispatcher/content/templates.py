"""WhatsApp templates: their `{{n}}` variables and Meta's rules for parameter values."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.audience.contacts import parse_id
from dispatcher.db.models import Template

PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}", re.ASCII)
# Meta refuses every send whose body parameter is empty or holds a newline, a tab or 4+ spaces in a row.
_FORBIDDEN = re.compile(r"[\n\r\t]| {4,}")


def variable_count(body: str) -> int:
    """How many parameters the body takes; they must be {{1}}..{{n}} with none skipped."""
    numbers = sorted({int(n) for n in PLACEHOLDER.findall(body)})
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"variables must be {{{{1}}}} to {{{{n}}}} with none missing; found {numbers}")
    return len(numbers)


def parameter_problem(value: object) -> str | None:
    """Why Meta would refuse this parameter value, or None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "a template parameter cannot be empty"
    text = str(value)
    if _FORBIDDEN.search(text):
        return "a template parameter cannot contain a newline, a tab or four spaces in a row"
    if len(text) > 1024:
        return "a template parameter is limited to 1024 characters"
    return None


def parameters(data: Mapping[str, object], count: int) -> list[str]:
    """The values in template order ("1", "2", ...), as text."""
    return [_text(data[str(i)]) for i in range(1, count + 1)]


def render(body: str, params: Sequence[str]) -> str:
    """The text the recipient will read (for details and previews)."""
    return PLACEHOLDER.sub(
        lambda m: params[int(m.group(1)) - 1] if int(m.group(1)) <= len(params) else m.group(0), body
    )


def find(session: Session, account_id: int, ref: str | int) -> list[Template]:
    """Templates matching an id or a name (a name may exist in several languages)."""
    ident = parse_id(ref)
    if ident is not None:
        by_id = session.scalar(select(Template).where(Template.account_id == account_id, Template.id == ident))
        if by_id is not None:
            return [by_id]
    return list(session.scalars(select(Template).where(Template.account_id == account_id, Template.name == str(ref))))


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
