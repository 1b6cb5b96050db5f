"""Webhook signatures against the providers' documented vectors."""

from __future__ import annotations

from dispatcher.tracking.signatures import meta_signature, twilio_signature, valid


def test_meta_signature_matches_the_documented_vector() -> None:
    signature = meta_signature("secret", b"test")
    assert signature.startswith("sha256=0329a06b") and signature.endswith("0914")


def test_twilio_signature_matches_the_documented_vector() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == (
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def test_a_missing_or_wrong_signature_is_not_valid() -> None:
    good = meta_signature("secret", b"test")
    assert valid(good, good)
    assert not valid(good, None)
    assert not valid(good, meta_signature("other", b"test"))
