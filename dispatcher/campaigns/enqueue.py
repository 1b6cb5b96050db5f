"""The only place the API talks to the broker: it publishes tasks by name and never imports `workers`."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import structlog
from celery import Celery

from dispatcher import contracts
from dispatcher.config import get_settings

log = structlog.get_logger(__name__)


@lru_cache(maxsize=1)
def producer_app() -> Celery:
    settings = get_settings()
    app = Celery("dispatcher-producer", broker=settings.broker_url)
    app.conf.update(
        task_serializer="json",
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
    )
    return app


def start_run(run_id: int, fire_at: datetime | None = None) -> bool:
    """Publish `start_run` for a run, as an ETA task when its fire time is ahead.

    Returns False if the broker could not be reached: the run is stored, and beat's tick
    republishes queued runs that never started, so an accepted campaign is never lost.
    The task carries the fire time it was published for, so a rescheduled run ignores a stale task.
    """
    eta = fire_at if fire_at is not None and fire_at > datetime.now(UTC) else None
    return _publish(contracts.START_RUN, [run_id, fire_at.isoformat() if fire_at else None], eta, run_id=run_id)


def resume_run(run_id: int) -> bool:
    """Ask a worker to publish a resumed run's queued messages again (one task, whatever the backlog).

    False if the broker could not be reached: the messages already hold a fresh lease, so the
    reconciler publishes them when it expires.
    """
    return _publish(contracts.RESUME_RUN, [run_id], None, run_id=run_id)


def import_contacts(import_id: int) -> bool:
    """Ask a worker to import a stored file. False if the broker could not be reached: the import is
    stored as queued, and the reconciler publishes it again."""
    return _publish(contracts.IMPORT_CONTACTS, [import_id], None, import_id=import_id)


def _publish(name: str, args: list[object], eta: datetime | None, **log_context: object) -> bool:
    try:
        producer_app().send_task(
            name,
            args=args,
            queue=contracts.QUEUE_CAMPAIGNS,
            eta=eta,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
        )
    except Exception as exc:  # kombu raises several connection error types; all mean "not now"
        log.warning("publish failed; beat or the reconciler will republish", task=name, error=str(exc), **log_context)
        return False
    return True


def send_messages(refs: list[contracts.SendRef], channel: str) -> None:
    """Publish one `send_message` per message through one producer (tests and tools; workers use the
    fan-out fast path)."""
    app = producer_app()
    queue = contracts.send_queue(channel)
    with app.producer_or_acquire() as producer:
        for ref in refs:
            app.send_task(contracts.SEND_MESSAGE, args=list(ref), queue=queue, producer=producer)
