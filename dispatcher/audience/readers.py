"""The rows of a contacts file: CSV (a header row, then a contact a row) or NDJSON (a JSON object a line).

Both read the same keys: `phone` (required), `name`, `firstName`, `lastName`, `sex`, `timezone` (spelled
in any case, with or without `_`, `-` or spaces: `First name` is `firstName`); any other key is a custom
field, if a text can name it (`@ville`: letters, digits and `_`), else it is ignored, as in campaigns. An
empty value, or JSON null, leaves what the contact has. Each row becomes a `ContactRow` or a `RowError`
naming its line (as numbered in the file, the header being line 1) and column.

Readers take the file as lines (`lines()` cuts stored text into them) and keep no more than one row.
"""

from __future__ import annotations

import csv
import enum
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String

from beat_schedule.grid import ScheduleError, parse_zone
from dispatcher.audience.contacts import ContactRow
from dispatcher.content.phones import PhoneError, normalize
from dispatcher.db.models import Contact
from dispatcher.inputs import FIELD_NAME, fields_problem


class Format(enum.StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


# Known keys, folded (see `role`), and the ContactRow attribute each sets.
_KNOWN = {
    "phone": "phone",
    "name": "name",
    "firstname": "first_name",
    "lastname": "last_name",
    "sex": "sex",
    "timezone": "timezone",
}
_FOLD = re.compile(r"[\s_-]")
# One line and its ending; a line break is \r\n, \n or a lone \r (old spreadsheets), as csv reads them.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# What an error's reason may quote of a value (a quote left open can make a value the rest of the file).
_QUOTED = 60
# Keys of an NDJSON file that set nothing, listed for the user: at most this many.
MAX_IGNORED = 50


def _length(attr: str) -> int:
    column_type = Contact.__table__.c[attr].type
    assert isinstance(column_type, String) and column_type.length is not None
    return column_type.length


# The longest text each column stores (their database columns).
_LENGTHS = {attr: _length(attr) for attr in ("name", "first_name", "last_name")}


@dataclass(frozen=True, slots=True)
class RowError:
    """Why the row at `line` is not imported; `column` is the key as the file writes it, or None."""

    line: int
    column: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the file: the lines it spans, and its contact or why it has none."""

    line: int
    end: int  # its last line: reading on after it starts a new row
    contact: ContactRow | None
    error: RowError | None


def role(key: str) -> str | None:
    """What a column sets: a ContactRow attribute, `fields` (a custom field of that name) or None (ignored)."""
    known = _KNOWN.get(_FOLD.sub("", key).lower())
    if known is not None:
        return known
    return "fields" if FIELD_NAME.fullmatch(key) else None


def lines(texts: Iterable[str]) -> Iterator[str]:
    """The lines of texts that each end at a line end (the stored chunks), each with its line break."""
    for text in texts:
        yield from _LINE.findall(text)


def header(text: str) -> tuple[list[str], int]:
    """The header row of a CSV file starting with `text`, and the line it ends on; blank lines before it
    are skipped. ValueError if `text` has no complete header row."""
    reader = csv.reader(lines([text]))
    for cells in reader:
        if any(cell.strip() for cell in cells):
            return [cell.strip() for cell in cells], reader.line_num
    raise ValueError("no header row")


def csv_rows(source: Iterable[str], columns: Sequence[str], first_line: int, country: str | None) -> Iterator[Row]:
    """The rows of CSV lines starting at `first_line`, read with the header's `columns`."""
    roles = [role(name) for name in columns]
    reader = csv.reader(source)
    end = first_line - 1
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = first_line - 1 + reader.line_num
            yield Row(start, end, None, RowError(start, None, f"is not valid CSV ({exc}): is a quote left open?"))
            continue
        end = first_line - 1 + reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, or one of empty cells (",,,": spreadsheets end with some)
        yield _csv_row(start, end, cells, columns, roles, country)


def _csv_row(
    start: int, end: int, cells: list[str], columns: Sequence[str], roles: Sequence[str | None], country: str | None
) -> Row:
    if len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns) :]):
        reason = f"has {len(cells)} values; the header names {len(columns)} columns"
        return Row(start, end, None, RowError(start, None, reason))
    given = {name: (kind, cell.strip()) for name, kind, cell in zip(columns, roles, cells, strict=False)}
    return _row(start, end, given, country)


def ndjson_rows(source: Iterable[str], first_line: int, country: str | None, ignored: set[str]) -> Iterator[Row]:
    """The rows of NDJSON lines starting at `first_line`; keys that set nothing are added to `ignored`."""
    line = first_line - 1
    for text in source:
        line += 1
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield Row(line, line, None, RowError(line, None, f"is not valid JSON ({exc})"))
            continue
        if not isinstance(value, dict):
            yield Row(line, line, None, RowError(line, None, "is not a JSON object"))
            continue
        given: dict[str, tuple[str | None, Any]] = {}
        for key, item in value.items():
            if key == "fields" and isinstance(item, dict):
                given.update((name, ("fields", field)) for name, field in item.items())
                continue
            kind = role(key)
            if kind is None and len(ignored) < MAX_IGNORED:
                ignored.add(key)
            given[key] = (kind, item.strip() if isinstance(item, str) else item)
        yield _row(line, line, given, country)


def _row(start: int, end: int, given: Mapping[str, tuple[str | None, Any]], country: str | None) -> Row:
    """A row's contact from its keys (as the file names them), what each sets and its value."""
    values: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    keys: dict[str, str] = {}  # attribute -> the key that set it, for errors
    for key, (kind, value) in given.items():
        if kind is None or value is None or value == "":
            continue
        problem = _value_problem(kind, value)
        if problem is not None:
            return Row(start, end, None, RowError(start, key, problem))
        if kind == "fields":
            fields[key] = value
        else:
            values[kind] = value
            keys[kind] = key
    problem = fields_problem(fields) if fields else None
    if problem is not None:
        # The field at fault, if one is (a name or a value); None when there are too many.
        column = next((name for name, value in fields.items() if fields_problem({name: value})), None)
        return Row(start, end, None, RowError(start, column, problem))
    try:
        contact = _contact(values, fields, country)
    except _Refused as exc:
        return Row(start, end, None, RowError(start, keys.get(exc.attr, exc.attr), exc.reason))
    return Row(start, end, contact, None)


class _Refused(ValueError):
    def __init__(self, attr: str, reason: str) -> None:
        super().__init__(attr, reason)
        self.attr = attr
        self.reason = reason


def _contact(values: dict[str, Any], fields: dict[str, Any], country: str | None) -> ContactRow:
    raw = values.pop("phone", None)
    if raw is None:
        raise _Refused("phone", "a phone number is required")
    try:
        phone = normalize(raw, country=country)
    except PhoneError as exc:
        raise _Refused("phone", _shortened(str(exc))) from None
    for attr, limit in _LENGTHS.items():
        if attr in values and len(values[attr]) > limit:
            raise _Refused(attr, f"is longer than {limit} characters")
    if values.get("sex") not in (None, "M", "F"):
        raise _Refused("sex", f"must be M or F, not {_shortened(repr(values['sex']))}")
    if "timezone" in values:
        try:
            values["timezone"] = parse_zone(values["timezone"]).key
        except ScheduleError as exc:
            raise _Refused("timezone", _shortened(exc.reason)) from None
    return ContactRow(phone, fields=fields or None, **values)


def _value_problem(kind: str, value: Any) -> str | None:
    """Why a value cannot be stored whatever its column: JSON's nesting, NaN and NUL (PostgreSQL refuses it)."""
    if isinstance(value, dict | list):
        return "must be a text, a number or true/false, not a JSON object or list"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if kind != "fields" and not isinstance(value, str) and not (kind == "phone" and isinstance(value, int)):
        return "must be a text"
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain NUL (\\u0000) characters"
        if kind != "fields" and ("\n" in value or "\r" in value):
            return "holds a line break: is a quote left open?"
    return None


def _shortened(text: str) -> str:
    return text if len(text) <= 2 * _QUOTED else f"{text[:_QUOTED]}...{text[-_QUOTED:]}"
