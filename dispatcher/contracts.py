"""The wire contract between producers and workers: task names and queues.

Names are explicit strings, never derived from module paths, so moving code never strands messages
that are already in the broker. Keep them backward compatible across rolling deploys.
"""

from __future__ import annotations

from typing import Final, NamedTuple

SUBMIT_CAMPAIGN: Final = "dispatcher.submit_campaign"
START_RUN: Final = "dispatcher.start_run"
RESUME_RUN: Final = "dispatcher.resume_run"
SEND_MESSAGE: Final = "dispatcher.send_message"
TICK: Final = "dispatcher.tick"
RECONCILE: Final = "dispatcher.reconcile"
IMPORT_CONTACTS: Final = "dispatcher.import_contacts"

QUEUE_CAMPAIGNS: Final = "campaigns"
QUEUE_SEND_SMS: Final = "send.sms"
QUEUE_SEND_WHATSAPP: Final = "send.whatsapp"

ALL_QUEUES: Final = (QUEUE_CAMPAIGNS, QUEUE_SEND_SMS, QUEUE_SEND_WHATSAPP)


def send_queue(channel: str) -> str:
    """The queue that carries send tasks for a channel ('sms' or 'whatsapp')."""
    return QUEUE_SEND_WHATSAPP if channel == "whatsapp" else QUEUE_SEND_SMS


class SendRef(NamedTuple):
    """What a send task carries, as its positional arguments (a tuple on the wire, so tasks already in the
    broker keep working). The ids let the limiter and the pause/cancel check run before any database
    access; the message id alone is the key."""

    message_id: int
    sender_id: int
    campaign_id: int
    cost: int  # SMS segments: what the sender's rate limit is charged
