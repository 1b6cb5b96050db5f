"""One recipient's message: an SMS personalised and measured, a template filled, or the reasons it cannot be."""

from __future__ import annotations

import pytest

from dispatcher.content.encoding import Encoding
from dispatcher.content.personalisation import Person
from dispatcher.content.renderer import (
    MAX_SEGMENTS,
    Reason,
    Refusal,
    RefusalCode,
    Rendered,
    Renderer,
    Totals,
)
from dispatcher.db.models import Template

AWA = Person(phone="+2250707123456", first_name="Awa", fields={"ville": "Abidjan"})
ORDER = Template(
    name="commande_prete", language="fr", body="Bonjour {{1}}, votre commande {{2}} est prête.", variables=2
)


def test_an_sms_is_personalised_with_its_encoding_and_segments() -> None:
    rendered = Renderer(text="Bonjour @prenom de @ville").render(AWA, None)
    assert rendered == Rendered(body="Bonjour Awa de Abidjan", segments=1, encoding=Encoding.GSM7)


def test_a_variable_the_contact_has_no_value_for_is_refused_on_its_fields() -> None:
    result = Renderer(text="Bonjour @prenom, code @code").render(AWA, None)
    message = "unknown variable @code: contact +2250707123456 has no such field"
    assert result == Refusal((Reason(RefusalCode.VARIABLE, message, ("fields",)),))


def test_a_text_left_empty_by_personalisation_is_refused_on_the_text() -> None:
    result = Renderer(text="@prenom").render(Person(phone="+2250101010101"), None)
    message = "the text is empty once personalised for contact +2250101010101"
    assert result == Refusal((Reason(RefusalCode.EMPTY, message, None),))


def test_a_text_over_the_segment_cap_once_personalised_is_refused_on_the_text() -> None:
    # Given a text of 10 GSM-7 segments for Awa
    renderer = Renderer(text="@ville " + "a" * 1400)
    assert isinstance(renderer.render(AWA, None), Rendered)
    # When a town with one non-GSM character makes the whole text UCS-2 (67 characters a part)
    result = renderer.render(Person(phone="+2250707123456", fields={"ville": "Côte"}), None)
    # Then that recipient is over the cap
    message = f"the text makes 21 SMS segments (at most {MAX_SEGMENTS})"
    assert result == Refusal((Reason(RefusalCode.TOO_LONG, message),))


def test_a_template_is_filled_in_order() -> None:
    rendered = Renderer(template=ORDER).render(AWA, {"2": "ORD-123", "1": "Jean"})
    assert rendered == Rendered(
        body="Bonjour Jean, votre commande ORD-123 est prête.", segments=1, template_params=["Jean", "ORD-123"]
    )


def test_a_missing_template_key_is_refused_on_that_key() -> None:
    result = Renderer(template=ORDER).render(AWA, {"1": "Jean"})
    message = "missing {{2}}: template 'commande_prete' has 2 variable(s)"
    assert result == Refusal((Reason(RefusalCode.TEMPLATE_DATA, message, ("data", "2")),))


def test_no_data_at_all_names_every_key() -> None:
    result = Renderer(template=ORDER).render(AWA, None)
    assert isinstance(result, Refusal) and [r.key for r in result.reasons] == [("data", "1"), ("data", "2")]


def test_an_extra_template_key_is_refused_on_that_key() -> None:
    result = Renderer(template=ORDER).render(AWA, {"1": "Jean", "2": "A", "3": "x"})
    message = "template 'commande_prete' has 2 variable(s); '3' is not one of them"
    assert result == Refusal((Reason(RefusalCode.TEMPLATE_DATA, message, ("data", "3")),))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param("Jean\nDupont", "cannot contain a newline, a tab or four spaces in a row", id="newline"),
        pytest.param("   ", "cannot be empty", id="blank"),
        pytest.param("x" * 1025, "limited to 1024 characters", id="too-long"),
    ],
)
def test_a_parameter_meta_would_refuse_is_refused_on_its_key(value: str, says: str) -> None:
    result = Renderer(template=ORDER).render(AWA, {"1": value, "2": "A"})
    assert isinstance(result, Refusal)
    [reason] = result.reasons
    assert (reason.code, reason.key) == (RefusalCode.TEMPLATE_DATA, ("data", "1")) and says in reason.text


def test_a_renderer_needs_a_text_or_a_template() -> None:
    with pytest.raises(ValueError, match="a text or a template"):
        Renderer()
    with pytest.raises(ValueError, match="a text or a template"):
        Renderer(text="x", template=ORDER)


def test_totals_keep_the_worst_encoding_the_longest_message_and_the_sum() -> None:
    totals = Totals()
    for body in ("Bonjour", "Bonjour Maëlle Côté " + "a" * 140, "Salut"):
        rendered = Renderer(text=body).render(AWA, None)
        assert isinstance(rendered, Rendered)
        totals.add(rendered)
    assert totals == Totals(recipients=3, encoding=Encoding.UCS2, segments=3, total_segments=5)


def test_template_totals_count_recipients_but_no_segments() -> None:
    totals = Totals()
    rendered = Renderer(template=ORDER).render(AWA, {"1": "Jean", "2": "A"})
    assert isinstance(rendered, Rendered)
    totals.add(rendered)
    assert totals == Totals(recipients=1)
