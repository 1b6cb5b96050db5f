"""Fast fan-out on the Redis broker: many messages of one task to one queue, one multi-value LPUSH per chunk.

`Task.apply_async` costs, per message: routing, a producer publish, kombu's message preparation (a
new redis client object per command) and one Redis round trip (an LPUSH). At 100k recipients that is
most of `start_run`. Here each message carries exactly what Celery and kombu would put in it (Celery's
own `amqp.as_task_v2` builds a prototype per call for the protocol-2 headers, properties and body;
kombu's Redis envelope goes around them), serialized as compact JSON (the same values without the
blanks: ~90 bytes less per queued recipient), and a chunk goes to the queue's list in one
`LPUSH queue m1 m2 ...`. Redis pushes the values left to right, so workers (BRPOP from the right)
receive them in publishing order, as with one LPUSH per message. `python -m bench fanout` checks the
decoded messages against `apply_async`'s; `python -m bench pipeline` runs them on a real worker.

What the fast path leaves out, and why that is safe here:
- the `before_task_publish`/`after_task_publish` signals and the `task-sent` event (nothing here uses
  them; `task_send_sent_event` is off);
- kombu's publish retries: a chunk is one command on kombu's own redis connection pool (redis-py's
  retry settings apply); if it fails the caller sees the error, and messages whose task never arrived
  are republished by the reconciler when their lease expires; a chunk pushed twice after an ambiguous
  timeout is harmless, since the send's claim runs each message once;
- queue declaration: a worker declares the queues it consumes; a list needs no binding to be consumed;
- the calling task's result trail (`request.children`: results are ignored, and at 100k sends it held
  100k AsyncResult objects in start_run's memory).

Anything this path would not put on the same list (another transport, priorities, a queue routed
through a non-direct exchange, queue expiry or TTL) goes through `apply_async` unchanged.
"""

from __future__ import annotations

import uuid
from base64 import b64encode
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from celery.utils.saferepr import saferepr
from kombu.utils import json as kombu_json

DEFAULT_CHUNK = 1000
# kombu's Redis channel: body_encoding 'base64', persistent delivery mode.
_BODY_ENCODING = "base64"
_PERSISTENT = 2
_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
# The same JSON values as kombu writes, without the blanks after ',' and ':' (about 9% of a send message
# in Redis: ~90 bytes per queued recipient).
_COMPACT = (",", ":")
# kombu's JSON (its encoder knows datetimes, UUIDs, decimals), typed.
dumps: Callable[..., str] = kombu_json.dumps


def publish_many(
    app: Celery,
    task: Task,
    arglists: Iterable[Sequence[Any]],
    queue: str,
    *,
    countdown: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> int:
    """Publish `task(*args)` for every `args` to `queue`; returns how many were published."""
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        if not _fast_path_applies(app, task, queue, channel):
            count = 0
            for args in arglists:
                task.apply_async(tuple(args), queue=queue, producer=producer, countdown=countdown)
                count += 1
            return count
        build = _builder(app, task, queue, countdown)
        count = 0
        batch: list[str] = []
        with channel.conn_or_acquire() as client:
            for args in arglists:
                batch.append(build(args))
                if len(batch) >= chunk:
                    client.lpush(queue, *batch)
                    count += len(batch)
                    batch = []
            if batch:
                client.lpush(queue, *batch)
                count += len(batch)
        return count


def _fast_path_applies(app: Celery, task: Task, queue: str, channel: Any) -> bool:
    """Would `apply_async` put exactly these messages on the list named `queue`, at priority 0, as JSON?"""
    if channel.connection.client.transport.driver_type != "redis" or not hasattr(channel, "conn_or_acquire"):
        return False
    conf = app.conf
    if task.priority or conf.task_default_priority or conf.task_inherit_parent_priority:
        return False
    if conf.task_protocol != 2 or (task.serializer or conf.task_serializer) != "json" or conf.task_compression:
        return False
    if task.expires is not None or getattr(task, "_dump_pydantic_arguments", None) is not None:
        return False
    if getattr(task.shadow_name, "__func__", None) is not Task.shadow_name:  # a custom one changes the headers
        return False
    if conf.task_default_delivery_mode not in ("persistent", _PERSISTENT):
        return False
    try:
        declared = app.amqp.queues[queue]  # what apply_async's router resolves (creating it if missing)
    except KeyError:
        return False
    exchange = declared.exchange
    return bool(
        (exchange is None or (exchange.type == "direct" and exchange.delivery_mode in (None, _PERSISTENT)))
        and not declared.max_priority
        and not declared.expires
        and not declared.message_ttl
    )


def _builder(app: Celery, task: Task, queue: str, countdown: float | None) -> Callable[[Sequence[Any]], str]:
    """A function args -> the serialized kombu message that `apply_async(args, queue=queue)` would LPUSH.

    Celery's `as_task_v2` builds one prototype message per call (every header and property comes from
    it: time limits, origin, reply_to, ignore_result, parent and root ids, eta); each message then
    differs only in its ids, arguments and argsrepr.
    """
    eta = (app.now() + timedelta(seconds=countdown)).isoformat() if countdown else None
    parent = app.current_worker_task
    root_id = (parent.request.root_id or parent.request.id) if parent else None
    proto = app.amqp.as_task_v2(
        _PLACEHOLDER,
        task.name,
        (),
        {},
        eta=eta,
        reply_to=app.thread_oid,
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        root_id=root_id,
        parent_id=parent.request.id if parent else None,
        ignore_result=task.ignore_result,
    )
    headers_proto: dict[str, Any] = proto.headers
    props_proto: dict[str, Any] = {
        **proto.properties,
        "delivery_mode": _PERSISTENT,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": _BODY_ENCODING,
    }
    _, kwargs_proto, embed = proto.body
    maxsize = app.amqp.argsrepr_maxsize
    own_root = root_id is None  # outside a task, each message is its own root (as_task_v2's default)
    # apply_async checks the arguments against the task's signature before publishing; so do we.
    check_arguments = getattr(task, "__header__", None) if task.typing else None

    def build(args: Sequence[Any]) -> str:
        task_id = str(uuid.uuid4())
        args = tuple(args)
        if check_arguments is not None:
            check_arguments(*args)
        headers = {
            **headers_proto,
            "id": task_id,
            "root_id": task_id if own_root else root_id,
            "argsrepr": _argsrepr(args, maxsize),
        }
        properties = {**props_proto, "correlation_id": task_id, "delivery_tag": str(uuid.uuid4())}
        body = b64encode(dumps((args, kwargs_proto, embed), separators=_COMPACT).encode()).decode()
        return dumps(
            {
                "body": body,
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            },
            separators=_COMPACT,
        )

    return build


def _argsrepr(args: tuple[Any, ...], maxsize: int) -> str:
    """Celery's argsrepr: saferepr, or plain repr (the same text, several times faster) for short int tuples."""
    if all(type(a) is int for a in args):
        text = repr(args)
        if len(text) <= maxsize:
            return text
    return str(saferepr(args, maxsize))
