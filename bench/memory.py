"""Redis memory per queued recipient: N send tasks on a queue no worker consumes.

Figures, each per recipient:
- ours: `publish_sends` (the fast path); `MEMORY USAGE <queue> SAMPLES 0` / N, plus any other key the
  publish created (there are none: a queued kombu message lives only in its list entry);
- ours via apply_async: the same task published by Celery's own `apply_async` (what publish_sends did
  before `workers.publisher`): same content, kombu's JSON with blanks;
- naive: a message carrying what a send needs inline (rendered text, phone, contact, campaign and sender
  data), published with `apply_async`;
- the INFO used_memory delta (instance-wide, so other databases' traffic shows up in it: a cross-check).
And the byte split of one of our messages (headers / properties / body / envelope).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import env
from bench.report import Summary, say
from dispatcher.contracts import SendRef

TARGET_BYTES = 1024
QUEUE = "send.sms"
NAIVE_QUEUE = "bench.naive"
NAIVE_TASK = "bench.naive_send"


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 10_000
    chunk: int = 500


@dataclass(frozen=True, slots=True)
class Measured:
    per_recipient: float
    used_memory_delta: float
    stored_bytes: float
    other_keys: int


def naive_kwargs(i: int) -> dict[str, Any]:
    """What a send needs, inline (the rendered text, the phone, campaign and sender data) instead of a row id.

    Sized like the issue's reference (~1.8 kB per queued message): Celery repeats the kwargs in the
    `kwargsrepr` header and base64 grows the body by a third, so every inline byte costs about 2.3.
    """
    return {
        "message_id": i,
        "to": f"+22507{i:08d}",
        "body": f"Bonjour Awa Kouassi, votre commande CMD-{i:06d} est prete. Retrait au magasin Plateau avant le "
        "30/06 18h. STOP au 7XXX",
        "segments": 1,
        "campaign": {"id": 4242, "run_id": 4243, "account_id": 17, "name": "Commandes pretes - juin"},
        "sender": {"id": 9, "label": "My Sender", "provider": "sandbox"},
    }


def _measure(publish: Callable[[int], None], queue: str, n: int) -> Measured:
    r = env.client()
    r.delete(queue)
    before_keys = set(r.keys("*"))
    before = int(r.info("memory")["used_memory"])
    publish(n)
    after = int(r.info("memory")["used_memory"])
    length = int(r.llen(queue))
    if length != n:
        raise RuntimeError(f"{length} messages on {queue}, expected {n}")
    usage = int(r.memory_usage(queue, samples=0) or 0)
    new_keys = set(r.keys("*")) - before_keys - {queue.encode()}
    other = sum(int(r.memory_usage(k, samples=0) or 0) for k in new_keys)
    stored = sum(len(m) for m in r.lrange(queue, 0, -1))
    r.delete(queue)
    r.close()
    return Measured((usage + other) / n, (after - before) / n, stored / n, len(new_keys))


def _ours(n: int, chunk: int) -> None:
    from workers.tasks import publish_sends

    refs = [SendRef(i, 1, 1, 1) for i in range(1, n + 1)]
    for i in range(0, n, chunk):
        publish_sends(refs[i : i + chunk], "sms")


def _apply_async(n: int) -> None:
    from workers.app import app
    from workers.tasks import send_message

    with app.producer_or_acquire() as producer:
        for i in range(1, n + 1):
            send_message.apply_async((i, 1, 1, 1), queue=QUEUE, producer=producer)


def _naive(n: int) -> None:
    from workers.app import app

    with app.producer_or_acquire() as producer:
        for i in range(1, n + 1):
            app.send_task(NAIVE_TASK, kwargs=naive_kwargs(i), queue=NAIVE_QUEUE, producer=producer)


def split_of_one() -> dict[str, int]:
    """Bytes of one of our stored messages by part (JSON as stored, the body base64 as stored)."""
    from workers.tasks import publish_sends

    r = env.client()
    r.delete(QUEUE)
    publish_sends([SendRef(123456, 12, 3456, 1)], "sms")
    raw = r.lpop(QUEUE)
    r.close()
    assert isinstance(raw, bytes)
    message = json.loads(raw)
    compact = (",", ":")
    parts = {
        "headers": len(json.dumps(message["headers"], separators=compact)),
        "properties": len(json.dumps(message["properties"], separators=compact)),
        "body (base64)": len(message["body"]),
    }
    parts["envelope keys"] = len(raw) - sum(parts.values())
    parts["total"] = len(raw)
    return parts


def run(opts: Options) -> Summary:
    n = opts.messages
    say(f"--- memory: {n:,} queued send tasks per figure")
    ours = _measure(lambda k: _ours(k, opts.chunk), QUEUE, n)
    say(
        f"memory ours: {ours.per_recipient:.0f} B/recipient (MEMORY USAGE), message {ours.stored_bytes:.0f} B, "
        f"used_memory delta {ours.used_memory_delta:.0f} B, other keys created: {ours.other_keys}"
    )
    before = _measure(_apply_async, QUEUE, n)
    say(
        f"memory ours via apply_async (before): {before.per_recipient:.0f} B/recipient, "
        f"message {before.stored_bytes:.0f} B, used_memory delta {before.used_memory_delta:.0f} B"
    )
    naive = _measure(_naive, NAIVE_QUEUE, n)
    say(
        f"memory naive (inline data): {naive.per_recipient:.0f} B/recipient, message {naive.stored_bytes:.0f} B, "
        f"used_memory delta {naive.used_memory_delta:.0f} B"
    )
    split = split_of_one()
    say("memory split of one message: " + ", ".join(f"{k} {v} B" for k, v in split.items()))
    met = ours.per_recipient <= TARGET_BYTES
    line = (
        f"{ours.per_recipient:.0f} B/recipient (naive {naive.per_recipient:.0f} B, "
        f"apply_async {before.per_recipient:.0f} B)  (target <= 1 kB)"
    )
    return Summary("memory", line, met)
