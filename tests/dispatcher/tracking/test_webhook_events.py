"""Provider callback bodies: readable items are kept in order, unreadable ones skipped and counted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dispatcher.tracking.receipts import StatusEvent
from dispatcher.tracking.webhook_events import ERROR_CODE_MAX, meta_batch, twilio_event


def body(*values: Any) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"value": v} for v in values]}]}


def test_statuses_and_replies_of_every_entry_and_change_are_read_in_order() -> None:
    payload = {
        "entry": [
            {"changes": [{"value": {"statuses": [{"id": "wamid.A", "status": "delivered"}]}}]},
            {
                "changes": [
                    {"value": {"statuses": [{"id": "wamid.B", "status": "read", "timestamp": "1700000000"}]}},
                    {
                        "value": {
                            "contacts": [{"wa_id": "2250707123456", "profile": {"name": "Awa"}}],
                            "messages": [{"from": "2250707123456", "timestamp": "1700000000", "text": {"body": "Oui"}}],
                        }
                    },
                ]
            },
        ]
    }
    batch = meta_batch(payload)
    assert [e.provider_message_id for e in batch.statuses] == ["wamid.A", "wamid.B"]
    (reply,) = batch.inbound
    assert (reply.sender, reply.text, reply.name) == ("2250707123456", "Oui", "Awa")
    assert reply.at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert batch.skipped == 0


def test_a_failed_status_carries_the_code_and_the_most_precise_text() -> None:
    error = {"code": 131026, "title": "Undeliverable", "message": "Undeliverable", "error_data": {"details": "x"}}
    (event,) = meta_batch(body({"statuses": [{"id": "wamid.F", "status": "failed", "errors": [error]}]})).statuses
    assert event == StatusEvent("wamid.F", "failed", "131026", "x")
    error = {"code": "9" * 100, "title": "Only a title"}
    (event,) = meta_batch(body({"statuses": [{"id": "wamid.G", "status": "failed", "errors": [error]}]})).statuses
    assert event.error_code == "9" * ERROR_CODE_MAX and event.error_text == "Only a title"


@pytest.mark.parametrize(
    "payload",
    [None, [], "entry", {"entry": "x"}, {"entry": [1, None, "x"]}, {"entry": [{"changes": [1, {"value": []}]}]}],
)
def test_bodies_without_readable_entries_give_nothing(payload: Any) -> None:
    batch = meta_batch(payload)
    assert (batch.statuses, batch.inbound) == ([], [])


def test_unreadable_items_are_skipped_and_counted_while_the_rest_of_the_batch_is_kept() -> None:
    value = {
        "statuses": [
            7,
            {"status": "read"},
            {"id": "wamid.\x00", "status": "read"},
            {"id": "", "status": "read"},
            {"id": {"nested": 1}, "status": "read"},
            {"id": "wamid.OK", "status": "read", "errors": "not a list"},
            {"id": "wamid.OK2", "status": "read"},
        ],
        "contacts": ["x", {"wa_id": "2250707123456", "profile": "not an object"}],
        "messages": [
            {"text": {"body": "no sender"}},
            {"from": "2250707123456", "timestamp": "soon", "text": {"body": "a\x00b"}},
            {"from": "2250707123456", "timestamp": "99999999999999999999"},
        ],
    }
    batch = meta_batch(body(value, "not a value"))
    assert [e.provider_message_id for e in batch.statuses] == ["wamid.OK2"]
    assert [m.text for m in batch.inbound] == ["ab", None]
    assert all(m.at.tzinfo is UTC for m in batch.inbound)
    # 6 statuses, 2 contacts and 1 message could not be read
    assert batch.skipped == 9


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"MessageSid": "SM1", "MessageStatus": "delivered"}, StatusEvent("SM1", "delivered", None, None)),
        (
            {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"},
            StatusEvent("SM1", "failed", "30003", "Twilio undelivered"),
        ),
        ({"MessageSid": "SM1", "MessageStatus": "queued"}, None),
        ({"MessageStatus": "delivered"}, None),
        ({"MessageSid": "SM\x001", "MessageStatus": "delivered"}, None),
    ],
)
def test_twilio_status_callbacks(params: dict[str, str], expected: StatusEvent | None) -> None:
    assert twilio_event(params) == expected


def test_a_twilio_error_code_is_cut_to_its_column_and_loses_nul_characters() -> None:
    event = twilio_event({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "3\x00" + "0" * 80})
    assert event is not None and event.error_code == "3" + "0" * (ERROR_CODE_MAX - 1)
