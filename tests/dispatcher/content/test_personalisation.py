"""`@variables`: built-ins, custom fields, e-mail addresses left alone, empty values tidied."""

from __future__ import annotations

import pytest

from dispatcher.content.personalisation import Person, custom_variables, missing_fields, render, variables_in

AWA = Person(
    phone="+2250707123456",
    name="Awa Koné",
    first_name="Awa",
    last_name="Koné",
    fields={"ville": "Abidjan", "points": 12.0},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Bonjour @nom_complet bon début de semaine.", "Bonjour Awa Koné bon début de semaine.", id="seed"),
        pytest.param("@prenom @nom (@telephone)", "Awa Koné (+2250707123456)", id="builtins"),
        pytest.param("Rendez-vous à @ville", "Rendez-vous à Abidjan", id="custom"),
        pytest.param("Vous avez @points points", "Vous avez 12 points", id="float-integer"),
        pytest.param("Écrivez à info@example.com", "Écrivez à info@example.com", id="email-untouched"),
        pytest.param("Prix @ 10€", "Prix @ 10€", id="lone-at"),
        pytest.param("@prenom,@prenom!", "Awa,Awa!", id="repeated"),
    ],
)
def test_render(text: str, expected: str) -> None:
    assert render(text, AWA) == expected


def test_a_missing_builtin_disappears_with_its_space() -> None:
    anonymous = Person(phone="+2250101010101")
    assert render("Bonjour @nom_complet bon début de semaine.", anonymous) == "Bonjour bon début de semaine."
    assert render("Bonjour @prenom, ça va ?", anonymous) == "Bonjour, ça va ?"


def test_full_name_falls_back_to_first_and_last_name() -> None:
    assert render("@nom_complet", Person(phone="+1", first_name="Jean", last_name="Diallo")) == "Jean Diallo"


def test_variables_and_missing_custom_fields() -> None:
    text = "Bonjour @prenom, @ville et @code; contact@example.com"
    assert variables_in(text) == ["prenom", "ville", "code"]
    assert custom_variables(text) == ["ville", "code"]
    assert missing_fields(AWA, custom_variables(text)) == ["code"]
