"""Wire check: the fast path's messages against the ones Celery's own `apply_async` puts on the queue.

Both are read back from Redis and decoded (envelope JSON, base64 body JSON); per-message values (task
id, root id, correlation id, delivery tag, argsrepr, origin pid) are masked, the eta is compared to
within a second. Anything else that differs is reported.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from bench import env

QUEUE = env.WIRE_QUEUE
_MASKED_HEADERS = ("id", "root_id")
_MASKED_PROPERTIES = ("correlation_id", "delivery_tag")


def _decode(raw: bytes | str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def _masked(message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    headers = dict(message["headers"])
    for key in _MASKED_HEADERS:
        headers[key] = "<id>" if headers.get(key) == message["headers"]["id"] else headers.get(key)
    eta = headers.pop("eta")
    properties = dict(message["properties"])
    for key in _MASKED_PROPERTIES:
        properties[key] = "<masked>"
    return {**message, "headers": headers, "properties": properties}, eta


def _eta_gap(a: str | None, b: str | None) -> float:
    if a is None or b is None:
        return 0.0 if a == b else float("inf")
    return abs((datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds())


def compare(countdown: float | None = None) -> list[str]:
    """Differences between the two paths for a few send refs (empty: equivalent)."""
    from workers import publisher
    from workers.app import app
    from workers.tasks import send_message

    refs = [(101, 7, 9, 1), (102, 7, 9, 2)]
    r = env.client()
    r.delete(QUEUE)
    for ref in refs:
        send_message.apply_async(ref, queue=QUEUE, countdown=countdown)
    publisher.publish_many(app, send_message, refs, QUEUE, countdown=countdown)
    raw = list(reversed(r.lrange(QUEUE, 0, -1)))  # LPUSH then reversed: publishing order
    r.delete(QUEUE)
    r.close()
    celery_side, fast_side = [_decode(m) for m in raw[: len(refs)]], [_decode(m) for m in raw[len(refs) :]]
    problems: list[str] = []
    if len(fast_side) != len(refs):
        return [f"expected {len(refs)} fast-path messages, found {len(fast_side)}"]
    for ref, slow, fast in zip(refs, celery_side, fast_side, strict=True):
        (a, eta_a), (b, eta_b) = _masked(slow), _masked(fast)
        if a != b:
            problems.append(f"{ref}: celery {json.dumps(a, sort_keys=True)} != fast {json.dumps(b, sort_keys=True)}")
        if _eta_gap(eta_a, eta_b) > 1.0:
            problems.append(f"{ref}: eta {eta_a} != {eta_b}")
        if fast["body"][0] != list(ref):
            problems.append(f"{ref}: body args {fast['body'][0]}")
        if fast["headers"]["id"] == slow["headers"]["id"]:
            problems.append(f"{ref}: task ids collide")
    return problems
