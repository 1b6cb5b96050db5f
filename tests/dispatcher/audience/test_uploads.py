"""Cutting an upload into stored chunks, and what is refused before the answer (nothing is imported)."""

from __future__ import annotations

import pytest

from dispatcher.audience import uploads
from dispatcher.audience.readers import Format
from dispatcher.audience.uploads import Cutter, format_of
from dispatcher.errors import InputError, TooLarge, UnsupportedMediaType


def cut(body: bytes, fmt: Format = Format.CSV, max_rows: int = 1000) -> tuple[list[uploads.Chunk], Cutter]:
    cutter = Cutter(fmt, max_rows)
    chunks = [chunk for start in range(0, len(body), 3) for chunk in cutter.feed(body[start : start + 3])]
    return chunks + cutter.close(), cutter


def refusal(body: bytes, fmt: Format = Format.CSV) -> str:
    with pytest.raises(InputError) as refused:
        cut(body, fmt)
    assert refused.value.errors[0]["loc"] == ["body"]
    return str(refused.value.errors[0]["msg"])


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/csv", Format.CSV),
        ("Text/CSV; charset=utf-8", Format.CSV),
        ("application/x-ndjson", Format.NDJSON),
        ('application/ndjson; charset="UTF-8"', Format.NDJSON),
    ],
)
def test_csv_and_ndjson_in_utf8_are_read(content_type: str, expected: Format) -> None:
    assert format_of(content_type) == expected


@pytest.mark.parametrize("content_type", [None, "", "application/json", "text/plain", "text/csv; charset=latin-1"])
def test_other_types_and_charsets_are_refused(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        format_of(content_type)


def test_chunks_end_at_line_ends_and_number_their_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 20)
    body = b"phone,name\r\n" + b"".join(b"22507%08d,N%d\r\n" % (i, i) for i in range(20)) + b"2250799999999,Last"
    chunks, cutter = cut(body)
    assert len(chunks) > 5
    assert all(c.text.endswith("\n") for c in chunks[:-1]) and chunks[-1].text.endswith("Last")
    assert "".join(c.text for c in chunks).encode() == body
    lines_before = [sum(c.text.count("\n") for c in chunks[:i]) for i in range(len(chunks))]
    assert [c.first_line for c in chunks] == [n + 1 for n in lines_before]
    assert (cutter.columns, cutter.start) == (["phone", "name"], 1)


def test_a_body_sent_in_one_piece_is_still_cut_into_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 64)
    body = b"phone\n" + b"2250700000001\n" * 100
    cutter = Cutter(Format.CSV, 1000)
    chunks = cutter.feed(body) + cutter.close()
    assert len(chunks) > 20 and max(len(c.text) for c in chunks) <= 64


def test_a_chunk_ends_after_its_last_line_within_the_size_or_after_a_longer_line() -> None:
    assert uploads._line_end(bytearray(b"ab\ncd\nef"), 5) == 3
    assert uploads._line_end(bytearray(b"abcdefg\nh"), 5) == 8
    assert uploads._line_end(bytearray(b"a\rb\r"), 10) == 2  # the last \r may be half of a \r\n still to come
    assert uploads._line_end(bytearray(b"abc"), 2) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbf  \r\n\n", "the file is empty"),
        (b"phone,name\n\n\n", "a header row but no rows"),
        (b"name,ville\nAwa,Abj\n", "no phone column (its columns: 'name', 'ville')"),
        (b"phone,Phone\n1,2\n", "'phone' and 'Phone': both set phone"),
        (b"phone,ville,ville\n1,2,3\n", "both set ville"),
    ],
)
def test_a_csv_without_rows_or_phone_column_is_refused(body: bytes, reason: str) -> None:
    assert reason in refusal(body)


def test_an_ndjson_file_must_start_with_an_object() -> None:
    assert "line 2 is not a JSON object" in refusal(b"\nphone,name\n", Format.NDJSON)
    assert "the file is empty" in refusal(b"\n \n", Format.NDJSON)


def test_more_rows_than_the_limit_is_too_large() -> None:
    body = b"phone\n" + b"2250700000001\n" * 5
    assert len(cut(body, max_rows=5)[0]) == 1
    with pytest.raises(TooLarge, match="more than 4 rows"):
        cut(body, max_rows=4)


def test_a_line_longer_than_the_limit_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 8)
    monkeypatch.setattr(uploads, "MAX_LINE_BYTES", 64)
    with pytest.raises(TooLarge, match="line 2 is longer than"):
        cut(b"phone\n" + b"9" * 100 + b"\n")
