"""The Celery application (`celery -A workers.app worker`). Each non-default setting says why."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from beat_schedule.schedule import BEAT_SCHEDULE
from dispatcher import contracts
from dispatcher.config import get_settings
from dispatcher.logs import configure as configure_logging
from workers.sending.consumer import BatchSendConsumer

settings = get_settings()

app = Celery("dispatcher", broker=settings.broker_url, include=["workers.tasks", "workers.submit", "workers.imports"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    # Outcomes live in the database and Redis counters; a result backend would only add writes.
    task_ignore_result=True,
    task_default_queue=contracts.QUEUE_CAMPAIGNS,
    # Sends are short and guarded by a database claim, so redelivery is safe and loss is not.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One reserved task per slot keeps the backlog in Redis, where every worker can take it.
    worker_prefetch_multiplier=1,
    # Below kombu's default visibility timeout, so no countdown outlives it; set identically everywhere.
    broker_transport_options={"visibility_timeout": 3600, "socket_keepalive": True, "health_check_interval": 25},
    broker_connection_retry_on_startup=True,
    task_time_limit=120,
    task_soft_time_limit=90,
    worker_hijack_root_logger=False,
    # Task events cost three Redis PUBLISHes per message; Flower switches them on in the workers it
    # watches (its enable_events option), so they are off unless an operator is looking.
    worker_send_task_events=settings.worker_events,
    task_send_sent_event=False,
    timezone="UTC",
    enable_utc=True,
    beat_schedule=BEAT_SCHEDULE,
)


# The send queues are consumed in batches by a consumer step of our own (`send_batches` turns it off).
app.steps["consumer"].add(BatchSendConsumer)


@setup_logging.connect
def _logging(**_kwargs: Any) -> None:
    # Connected, so Celery leaves logging to us: one structured format for Celery's records and ours.
    configure_logging()
