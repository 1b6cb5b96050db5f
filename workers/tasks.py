"""Thin Celery tasks: each reads its arguments, calls the logic module, and publishes follow-ups.

Task names are explicit strings from `dispatcher.contracts`; the logic never sees Celery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from celery import Task
from celery.signals import task_prerun, worker_ready

from beat_schedule import ticker
from dispatcher import contracts, redis_client
from dispatcher.config import get_settings
from dispatcher.contracts import SendRef
from dispatcher.db.session import session_factory
from workers import fanout, publisher, reconciler
from workers.app import app
from workers.sending import engine as sending
from workers.sending.consumer import send_refs

log = structlog.get_logger(__name__)


def publish_sends(refs: list[SendRef], channel: str, countdown: float | None = None) -> None:
    """Publish one send task per message: on Redis, whole chunks in one LPUSH each (`workers.publisher`),
    the same messages `apply_async` would send; elsewhere `apply_async` through one producer."""
    publisher.publish_many(app, send_message, refs, contracts.send_queue(channel), countdown=countdown)


def publish_start(run_id: int, fire_at: datetime) -> None:
    """Publish a run as an ETA task at its exact fire time (the tick only does so within a short horizon)."""
    eta = fire_at if fire_at > datetime.now(UTC) else None
    start_run.apply_async((run_id, fire_at.isoformat()), queue=contracts.QUEUE_CAMPAIGNS, eta=eta)


@worker_ready.connect
def _warm_up(**_kwargs: Any) -> None:
    sending.warm(get_settings())


@task_prerun.connect
def _fresh_log_context(**_kwargs: Any) -> None:
    # Worker threads are reused: drop the previous task's ids before binding this one's.
    structlog.contextvars.clear_contextvars()


@app.task(name=contracts.START_RUN, bind=True, max_retries=None)
def start_run(self: Task, run_id: int, fire_at: str | None = None) -> dict[str, Any]:
    settings = get_settings()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    expected = datetime.fromisoformat(fire_at) if fire_at else None
    with session_factory()() as session:
        published = fanout.start_run(
            session,
            redis_client.get_redis(),
            run_id,
            publish_sends,
            chunk=settings.publish_batch_size,
            lease=settings.send_lease_seconds,
            expected_fire_at=expected,
        )
    log.info("run started", run_id=run_id, published=published)
    return {"run_id": run_id, "published": published}


@app.task(name=contracts.RESUME_RUN, bind=True, max_retries=None)
def resume_run(self: Task, run_id: int) -> dict[str, Any]:
    """Publish a resumed campaign's queued messages again (through the fan-out fast path)."""
    settings = get_settings()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    with session_factory()() as session:
        published = fanout.resume_run(session, run_id, publish_sends, chunk=settings.publish_batch_size)
    log.info("run resumed", run_id=run_id, published=published)
    return {"run_id": run_id, "published": published}


@app.task(name=contracts.SEND_MESSAGE, bind=True, max_retries=None)
def send_message(
    self: Task, message_id: int, sender_id: int | None = None, campaign_id: int | None = None, cost: int = 1
) -> str:
    """One message on the pool, when batches are off or a message reached Celery's own consumer: the same
    engine, with a batch of one (`workers.sending.consumer` consumes the send queues in batches)."""
    structlog.contextvars.bind_contextvars(message_id=message_id, campaign_id=campaign_id, sender_id=sender_id)
    ref = SendRef(message_id, sender_id or 0, campaign_id or 0, cost)
    (outcome,) = send_refs([ref], get_settings(), _republish)
    return outcome.verdict


def _republish(args: tuple[Any, ...], queue: str, countdown: float) -> None:
    send_message.apply_async(args, queue=queue, countdown=countdown)


@app.task(name=contracts.TICK)
def tick() -> dict[str, int]:
    """Publish runs that are due (scheduled ones at their exact time, as ETA tasks) and lost ones."""
    with session_factory()() as session:
        return ticker.tick(session, get_settings(), publish_start)


@app.task(name=contracts.RECONCILE)
def reconcile() -> dict[str, int]:
    """Republish messages and imports whose lease expired (lost publish, killed worker), finish quiet runs."""
    with session_factory()() as session:
        lease = get_settings().send_lease_seconds
        return reconciler.reconcile(
            session, redis_client.get_redis(), publish_sends, publish_import=_publish_import, lease_seconds=lease
        )


def _publish_import(import_id: int) -> None:
    # By name: the import task's module imports this one.
    app.send_task(contracts.IMPORT_CONTACTS, args=[import_id], queue=contracts.QUEUE_CAMPAIGNS)
