"""Tests for dispatcher.content.encoding against providers.md §4 (rules, French characters, the 22 vectors of §4.3).

The wire-level helpers below re-encode texts independently of the module (their own copy of the GSM 03.38 table,
written as escapes) so that part boundaries can be checked in septets / UTF-16 code units, not Python characters.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.content.encoding import Encoding, SmsLayout, analyse, gsm7_units, is_gsm7

ESC = 0x1B
# 3GPP TS 23.038 §6.2.1, default alphabet in code order (index = code); ESC kept in place so indices match.
GSM_DEFAULT = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
# 3GPP TS 23.038 §6.2.1.1, extension table: character -> code sent after ESC.
GSM_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "\u20ac": 0x65,
}
GSM_CHARS = (set(GSM_DEFAULT) - {"\x1b"}) | set(GSM_EXTENSION)
SINGLE = {Encoding.GSM7: 160, Encoding.UCS2: 70}
PER_PART = {Encoding.GSM7: 153, Encoding.UCS2: 67}


def gsm_wire(text: str) -> list[int]:
    out: list[int] = []
    for char in text:
        if char in GSM_EXTENSION:
            out += [ESC, GSM_EXTENSION[char]]
        else:
            code = GSM_DEFAULT.index(char)  # ValueError: not GSM
            assert code != ESC
            out.append(code)
    return out


def ucs2_wire(text: str) -> list[int]:
    data = text.encode("utf-16-le")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def wire(text: str, encoding: Encoding) -> list[int]:
    return gsm_wire(text) if encoding is Encoding.GSM7 else ucs2_wire(text)


def check_layout(text: str, layout: SmsLayout) -> None:
    """Invariants every layout must satisfy, checked at the wire level."""
    assert "".join(layout.parts) == text
    assert layout.segments == len(layout.parts) == len(layout.part_units)
    assert all(layout.parts)
    assert sum(layout.part_units) == layout.units
    whole = wire(text, layout.encoding)
    assert len(whole) == layout.units
    assert [unit for part in layout.parts for unit in wire(part, layout.encoding)] == whole
    assert [len(wire(part, layout.encoding)) for part in layout.parts] == list(layout.part_units)
    if layout.segments == 1:
        assert layout.units <= SINGLE[layout.encoding]
    elif layout.segments > 1:
        assert layout.units > SINGLE[layout.encoding]
        assert max(layout.part_units) <= PER_PART[layout.encoding]
    offset = 0
    for units in layout.part_units[:-1]:
        offset += units
        # The last unit before a cut must not be an ESC or a high surrogate, i.e. no pair straddles the cut.
        assert (
            whole[offset - 1] != ESC if layout.encoding is Encoding.GSM7 else not 0xD800 <= whole[offset - 1] < 0xDC00
        )


# (number, text, encoding, len(), units, segments, per-segment units): providers.md §4.3, row by row.
VECTORS = [
    (1, "Bonjour à tous", Encoding.GSM7, 14, 14, 1, (14,)),
    (2, "Prix: 10€", Encoding.GSM7, 9, 10, 1, (10,)),
    (3, "Ça va? 😀", Encoding.UCS2, 8, 9, 1, (9,)),
    (4, "Ça va?", Encoding.GSM7, 6, 6, 1, (6,)),
    (5, "ça va?", Encoding.UCS2, 6, 6, 1, (6,)),
    (6, "Côte d'Ivoire", Encoding.UCS2, 13, 13, 1, (13,)),
    (7, "Profitez de l\u2019offre", Encoding.UCS2, 19, 19, 1, (19,)),
    (8, "Hello [world]", Encoding.GSM7, 13, 15, 1, (15,)),
    (9, "a" * 160, Encoding.GSM7, 160, 160, 1, (160,)),
    (10, "a" * 161, Encoding.GSM7, 161, 161, 2, (153, 8)),
    (11, "€" * 80, Encoding.GSM7, 80, 160, 1, (160,)),
    (12, "€" * 81, Encoding.GSM7, 81, 162, 2, (152, 10)),
    (13, "a" * 152 + "€" + "a" * 152, Encoding.GSM7, 305, 306, 3, (152, 153, 1)),
    (14, "a" * 306, Encoding.GSM7, 306, 306, 2, (153, 153)),
    (15, "ê" * 70, Encoding.UCS2, 70, 70, 1, (70,)),
    (16, "ê" * 71, Encoding.UCS2, 71, 71, 2, (67, 4)),
    (17, "😀" * 35, Encoding.UCS2, 35, 70, 1, (70,)),
    (18, "😀" * 36, Encoding.UCS2, 36, 72, 2, (66, 6)),
    (19, "ê" + "a" * 65 + "😀" + "a" * 66, Encoding.UCS2, 133, 134, 3, (66, 67, 1)),
    (20, "é" * 160, Encoding.GSM7, 160, 160, 1, (160,)),
    (21, "line\r\nbreak", Encoding.GSM7, 11, 11, 1, (11,)),
    (22, "", Encoding.GSM7, 0, 0, 0, ()),
]
VECTOR_PARAMS = [pytest.param(*row, id=f"vector-{row[0]:02d}") for row in VECTORS]
TEXT_PARAMS = [pytest.param(row[1], id=f"vector-{row[0]:02d}") for row in VECTORS]


@pytest.mark.parametrize(("number", "text", "encoding", "length", "units", "segments", "per_segment"), VECTOR_PARAMS)
def test_reference_vector(
    number: int, text: str, encoding: Encoding, length: int, units: int, segments: int, per_segment: tuple[int, ...]
) -> None:
    layout = analyse(text)
    assert len(text) == length
    assert layout.encoding is encoding
    assert layout.units == units
    assert layout.segments == segments
    assert layout.part_units == per_segment
    assert is_gsm7(text) is (encoding is Encoding.GSM7)
    if encoding is Encoding.GSM7:
        assert gsm7_units(text) == units


@pytest.mark.parametrize("text", TEXT_PARAMS)
def test_reference_vector_parts_join_back(text: str) -> None:
    assert "".join(analyse(text).parts) == text


@pytest.mark.parametrize("text", TEXT_PARAMS)
def test_reference_vector_no_pair_split(text: str) -> None:
    check_layout(text, analyse(text))


def test_vectors_13_and_19_need_more_parts_than_naive_ceil() -> None:
    assert analyse(VECTORS[12][1]).parts == ("a" * 152, "€" + "a" * 151, "a")
    assert analyse(VECTORS[18][1]).parts == ("ê" + "a" * 65, "😀" + "a" * 65, "a")


FRENCH_GSM = "àäéèöùüæÄÇÉÖÜÆ€"
FRENCH_NOT_GSM = "âçêëîïôûÿœÀÂÈÊËÎÏÔÙÛŸŒ«»\u2019\u2018\u201c\u201d\u2026\u2013\u2014°"


@pytest.mark.parametrize("char", list(FRENCH_GSM), ids=[f"U+{ord(c):04X}" for c in FRENCH_GSM])
def test_french_gsm_characters(char: str) -> None:
    assert is_gsm7(char)
    assert analyse(f"Merci {char}").encoding is Encoding.GSM7
    assert gsm7_units(char) == (2 if char == "€" else 1)


@pytest.mark.parametrize("char", list(FRENCH_NOT_GSM), ids=[f"U+{ord(c):04X}" for c in FRENCH_NOT_GSM])
def test_french_non_gsm_characters(char: str) -> None:
    assert not is_gsm7(char)
    layout = analyse("a" * 200 + char)
    assert (layout.encoding, layout.units, layout.part_units) == (Encoding.UCS2, 201, (67, 67, 67))
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        gsm7_units("Merci " + char)


def test_alphabet_is_exactly_gsm_0338() -> None:
    assert len(GSM_CHARS) == 137
    assert {chr(cp) for cp in range(0x110000) if is_gsm7(chr(cp))} == GSM_CHARS


def test_literal_escape_is_not_gsm() -> None:
    assert not is_gsm7("a\x1bb")
    assert analyse("a\x1bb") == SmsLayout(Encoding.UCS2, 3, 1, ("a\x1bb",), (3,))
    with pytest.raises(ValueError):
        gsm7_units("\x1b")


def test_extension_characters_cost_two_septets() -> None:
    assert gsm7_units("".join(GSM_EXTENSION)) == 20
    assert analyse("{" * 80).part_units == (160,)
    assert analyse("{" * 81).part_units == (152, 10)


def test_lone_surrogate_counts_one_unit() -> None:
    assert analyse("a\ud83d").units == 2


def test_layout_is_frozen_and_encoding_is_str() -> None:
    layout = analyse("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.units = 3  # type: ignore[misc]
    assert f"{layout.encoding}" == "GSM-7"
    assert Encoding("UCS-2") is Encoding.UCS2


def naive_split(text: str) -> tuple[Encoding, list[int]]:
    """Oracle: walk character by character, closing a part when the next character would not fit."""
    encoding = Encoding.GSM7 if set(text) <= GSM_CHARS else Encoding.UCS2
    costs = [len(wire(c, encoding)) for c in text]
    if sum(costs) <= SINGLE[encoding]:
        return encoding, [sum(costs)] if text else []
    parts = [0]
    for cost in costs:
        if parts[-1] + cost > PER_PART[encoding]:
            parts.append(0)
        parts[-1] += cost
    return encoding, parts


GSM_SAMPLE = "aZ09 .,!?@£$¥èéùìòÇ\n\r_ΔΩÆßÉÄÖÑÜ§¿äöñüà"
EXTENSION_SAMPLE = "".join(GSM_EXTENSION)
NON_GSM_SAMPLE = "âçêëôœÀÊÔ«»\u2019\u2026°ñ\u0107"
EMOJI_SAMPLE = "😀👍🏽🇫🇷❤️\U0001f600\U0010ffff"
gsm_texts = st.text(alphabet=GSM_SAMPLE + EXTENSION_SAMPLE, max_size=500)
mixed_texts = st.text(alphabet=GSM_SAMPLE + EXTENSION_SAMPLE + NON_GSM_SAMPLE + EMOJI_SAMPLE, max_size=300)
# Mostly GSM with a single foreign character somewhere: the case that flips a long text to UCS-2.
one_foreign = st.builds(
    lambda head, char, tail: head + char + tail, gsm_texts, st.sampled_from(NON_GSM_SAMPLE + EMOJI_SAMPLE), gsm_texts
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(gsm_texts, mixed_texts, one_foreign, st.text(max_size=200)))
def test_random_texts(text: str) -> None:
    layout = analyse(text)
    check_layout(text, layout)
    assert max(layout.part_units, default=0) <= (SINGLE if layout.segments == 1 else PER_PART)[layout.encoding]
    assert (layout.segments == 1) is (0 < layout.units <= SINGLE[layout.encoding])
    assert is_gsm7(text) is (layout.encoding is Encoding.GSM7)
    assert (layout.encoding, list(layout.part_units)) == naive_split(text)
