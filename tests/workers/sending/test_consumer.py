"""The batch consumer: send tasks read as refs, consumed many at a time by the test worker, and delayed
messages kept out of the way of the ones that are due."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from dispatcher import contracts, keys
from dispatcher.contracts import SendRef
from dispatcher.tracking.metrics import SEP
from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone
from workers.sending.consumer import ref_of


@pytest.mark.parametrize(
    ("body", "ref"),
    [
        ([[7, 2, 3, 2], {}, {}], SendRef(7, 2, 3, 2)),
        ([[7], {"sender_id": 2, "campaign_id": 3}, {}], SendRef(7, 2, 3, 1)),
        ([[7], {}, {}], SendRef(7, 0, 0, 1)),  # an old task with only the message id: looked up
    ],
)
def test_a_send_task_body_is_read_as_a_ref(body: list, ref: SendRef) -> None:
    assert ref_of(body) == ref


def test_an_unreadable_body_is_refused() -> None:
    with pytest.raises((ValueError, TypeError, KeyError, IndexError)):
        ref_of([[], {}, {}])


def _batches(r: redis.Redis) -> tuple[int, int]:
    raw = r.hgetall(keys.metrics("batches"))
    count = sum(int(v) for k, v in raw.items() if k.endswith(f"{SEP}count"))
    messages = sum(int(v) for k, v in raw.items() if k.endswith(f"{SEP}messages"))
    return count, messages


def _campaign(tenant: Tenant, n: int, offset: int) -> str:
    contacts = [{"phone": ci_phone(offset + i)} for i in range(n)]
    created = tenant.post("/v1/campaigns", {"contacts": contacts, "text": "Promo"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_campaign_is_sent_in_batches_of_many_messages(
    stack: Stack, tenant: Tenant, sandbox_box: httpx.Client
) -> None:
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    count0, messages0 = _batches(r)
    done = tenant.wait_final(_campaign(tenant, 300, 7_100_000))
    assert done["status"] == "SENT" and done["stats"]["sent"] == 300
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == 300
    count, messages = _batches(r)
    assert messages - messages0 >= 300
    # Many messages per batch, not one task per message
    assert (messages - messages0) / (count - count0) > 4


def test_delayed_messages_do_not_hold_back_the_ones_that_are_due(
    stack: Stack, tenant: Tenant, sandbox_box: httpx.Client
) -> None:
    from workers.app import app

    # More delayed messages than the consumer's whole prefetch, due in 8 s (ids that do not exist)
    delay = 8.0
    with app.producer_or_acquire() as producer:
        for i in range(600):
            args = [900_000_000 + i, tenant.sender_id, 1, 1]
            app.send_task(
                contracts.SEND_MESSAGE, args=args, queue=contracts.QUEUE_SEND_SMS, countdown=delay, producer=producer
            )
    started = time.monotonic()
    done = tenant.wait_final(_campaign(tenant, 40, 7_200_000), timeout=60)
    # The campaign went while the delayed ones were still waiting for their time
    assert done["status"] == "SENT" and done["stats"]["sent"] == 40
    assert time.monotonic() - started < delay
