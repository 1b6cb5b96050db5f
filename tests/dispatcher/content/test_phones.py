"""Phone numbers: country code with or without '+', E.164 out, clear reasons for refusals."""

from __future__ import annotations

import pytest

from dispatcher.content.phones import PhoneError, normalize, region


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("2250707123456", "+2250707123456", id="ci-without-plus"),
        pytest.param("+2250707123456", "+2250707123456", id="ci-with-plus"),
        pytest.param("225 07 07 12 34 56", "+2250707123456", id="ci-spaces"),
        pytest.param("002250707123456", "+2250707123456", id="ci-00-prefix"),
        pytest.param("2250101010101", "+2250101010101", id="ci-moov-seed-number"),
        pytest.param("212600000000", "+212600000000", id="morocco"),
        pytest.param("221771234567", "+221771234567", id="senegal"),
        pytest.param("+1 (415) 555-2671", "+14155552671", id="us-punctuation"),
        pytest.param(2250707123456, "+2250707123456", id="integer"),
    ],
)
def test_valid_numbers_become_e164(raw: object, expected: str) -> None:
    assert normalize(raw) == expected


def test_the_seed_documents_old_ivorian_number_is_refused_with_the_reason() -> None:
    with pytest.raises(PhoneError, match="old 8-digit Côte d'Ivoire format"):
        normalize("22500000000")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param("", "required", id="empty"),
        pytest.param(None, "required", id="none"),
        pytest.param("0707123456", "country code", id="national-format-no-country"),
        pytest.param("hello", "not a phone number", id="letters"),
        pytest.param("2252722220182", "fixed line", id="ci-fixed-line"),
        pytest.param("+999123456789", "country code", id="no-such-country"),
    ],
)
def test_unusable_numbers_are_refused(raw: object, reason: str) -> None:
    with pytest.raises(PhoneError, match=reason):
        normalize(raw)


def test_a_fixed_line_is_accepted_when_sms_is_not_required() -> None:
    assert normalize("2252722220182", sms=False) == "+2252722220182"


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        pytest.param("0707123456", "CI", "+2250707123456", id="national-in-its-country"),
        pytest.param("07 07 12 34 56", "CI", "+2250707123456", id="national-with-spaces"),
        pytest.param("2250707123456", "CI", "+2250707123456", id="country-code-of-that-country"),
        pytest.param("212600000000", "CI", "+212600000000", id="another-country-code"),
        pytest.param("+2250707123456", "FR", "+2250707123456", id="plus-is-international"),
        pytest.param("0612345678", "FR", "+33612345678", id="french-national"),
    ],
)
def test_a_country_reads_national_numbers(raw: str, country: str, expected: str) -> None:
    assert normalize(raw, country=country) == expected


def test_a_number_valid_in_no_reading_names_the_country() -> None:
    with pytest.raises(PhoneError, match="neither national in CI nor with a country code"):
        normalize("0612345678", country="CI")


def test_country_codes_are_the_phone_library_regions() -> None:
    assert (region(" ci "), region("FR"), region("ZZ"), region("")) == ("CI", "FR", None, None)
