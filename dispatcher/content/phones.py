"""Phone numbers: parsed and validated with `phonenumbers`, stored in E.164 (`+2250707123456`).

Producers send the country code without '+' (the seed documents' `22500000000`); we add it ourselves
and never guess a default region, which would silently change a number's country.
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


def normalize(raw: object, *, sms: bool = True) -> str:
    """Return `raw` in E.164 or raise PhoneError.

    Accepts the country code with or without '+' or '00', and common separators.
    With `sms`, numbers that cannot receive an SMS (fixed lines, toll-free...) are refused.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise PhoneError("a phone number is required")
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("00"):
        digits = digits[2:]
    digits = digits.removeprefix("+")
    if not digits.isdigit():
        raise PhoneError(f"{raw!r} is not a phone number: use digits with the country code, e.g. 2250707123456")
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        raise PhoneError(_invalid_reason(raw, digits)) from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(_invalid_reason(raw, digits))
    kind = phonenumbers.number_type(number)
    if sms and kind in _NOT_FOR_SMS:
        raise PhoneError(f"{raw!r} is {_NOT_FOR_SMS[kind]} and cannot receive SMS")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _invalid_reason(raw: str, digits: str) -> str:
    if digits.startswith("225") and len(digits) == 11:
        return (
            f"{raw!r} is in the old 8-digit Côte d'Ivoire format; since 2021 numbers have 10 digits "
            "(e.g. 2250707123456)"
        )
    return f"{raw!r} is not a valid phone number (include the country code, e.g. 2250707123456)"
