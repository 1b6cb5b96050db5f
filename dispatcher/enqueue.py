"""The only place the API talks to the broker: it publishes tasks by name and never imports `workers`."""

from __future__ import annotations

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


def start_runs(run_ids: list[int]) -> bool:
    """Publish `start_run` for each run. False if the broker could not be reached: the runs are stored,
    and beat's tick republishes queued runs that never started, so an accepted campaign is never lost."""
    try:
        for run_id in run_ids:
            producer_app().send_task(
                contracts.START_RUN,
                args=[run_id],
                queue=contracts.QUEUE_CAMPAIGNS,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
            )
    except Exception as exc:  # kombu raises several connection error types; all mean "not now"
        log.warning("publish failed; beat will republish", run_ids=run_ids, error=str(exc))
        return False
    return True
