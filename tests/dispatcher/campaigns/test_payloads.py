"""Both documented payload shapes parse into one CampaignSpec; errors name the field and index."""

from __future__ import annotations

import pytest

from dispatcher.campaigns.payloads import parse
from dispatcher.errors import SpecError

# The SMS document's examples, with valid numbers (its 22500000000 is the pre-2021 Ivorian format).
SMS_SEED = {
    "contacts": [
        {"id": "contact_1", "phone": "2250707000000", "name": "John Doe"},
        {"phone": "2250101010101"},
    ],
    "groupsIds": ["group_1", "group_2"],
    "text": "Bonjour @nom_complet bon début de semaine.",
    "senderId": "My Sender",
}
SMS_SCHEDULED_SEED = {
    "contacts": [{"id": "contact_1", "phone": "2250707000000", "name": "John Doe"}],
    "text": "Rappel : Votre rendez-vous est demain à 10h.",
    "senderId": "My Sender",
    "type": "SCHEDULED",
    "scheduledDate": "2024-03-20T10:00:00.000Z",
}
SMS_RECURRING_SEED = {
    "contacts": [{"id": "contact_1", "phone": "2250707000000", "name": "John Doe"}],
    "text": "Rappel hebdomadaire : N'oubliez pas votre séance.",
    "senderId": "My Sender",
    "type": "RECURRING",
    "recurring": {
        "monday": "2024-03-18T09:00:00.000Z",
        "wednesday": "2024-03-20T09:00:00.000Z",
        "friday": "2024-03-22T09:00:00.000Z",
    },
}
# The WhatsApp document's playground payload, as pasted (global configuration under "*").
WHATSAPP_SEED = {
    "title": "Campagne de Bienvenue",
    "contacts_and_data": {
        "*": {
            "channel": "whatsapp",
            "sender_label_id": "VOTRE_ID_EXPEDITEUR",
            "message_template_id": "VOTRE_ID_MODELE",
        },
        "contacts": [
            {"wa_id": "212600000000", "data": {"1": "Jean", "2": "ORD-123"}},
            {"wa_id": "212600000001", "data": {"1": "Jeanne", "2": "ORD-456"}},
        ],
    },
}


def test_the_sms_seed_object_parses() -> None:
    spec = parse(SMS_SEED)
    assert (spec.channel, spec.type, spec.sender_ref) == ("sms", "SMS", "My Sender")
    assert spec.group_ids == ["group_1", "group_2"]
    assert [(r.contact_id, r.phone, r.name) for r in spec.recipients] == [
        ("contact_1", "2250707000000", "John Doe"),
        (None, "2250101010101", None),
    ]
    assert spec.recipients[1].loc == ("contacts", 1)


def test_the_scheduled_and_recurring_seed_objects_parse() -> None:
    scheduled = parse(SMS_SCHEDULED_SEED)
    assert scheduled.type == "SCHEDULED" and scheduled.scheduled_at is not None
    assert scheduled.scheduled_at.isoformat() == "2024-03-20T10:00:00+00:00"
    recurring = parse(SMS_RECURRING_SEED)
    assert recurring.type == "RECURRING" and set(recurring.recurring or {}) == {"monday", "wednesday", "friday"}


def test_the_whatsapp_seed_envelope_parses_with_star_or_underscore() -> None:
    for key in ("*", "_"):
        payload = {
            **WHATSAPP_SEED,
            "contacts_and_data": {
                key: WHATSAPP_SEED["contacts_and_data"]["*"],
                "contacts": WHATSAPP_SEED["contacts_and_data"]["contacts"],
            },
        }
        spec = parse(payload)
        assert (spec.channel, spec.name, spec.template_ref) == ("whatsapp", "Campagne de Bienvenue", "VOTRE_ID_MODELE")
        assert [r.data for r in spec.recipients] == [{"1": "Jean", "2": "ORD-123"}, {"1": "Jeanne", "2": "ORD-456"}]
        assert spec.recipients[0].phone_field == "wa_id"
        assert spec.locs["sender"] == ("contacts_and_data", key, "sender_label_id")


def test_the_envelope_with_channel_sms_carries_text_and_phones() -> None:
    spec = parse(
        {
            "title": "T",
            "start_datetime": "2030-01-01T10:00:00Z",
            "contacts_and_data": {
                "_": {"channel": "sms", "sender_label_id": "My Sender", "text": "Code @code"},
                "contacts": [{"phone": "2250707123456", "data": {"code": "X"}}],
            },
        }
    )
    assert (spec.channel, spec.type, spec.text) == ("sms", "SCHEDULED", "Code @code")
    assert spec.recipients[0].fields == {"code": "X"}


def _locs(payload: object) -> list[list[object]]:
    with pytest.raises(SpecError) as caught:
        parse(payload)
    return [e["loc"] for e in caught.value.errors]


def test_errors_name_the_field_and_contact_index() -> None:
    assert _locs({"contacts": [{"phone": "1"}, {"name": "no phone"}], "text": "x"}) == [["contacts", 1]]
    assert ["text"] in _locs({"contacts": [{"phone": "2250707123456"}]})
    assert ["sheduledDate"] in _locs({**SMS_SEED, "sheduledDate": "2030-01-01T10:00:00Z"})
    assert ["type"] in _locs({**SMS_SEED, "type": "WEEKLY"})


def test_an_envelope_needs_exactly_one_global_configuration() -> None:
    both = {
        "title": "T",
        "contacts_and_data": {
            "_": {"channel": "sms", "text": "x"},
            "*": {"channel": "sms", "text": "x"},
            "contacts": [{"phone": "2250707123456"}],
        },
    }
    assert _locs(both) == [["contacts_and_data"]]
    sms_without_text = {"title": "T", "contacts_and_data": {"_": {"channel": "sms"}, "contacts": [{"phone": "1"}]}}
    assert _locs(sms_without_text) == [["contacts_and_data", "_", "text"]]


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert _locs([1, 2]) == [[]]
