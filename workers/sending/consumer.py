"""The send queues, consumed in batches: a Celery consumer step of our own.

`dispatcher.send_message` stays one task per recipient on the broker (producers, the fast publisher, the
reconciler and the queues are unchanged), but a worker hands them to `engine.send_batch` up to
`send_batch_size` at a time, or what arrived within `send_batch_wait_ms`: Celery's per-task machinery
and the guarantees' round trips (limiter, claim, final write, counters) are paid once per batch, and a
batch's provider calls run side by side on one event loop.

Why not celery-batches: its latest release (0.11) declares `celery<5.7`; it acks every request after the
batch even when the batch raised; its buffer holds ETA messages, so deferred sends stall the consumer;
and it hides tasks from Flower just the same. This step:

* takes over the send queues the worker was started with (`-Q ...,send.sms`) from Celery's task consumer,
  on a channel of its own whose prefetch is `send_batch_size * (send_batch_threads + 1)`;
* acks a message only after its batch's final write committed; a batch that dies is published again
  with a countdown (its claimed rows, if any, are settled by the reconciler), never acked as done;
* keeps ETA messages (retries, deferrals) in a heap until they are due, out of the buffer, raising the
  prefetch meanwhile as Celery does for its own ETA tasks;
* acks, rejects and flushes on the consumer's own thread (py-amqp channels are not thread-safe), while
  batches run on `send_batch_threads` threads, each with its own event loop and HTTP client.

Flower shows no task per recipient: the `dispatcher_send_batches` and `dispatcher_messages` metrics do.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import structlog
from celery import bootsteps
from kombu.common import QoS
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Consumer

from dispatcher import contracts, redis_client
from dispatcher.config import Settings, get_settings
from dispatcher.contracts import SendRef
from dispatcher.tracking import metrics
from workers.sending import engine
from workers.sending.context import Context
from workers.sending.limiter import SenderLimiter

log = structlog.get_logger(__name__)

# Seconds a dead batch's messages wait before they are tried again.
DEAD_BATCH_RETRY = 5.0
_REF_FIELDS = SendRef._fields


def send_refs(refs: Sequence[SendRef], settings: Settings, publish: Callable[..., Any]) -> list[engine.Outcome]:
    """Send a batch on this thread, then publish what asks to be retried (`publish(args, queue, countdown)`)."""
    ctx = Context.for_thread(redis_client.get_redis(), _limiter(settings), settings)
    try:
        outcomes = engine.send_batch(ctx, refs)
    finally:
        ctx.close()
    for ref, outcome in zip(refs, outcomes, strict=True):
        if outcome.retry_in is not None:
            # A fresh message, not a Celery retry: throttling must not eat a retry budget, and the attempt
            # count lives on the message row where every worker sees it.
            publish(tuple(ref), contracts.send_queue(outcome.channel), outcome.retry_in)
    return outcomes


_limiters: dict[float, SenderLimiter] = {}


def _limiter(settings: Settings) -> SenderLimiter:
    limiter = _limiters.get(settings.limiter_max_wait_seconds)
    if limiter is None:
        limiter = _limiters[settings.limiter_max_wait_seconds] = SenderLimiter(
            redis_client.get_redis(), max_wait=settings.limiter_max_wait_seconds
        )
    return limiter


def ref_of(body: Any) -> SendRef:
    """A send task's arguments (Celery protocol 2 body: `[args, kwargs, embed]`) as a SendRef."""
    args, kwargs = body[0], body[1]
    values = dict(zip(_REF_FIELDS, args, strict=False)) | {k: v for k, v in kwargs.items() if k in _REF_FIELDS}
    return SendRef(
        int(values["message_id"]),
        int(values.get("sender_id") or 0),
        int(values.get("campaign_id") or 0),
        int(values.get("cost") or 1),
    )


class BatchSendConsumer(bootsteps.ConsumerStep):
    """Consumes `dispatcher.send_message` from the send queues in batches (see the module docstring)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.settings = get_settings()
        self.size = self.settings.send_batch_size
        self.wait = self.settings.send_batch_wait_ms / 1000
        self._app = c.app
        self._buffer: list[tuple[Message, SendRef]] = []
        self._buffer_since = 0.0
        self._done: deque[tuple[Message, bool]] = deque()  # (message, ack: True / requeue: False)
        self._pool: ThreadPoolExecutor | None = None
        self._qos: QoS | None = None
        self._tick: Any = None
        # Delayed messages (retries, deferrals): (due, arrival order, message, ref), earliest first.
        self._later: list[tuple[float, int, Message, SendRef]] = []
        self._order = itertools.count()

    def start(self, c: Any) -> None:
        self._queues = self._take_over(c)
        if not self._queues:
            return
        self._buffer, self._done = [], deque()
        threads = self.settings.send_batch_threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send-batch")
        self._later = []
        super().start(c)
        self._tick = c.timer.call_repeatedly(min(self.wait, 0.005) or 0.005, self._on_tick)
        log.info("consuming sends in batches", queues=[q.name for q in self._queues], size=self.size, threads=threads)

    def _take_over(self, c: Any) -> list[Queue]:
        """The send queues Celery's task consumer was given: they are ours from now on."""
        if not self.settings.send_batches or c.task_consumer is None:
            return []
        ours = [
            q for q in c.task_consumer.queues if q.name in (contracts.QUEUE_SEND_SMS, contracts.QUEUE_SEND_WHATSAPP)
        ]
        for queue in ours:
            c.task_consumer.cancel_by_queue(queue.name)
        return ours

    def get_consumers(self, channel: Any) -> list[Consumer]:
        consumer = Consumer(channel, queues=self._queues, callbacks=[self._on_message], accept=["json"])
        prefetch = self.size * (self.settings.send_batch_threads + 1)
        self._qos = QoS(consumer.qos, prefetch)
        self._qos.update()
        return [consumer]

    def stop(self, c: Any) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        super().stop(c)  # no more deliveries
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # batches in flight end and queue their acks
            self._pool = None
        self._drain()
        # What is still buffered or delayed was never sent: left unacked, the broker delivers it again.
        self._buffer, self._later = [], []

    # The consumer's own thread from here on: deliveries, the tick, acks.

    def _on_message(self, body: Any, message: Message) -> None:
        try:
            if message.headers.get("task") != contracts.SEND_MESSAGE:
                raise ValueError(f"not a send task: {message.headers.get('task')!r}")
            ref = ref_of(body)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            log.error("unreadable message on a send queue; dropped", error=str(exc), headers=message.headers)
            message.reject(requeue=False)
            return
        delay = _eta_delay(message.headers.get("eta"))
        if delay > 0:
            # Held on the timer, not in the buffer; the prefetch grows meanwhile so new messages still flow.
            assert self._qos is not None
            self._qos.increment_eventually()
            self._qos.update()
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._order), message, ref))
            return
        self._add(message, ref)

    def _due(self) -> None:
        """Delayed messages whose time came join the buffer. One heap read by the tick, not a hub timer per
        message: the hub fires at most 10 timers per loop turn and may then poll for a second, so a few
        hundred due at once (a throttled batch's deferrals) would wait tens of seconds."""
        now = time.monotonic()
        due = 0
        while self._later and self._later[0][0] <= now:
            _, _, message, ref = heapq.heappop(self._later)
            self._add(message, ref)
            due += 1
        if due:
            assert self._qos is not None
            self._qos.decrement_eventually(due)
            self._qos.update()

    def _add(self, message: Message, ref: SendRef) -> None:
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append((message, ref))
        if len(self._buffer) >= self.size:
            self._flush()

    def _on_tick(self) -> None:
        self._drain()
        self._due()
        if self._buffer and time.monotonic() - self._buffer_since >= self.wait:
            self._flush()

    def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if self._pool is not None:
            self._pool.submit(self._run, batch)

    def _drain(self) -> None:
        while self._done:
            message, ack = self._done.popleft()
            try:
                message.ack() if ack else message.reject(requeue=True)
            except Exception as exc:  # a channel lost since: the broker delivers the message again
                log.warning("ack failed; the message will be delivered again", error=str(exc))

    # A batch thread from here on.

    def _run(self, batch: list[tuple[Message, SendRef]]) -> None:
        refs = [ref for _, ref in batch]
        channel = ""
        try:
            outcomes = send_refs(refs, self.settings, self._publish)
            channel = next((o.channel for o in outcomes if o.channel), "")
            ack = True
        except Exception:
            log.exception("send batch failed; its messages are published again", size=len(refs))
            ack = self._republish(batch)
        self._done.extend((message, ack) for message, _ in batch)
        try:
            metrics.record_batch(redis_client.get_redis(), channel or "unknown", len(refs))
        except Exception:  # metrics never fail a batch
            log.warning("batch metric not recorded", exc_info=True)

    def _republish(self, batch: list[tuple[Message, SendRef]]) -> bool:
        """A dead batch's messages, published again to the queue each came from, with a countdown: True when
        that worked (then they are acked), False to give them back to the broker instead. The claim makes
        a repeat harmless; rows the batch had claimed are settled by the reconciler when their lease ends."""
        try:
            for message, ref in batch:
                queue = message.delivery_info.get("routing_key") or contracts.QUEUE_SEND_SMS
                self._publish(tuple(ref), queue, DEAD_BATCH_RETRY)
            return True
        except Exception:
            log.exception("republishing a dead batch failed; giving it back to the broker")
            return False

    def _publish(self, args: tuple[Any, ...], queue: str, countdown: float) -> None:
        self._app.send_task(contracts.SEND_MESSAGE, args=args, queue=queue, countdown=countdown)


def _eta_delay(eta: str | None) -> float:
    if not eta:
        return 0.0
    try:
        when = datetime.fromisoformat(eta)
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()
