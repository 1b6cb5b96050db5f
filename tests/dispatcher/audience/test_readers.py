"""Reading contacts files: CSV and NDJSON rows as the worker reads them from the stored chunks.

Each file goes through the upload cutter first (as the API stores it) with tiny chunks as well as one big
one, so a row, a quoted value or a CRLF split across chunks reads the same.
"""

from __future__ import annotations

import pytest

from dispatcher.audience import readers, uploads
from dispatcher.audience.contacts import ContactRow
from dispatcher.audience.readers import Format, Row, RowError
from dispatcher.errors import InputError


@pytest.fixture(params=[16, 1 << 20], ids=["tiny-chunks", "one-chunk"])
def chunk_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", request.param)
    return int(request.param)


def read(body: bytes, fmt: Format = Format.CSV, country: str | None = None) -> tuple[list[Row], uploads.Cutter]:
    """The rows of `body`, fed to the cutter 5 bytes at a time, then read from its chunks."""
    cutter = uploads.Cutter(fmt, max_rows=1000)
    chunks = [chunk for start in range(0, len(body), 5) for chunk in cutter.feed(body[start : start + 5])]
    chunks += cutter.close()
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    source = readers.lines(c.text for c in chunks)
    for _ in range(cutter.start):
        next(source)
    if fmt == Format.NDJSON:
        return list(readers.ndjson_rows(source, 1, country, set())), cutter
    return list(readers.csv_rows(source, cutter.columns or [], cutter.start + 1, country)), cutter


def contacts(rows: list[Row]) -> list[ContactRow | None]:
    return [row.contact for row in rows]


def errors(rows: list[Row]) -> list[RowError]:
    return [row.error for row in rows if row.error is not None]


@pytest.mark.usefixtures("chunk_bytes")
class TestCsv:
    def test_quoted_values_keep_commas_quotes_and_line_breaks(self) -> None:
        body = (
            'phone,name,note\n2250700000001,"Koné, Awa","say ""hi""\nsecond line"\n2250700000002,Ben,plain\n'
        ).encode()
        rows, _ = read(body)
        assert contacts(rows) == [
            ContactRow("+2250700000001", name="Koné, Awa", fields={"note": 'say "hi"\nsecond line'}),
            ContactRow("+2250700000002", name="Ben", fields={"note": "plain"}),
        ]
        # The second row starts on line 4: the quoted line break counts as a line of the file
        assert [(row.line, row.end) for row in rows] == [(2, 3), (4, 4)]

    def test_a_bom_crlf_and_lone_cr_line_ends_read_like_lf(self) -> None:
        crlf = "\ufeffphone,name\r\n2250700000001,Awa\r\n2250700000002,Ben\r\n".encode()
        lone_cr = b"phone,name\r2250700000001,Awa\r2250700000002,Ben"
        lf = b"phone,name\n2250700000001,Awa\n2250700000002,Ben\n"
        assert contacts(read(crlf)[0]) == contacts(read(lone_cr)[0]) == contacts(read(lf)[0])
        assert [row.line for row in read(crlf)[0]] == [row.line for row in read(lone_cr)[0]] == [2, 3]
        assert read(crlf)[1].columns == ["phone", "name"]

    def test_blank_and_empty_rows_are_skipped_but_keep_the_line_numbers(self) -> None:
        body = b"\n\nphone,name\n\n2250700000001,Awa\n,,\n   \nbad,Ben\n\n"
        rows, cutter = read(body)
        assert cutter.start == 3
        assert [row.line for row in rows] == [5, 8]
        assert errors(rows)[0].line == 8

    def test_known_columns_are_read_in_any_spelling_and_others_are_custom_fields_or_ignored(self) -> None:
        body = (
            b"PHONE,First Name,last_name,Sex,TimeZone,ville,Code postal\n"
            b"2250700000001,Awa,Kone,F,africa/abidjan,Abj,01\n"
        )
        rows, cutter = read(body)
        assert contacts(rows) == [
            ContactRow(
                "+2250700000001",
                first_name="Awa",
                last_name="Kone",
                sex="F",
                timezone="Africa/Abidjan",
                fields={"ville": "Abj"},
            )
        ]
        assert cutter.ignored == ["Code postal"]

    def test_empty_values_leave_the_contact_as_it_is_and_missing_cells_are_empty(self) -> None:
        rows, _ = read(b"phone,name,ville\n2250700000001,,\n2250700000002\n")
        assert contacts(rows) == [ContactRow("+2250700000001"), ContactRow("+2250700000002")]

    def test_bad_rows_are_reported_by_line_and_column(self) -> None:
        body = (
            "phone,name,sex,timezone,ville\n"
            "2250700000001,Awa,F,UTC,Abj\n"  # 2: fine
            "22500000000,Old,,,\n"  # 3: the old 8-digit format
            ",No phone,,,\n"  # 4
            "2250700000005,Ben,X,,\n"  # 5: sex
            "2250700000006,Cy,,Mars/Olympus,\n"  # 6: time zone
            f"2250700000007,{'n' * 201},,,\n"  # 7: name too long
            f"2250700000008,Di,,,{'v' * 1025}\n"  # 8: field value too long
            "2250700000009,Ed,,,,surplus\n"  # 9: a value past the header
            "2250700000010,Fa\x00,,,\n"  # 10: NUL
            "0707000011,Ga,,,\n"  # 11: national, no country given
        ).encode()
        rows, _ = read(body)
        found = [(e.line, e.column) for e in errors(rows)]
        assert found == [
            (3, "phone"),
            (4, "phone"),
            (5, "sex"),
            (6, "timezone"),
            (7, "name"),
            (8, "ville"),
            (9, None),
            (10, "name"),
            (11, "phone"),
        ]
        reasons = {e.line: e.reason for e in errors(rows)}
        assert "old 8-digit" in reasons[3] and "required" in reasons[4] and "M or F" in reasons[5]
        assert "Mars/Olympus" in reasons[6] and "200" in reasons[7] and "1024" in reasons[8]
        assert "6 values; the header names 5" in reasons[9] and "NUL" in reasons[10]
        assert [row.contact is not None for row in rows] == [True] + [False] * 9

    def test_a_country_reads_national_numbers(self) -> None:
        rows, _ = read(b"phone\n0707000001\n2250707000002\n", country="CI")
        assert contacts(rows) == [ContactRow("+2250707000001"), ContactRow("+2250707000002")]

    def test_a_quote_left_open_is_one_bad_row_with_a_short_reason(self) -> None:
        body = ('phone,name\n2250700000001,"Awa\n' + "2250700000002,Ben\n" * 30).encode()
        rows, _ = read(body)
        assert len(rows) == 1 and rows[0].line == 2
        assert rows[0].error is not None and "quote left open" in rows[0].error.reason
        assert len(rows[0].error.reason) < 200


@pytest.mark.usefixtures("chunk_bytes")
class TestNdjson:
    def test_objects_with_the_same_keys_and_a_fields_object(self) -> None:
        body = (
            b'{"phone": "2250700000001", "firstName": "Awa", "ville": "Abj", "fields": {"code": 7}}\n'
            b"\n"
            b'{"phone": 2250700000002, "name": null, "vip": true, "e-mail": "x@y"}\r\n'
        )
        ignored: set[str] = set()
        cutter = uploads.Cutter(Format.NDJSON, max_rows=10)
        chunks = cutter.feed(body) + cutter.close()
        rows = list(readers.ndjson_rows(readers.lines(c.text for c in chunks), 1, None, ignored))
        assert contacts(rows) == [
            ContactRow("+2250700000001", first_name="Awa", fields={"ville": "Abj", "code": 7}),
            ContactRow("+2250700000002", fields={"vip": True}),
        ]
        assert [row.line for row in rows] == [1, 3]
        assert ignored == {"e-mail"}

    def test_bad_lines_are_reported_by_line(self) -> None:
        body = (
            b'{"phone": "2250700000001"}\n'
            b"{not json\n"
            b"[1, 2]\n"
            b'{"phone": "2250700000004", "name": {"first": "A"}}\n'
            b'{"phone": "2250700000005", "score": NaN}\n'
            b'{"phone": "123"}\n'
            b'{"phone": "2250700000007", "name": 7}\n'
        )
        rows, _ = read(body, Format.NDJSON)
        assert [(e.line, e.column) for e in errors(rows)] == [
            (2, None),
            (3, None),
            (4, "name"),
            (5, "score"),
            (6, "phone"),
            (7, "name"),
        ]


def test_a_file_that_is_not_utf8_is_refused_naming_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 16)
    with pytest.raises(InputError) as refused:
        read("phone,name\n2250700000001,Awa\n2250700000002,Kon\xe9\n".encode("latin-1"))
    assert "line 3" in refused.value.errors[0]["msg"] and "UTF-8" in refused.value.errors[0]["msg"]
