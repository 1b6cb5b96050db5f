"""Phone numbers: parsed and validated with `phonenumbers`, stored in E.164 (`+2250707123456`).

Producers send the country code without '+' (the seed documents' `22500000000`); we add it ourselves
and never guess a default region, which would silently change a number's country. Only a caller that
was told the country (an import's `country`) reads national numbers (`0707123456`) in it.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

# Types that cannot receive an SMS: sending would be billed and never arrive.
_NOT_FOR_SMS = {
    PhoneNumberType.FIXED_LINE: "a fixed line",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.UAN: "a universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
    PhoneNumberType.PAGER: "a pager",
}
_SEPARATORS = re.compile(r"[\s().\-]")


class PhoneError(ValueError):
    """The number cannot be used; the message says why in words a user understands."""


def region(code: str) -> str | None:
    """The phonenumbers region for a country code a user gave ("ci" -> "CI"), or None if there is none."""
    folded = code.strip().upper()
    return folded if folded in phonenumbers.SUPPORTED_REGIONS else None


def normalize(raw: object, *, sms: bool = True, country: str | None = None) -> str:
    """Return `raw` in E.164 or raise PhoneError.

    Accepts the country code with or without '+' or '00', and common separators.
    With `country` (a region from `region()`), a number without '+' or '00' is first read as a national
    number of that country, then, if that is not a valid number, as one with its country code.
    With `sms`, numbers that cannot receive an SMS (fixed lines, toll-free...) are refused.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise PhoneError("a phone number is required")
    digits = _SEPARATORS.sub("", raw.strip())
    international = digits.startswith(("00", "+"))
    digits = digits[2:] if digits.startswith("00") else digits.removeprefix("+")
    if not digits.isdigit():
        raise PhoneError(f"{raw!r} is not a phone number: use digits with the country code, e.g. 2250707123456")
    found = _parse(digits, country) if country and not international else None
    if found is None:
        found = _parse("+" + digits, None)
    if found is None:
        raise PhoneError(_invalid_reason(raw, digits, country))
    number, kind = found
    if sms and kind in _NOT_FOR_SMS:
        raise PhoneError(f"{raw!r} is {_NOT_FOR_SMS[kind]} and cannot receive SMS")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _parse(text: str, country: str | None) -> tuple[phonenumbers.PhoneNumber, int] | None:
    """The number and its type, if valid. A number is valid exactly when its type is known (that is how
    `is_valid_number` decides), so one `number_type` call does both: half the matching, for imports of
    millions of numbers."""
    try:
        number = phonenumbers.parse(text, country)
    except NumberParseException:
        return None
    kind = phonenumbers.number_type(number)
    return (number, kind) if kind != PhoneNumberType.UNKNOWN else None


def _invalid_reason(raw: str, digits: str, country: str | None = None) -> str:
    if digits.startswith("225") and len(digits) == 11:
        return (
            f"{raw!r} is in the old 8-digit Côte d'Ivoire format; since 2021 numbers have 10 digits "
            "(e.g. 2250707123456)"
        )
    if country:
        return f"{raw!r} is not a valid phone number, neither national in {country} nor with a country code"
    return f"{raw!r} is not a valid phone number (include the country code, e.g. 2250707123456)"
