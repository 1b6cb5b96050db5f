"""An uploaded contacts file as it arrives: cut into chunks of whole lines of UTF-8 text, and checked.

The API stores the chunks in the database (`contact_import_chunks`) as they come, so neither it nor the
worker ever holds the file, and any worker host can read it. A chunk ends at a line end, so it decodes on
its own and a worker resuming an import reads from any line without the chunks before it.

Whatever can be told before the answer is checked here, so the API refuses it with nothing imported: the
content type (415), bytes that are not UTF-8 (a BOM is fine), an empty file, a CSV header without `phone`
or setting a column twice, an NDJSON file whose first line is not an object (422), more data lines than
the row limit or a line longer than MAX_LINE_BYTES (413).
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from itertools import islice

from dispatcher.audience import readers
from dispatcher.audience.readers import Format
from dispatcher.errors import InputError, TooLarge, UnsupportedMediaType

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 8 << 20

_TYPES = {"text/csv": Format.CSV, "application/x-ndjson": Format.NDJSON, "application/ndjson": Format.NDJSON}


def format_of(content_type: str | None) -> Format:
    """The file format a Content-Type names (text/csv, application/x-ndjson), in UTF-8 only."""
    kind, _, parameters = (content_type or "").partition(";")
    found = _TYPES.get(kind.strip().lower())
    if found is None:
        raise UnsupportedMediaType(
            f"send the file as text/csv or application/x-ndjson, not {kind.strip() or 'without a Content-Type'}"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"send the file in UTF-8, not {value.strip()}")
    return found


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    first_line: int  # the file's line number of `text`'s first line
    text: str


def _body(msg: str) -> InputError:
    return InputError.single(("body",), msg)


@dataclass(slots=True)
class Cutter:
    """Cuts a body into chunks of whole lines as it arrives (`feed`, then `close`), raising at the first
    thing that makes it unusable. After `close`: the CSV `columns`, the line the header ends on (`start`,
    0 for NDJSON), and the columns that set nothing (`ignored`)."""

    format: Format
    max_rows: int
    columns: list[str] | None = None
    start: int = 0
    ignored: list[str] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)
    _seq: int = 0
    _lines: int = 0
    _has_rows: bool = False

    def feed(self, data: bytes) -> list[Chunk]:
        self._buffer += data
        out: list[Chunk] = []
        while len(self._buffer) >= CHUNK_BYTES:
            cut = _line_end(self._buffer, CHUNK_BYTES)
            if cut == 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    raise TooLarge(f"line {self._lines + 1} is longer than {MAX_LINE_BYTES >> 20} MiB")
                break
            out.append(self._chunk(bytes(self._buffer[:cut])))
            del self._buffer[:cut]
        return out

    def close(self) -> list[Chunk]:
        out = [self._chunk(bytes(self._buffer))] if self._buffer else []
        self._buffer.clear()
        if self._seq == 0 or (self.format == Format.NDJSON and not self._has_rows):
            raise _body("the file is empty")
        if not self._has_rows:
            raise _body("the file has a header row but no rows")
        return out

    def _chunk(self, data: bytes) -> Chunk:
        if self._seq == 0:
            data = data.removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self._lines + data.count(b"\n", 0, exc.start) + 1
            raise _body(
                f"is not UTF-8 text: line {line} has the byte 0x{data[exc.start]:02x}; save it as UTF-8"
            ) from None
        chunk = Chunk(self._seq, self._lines + 1, text)
        self._lines += text.count("\n") + text.count("\r") - text.count("\r\n") + (not text.endswith(("\n", "\r")))
        if self._seq == 0:
            self._first(text)
        elif not self._has_rows and not text.isspace():
            self._has_rows = True
        self._seq += 1
        if self._lines - self.start > self.max_rows:
            raise TooLarge(f"the file has more than {self.max_rows:,} rows, the most an import takes")
        return chunk

    def _first(self, text: str) -> None:
        """Check the start of the file: the CSV header, or the first NDJSON object."""
        if self.format == Format.NDJSON:
            first = next(((n, line) for n, line in enumerate(readers.lines([text]), 1) if line.strip()), None)
            if first is None:
                return
            try:
                value = json.loads(first[1])
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise _body(f"line {first[0]} is not a JSON object: is this file NDJSON (one object a line)?")
            self._has_rows = True
            return
        try:
            self.columns, self.start = readers.header(text)
        except ValueError:
            raise _body("the file is empty") from None
        _check_header(self.columns)
        self.ignored = [name for name in self.columns if readers.role(name) is None]
        self._has_rows = any(line.strip() for line in islice(readers.lines([text]), self.start, None))


def _check_header(columns: list[str]) -> None:
    roles: dict[str, str] = {}
    for name in columns:
        kind = readers.role(name)
        key = name if kind == "fields" else kind
        if key is None:
            continue
        if key in roles:
            raise _body(f"the header names {roles[key]!r} and {name!r}: both set {key}")
        roles[key] = name
    if "phone" not in roles:
        shown = ", ".join(repr(name) for name in columns[:10])
        raise _body(f"the header row has no phone column (its columns: {shown})")


def _line_end(buffer: bytearray, size: int) -> int:
    """Where a chunk of about `size` bytes of the buffer ends: after its last line end within `size`, else
    after the first line end (a line longer than `size`); 0 when the buffer holds no line end yet. A lone
    \r (old spreadsheets) counts only when the buffer has no \n and another byte follows it, which shows
    it is not the first half of a \r\n."""
    for newline in (buffer.rfind(b"\n", 0, size), buffer.find(b"\n", size)):
        if newline >= 0:
            return newline + 1
    last = len(buffer) - 1
    for carriage in (buffer.rfind(b"\r", 0, min(size, last)), buffer.find(b"\r", size, last)):
        if carriage >= 0:
            return carriage + 1
    return 0
