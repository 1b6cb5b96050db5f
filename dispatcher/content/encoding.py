"""SMS encoding (GSM-7 or UCS-2) and segmentation, as a gateway would do it.

Rules (3GPP TS 23.038 for the alphabet, TS 23.040 for the user data and concatenation header):

* A text is GSM-7 when every character is in the GSM 03.38 default alphabet or its extension table. The
  extension characters ``\\f ^ { } \\ [ ~ ] | €`` are sent as ESC + code, so they cost 2 septets. 0x09 is
  capital ``Ç`` only: small ``ç`` is not GSM. A literal ESC (0x1B) in the input is not text, so it is not GSM.
* One non-GSM character makes the whole text UCS-2, counted in UTF-16 code units: a character outside the
  BMP (most emoji) takes 2 units.
* A single SMS carries 160 septets or 70 UCS-2 units. A concatenated one loses 6 octets to the user data
  header (8-bit reference), leaving 153 septets or 67 units per part.
* A part never ends inside an escape pair or a surrogate pair, so a 2-unit character that does not fit is
  moved whole to the next part. That is why the part count is not always ``ceil(units / 153)``.

Not handled: national language shift tables (few aggregators support them) and grapheme-cluster splitting
(a part may end between an emoji and its skin-tone modifier; both halves still encode correctly).
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_left
from dataclasses import dataclass

__all__ = ["Encoding", "SmsLayout", "analyse", "gsm7_units", "is_gsm7"]


class Encoding(enum.StrEnum):
    """The data coding of the whole message: one non-GSM character makes it all UCS-2."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsLayout:
    """How a text goes out as SMS: its encoding, its size and the parts a gateway would send."""

    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) for the whole text
    segments: int  # SMS parts billed; 0 for the empty text
    parts: tuple[str, ...]  # joined, they give the text back
    part_units: tuple[int, ...]


# The 128 codes of the default alphabet in code order, 0x00 to 0x7F. ESC (0x1B) is dropped below: it only
# introduces an extension character and has no meaning of its own in a text.
_GSM_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = "\f^{}\\[~]|€"
_GSM_CHARS = frozenset(_GSM_BASIC_TABLE.replace("\x1b", "") + _GSM_EXTENSION)
# Characters outside the BMP: each is a surrogate pair, 2 UTF-16 code units.
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67


def _escape(text: str) -> str:
    """The text with ESC before each extension character: one Python character per septet on the wire.

    Ten C-level scans beat a per-character Python loop; most texts hold no extension character, so no copy is made.
    """
    for char in _GSM_EXTENSION:
        if char in text:
            text = text.replace(char, "\x1b" + char)
    return text


def _utf16_units(text: str) -> int:
    # surrogatepass: a stray lone surrogate (malformed text) counts as 1 unit instead of raising.
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def is_gsm7(text: str) -> bool:
    """True if the whole text can be sent in the GSM 03.38 alphabet (default plus extension table)."""
    return _GSM_CHARS.issuperset(text)


def gsm7_units(text: str) -> int:
    """Septets needed for the text in GSM-7 (extension characters count 2). Raises ValueError if not GSM-7."""
    if not _GSM_CHARS.issuperset(text):
        bad = next(c for c in text if c not in _GSM_CHARS)
        raise ValueError(f"not GSM-7: {bad!r} (U+{ord(bad):04X}) is not in the GSM 03.38 alphabet")
    return len(_escape(text))


def _split_gsm7(wire: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Cut the escaped text every 153 septets, one septet early when the cut would leave an ESC behind."""
    parts: list[str] = []
    units: list[int] = []
    start, length = 0, len(wire)
    while start < length:
        end = min(start + _GSM7_PART, length)
        if wire[end - 1] == "\x1b":
            end -= 1
        # The input holds no ESC of its own (not GSM text), so dropping them all restores it exactly.
        parts.append(wire[start:end].replace("\x1b", ""))
        units.append(end - start)
        start = end
    return tuple(parts), tuple(units)


def _split_ucs2(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Greedy split into the longest prefixes of at most 67 UTF-16 units, never inside a surrogate pair.

    A Python character is a whole surrogate pair, so cutting between characters is safe. Each part starts
    as 67 characters (the most that can fit) and shrinks by ceil(excess / 2): at least that many characters
    must go since each carries at most 2 units, so the cut never overshoots the greedy one and reaches it
    in a few bisections, with no per-character loop.
    """
    wide = [m.start() for m in _NON_BMP.finditer(text)]
    parts: list[str] = []
    units: list[int] = []
    start, length = 0, len(text)
    while start < length:
        first_wide = bisect_left(wide, start)
        end = min(start + _UCS2_PART, length)
        used = end - start + bisect_left(wide, end, first_wide) - first_wide
        while used > _UCS2_PART:
            end -= (used - _UCS2_PART + 1) >> 1
            used = end - start + bisect_left(wide, end, first_wide) - first_wide
        parts.append(text[start:end])
        units.append(used)
        start = end
    return tuple(parts), tuple(units)


def analyse(text: str) -> SmsLayout:
    """Encoding, size and gateway split of `text`. The empty text is GSM-7 with 0 units and 0 segments."""
    if not text:
        return SmsLayout(Encoding.GSM7, 0, 0, (), ())
    if _GSM_CHARS.issuperset(text):
        wire = _escape(text)
        if len(wire) <= _GSM7_SINGLE:
            return SmsLayout(Encoding.GSM7, len(wire), 1, (text,), (len(wire),))
        parts, part_units = _split_gsm7(wire)
        return SmsLayout(Encoding.GSM7, len(wire), len(parts), parts, part_units)
    units = _utf16_units(text)
    if units <= _UCS2_SINGLE:
        return SmsLayout(Encoding.UCS2, units, 1, (text,), (units,))
    parts, part_units = _split_ucs2(text)
    return SmsLayout(Encoding.UCS2, units, len(parts), parts, part_units)
