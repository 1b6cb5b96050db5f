"""The fan-out fast path puts on the queue what Celery's own apply_async would, in publishing order."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from celery import Celery

from workers import publisher

QUEUE = "test.publisher"


@pytest.fixture
def app(redis_url: str) -> Celery:
    from workers.app import app as real_app

    app = Celery("publisher-test", broker=redis_url, set_as_current=False)
    app.conf.update({key: real_app.conf[key] for key in ("task_serializer", "accept_content", "task_acks_late")})
    return app


@pytest.fixture
def queue(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    client.close()


def _fast_path(app: Celery, task: Any) -> bool:
    with app.producer_or_acquire() as producer:
        return publisher._fast_path_applies(app, task, QUEUE, producer.channel)


def _decoded(client: redis.Redis) -> list[dict[str, Any]]:
    """The queue's messages in the order a worker takes them (BRPOP: from the right)."""
    messages = [json.loads(raw) for raw in reversed(client.lrange(QUEUE, 0, -1))]
    for message in messages:
        message["body"] = json.loads(base64.b64decode(message["body"]))
    return messages


def _masked(message: dict[str, Any]) -> dict[str, Any]:
    """Everything but the values that differ per message by design (ids, argsrepr, eta)."""
    headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id", "argsrepr", "eta")}
    properties = {k: v for k, v in message["properties"].items() if k not in ("correlation_id", "delivery_tag")}
    return {**message, "headers": headers, "properties": properties}


@pytest.mark.parametrize("countdown", [None, 30.0])
def test_fast_path_matches_apply_async(app: Celery, queue: redis.Redis, countdown: float | None) -> None:
    @app.task(name="test.send", shared=False)
    def send(message_id: int, sender_id: int, campaign_id: int, cost: int) -> None:  # pragma: no cover
        raise AssertionError("never run")

    refs = [(101, 7, 9, 1), (102, 7, 9, 2), (103, 7, 9, 1)]
    for ref in refs:
        send.apply_async(ref, queue=QUEUE, countdown=countdown)
    assert _fast_path(app, send)
    assert publisher.publish_many(app, send, refs, QUEUE, countdown=countdown, chunk=2) == len(refs)

    messages = _decoded(queue)
    celery_side, fast_side = messages[: len(refs)], messages[len(refs) :]
    assert [m["body"][0] for m in fast_side] == [list(ref) for ref in refs]  # publishing order kept
    for slow, fast in zip(celery_side, fast_side, strict=True):
        assert _masked(fast) == _masked(slow)
        assert fast["headers"]["root_id"] == fast["headers"]["id"] == fast["properties"]["correlation_id"]
        assert fast["headers"]["id"] != slow["headers"]["id"]
        assert fast["headers"]["argsrepr"] == slow["headers"]["argsrepr"]
        if countdown is None:
            assert fast["headers"]["eta"] is None
        else:
            gap = datetime.fromisoformat(fast["headers"]["eta"]) - datetime.fromisoformat(slow["headers"]["eta"])
            assert abs(gap.total_seconds()) < 1.0
    assert len({m["headers"]["id"] for m in fast_side}) == len(refs)


def test_wrong_arguments_are_refused_before_anything_is_queued(app: Celery, queue: redis.Redis) -> None:
    @app.task(name="test.send2", shared=False)
    def send(message_id: int, sender_id: int) -> None:  # pragma: no cover
        raise AssertionError("never run")

    with pytest.raises(TypeError):
        publisher.publish_many(app, send, [(1, 2, 3)], QUEUE)
    assert queue.llen(QUEUE) == 0


def test_priorities_take_celerys_own_path(app: Celery, queue: redis.Redis) -> None:
    @app.task(name="test.send3", shared=False, priority=5)
    def send(message_id: int) -> None:  # pragma: no cover
        raise AssertionError("never run")

    assert not _fast_path(app, send)
    assert publisher.publish_many(app, send, [(1,), (2,)], QUEUE) == 2
    # kombu's Redis transport files priorities in lists of their own ("queue", "queue\x06\x163", ...).
    keys = queue.keys(f"{QUEUE}*")
    messages = [json.loads(raw) for key in keys for raw in queue.lrange(key, 0, -1)]
    queue.delete(*keys)
    assert sorted(json.loads(base64.b64decode(m["body"]))[0] for m in messages) == [[1], [2]]
    assert {m["properties"]["priority"] for m in messages} == {5}
