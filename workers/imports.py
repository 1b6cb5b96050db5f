"""`dispatcher.import_contacts`: a stored contacts file imported into its group (`dispatcher.audience.imports`).

The task runs an import for at most SLICE_SECONDS, then queues it again and publishes itself: a long
import never meets a time limit, and a deploy or a crash costs at most the batch in flight. A database
that stops answering gives the claim back and retries; an error nobody foresaw ends the import `failed`
with its name (never a retry loop). Duplicate messages (the reconciler's, a redelivery) find the import
claimed or over and leave it.
"""

from __future__ import annotations

import time
import uuid

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from dispatcher import contracts
from dispatcher.audience import imports
from dispatcher.config import get_settings
from dispatcher.db.session import session_factory
from workers.app import app
from workers.submit import retry_delay

log = structlog.get_logger(__name__)

SLICE_SECONDS = 600


# The time limits (prefork pools only: the threads pool has none) are well past a slice: the slice ends
# the task first, at a batch boundary.
@app.task(
    name=contracts.IMPORT_CONTACTS,
    bind=True,
    max_retries=None,
    soft_time_limit=SLICE_SECONDS + 240,
    time_limit=SLICE_SECONDS + 300,
)
def import_contacts(self: Task, import_id: int) -> str:
    structlog.contextvars.bind_contextvars(import_id=import_id)
    token = uuid.uuid4().hex
    batch_rows = get_settings().import_batch_rows
    with session_factory()() as session:
        try:
            outcome = imports.run(
                session, import_id, token, batch_rows=batch_rows, until=time.monotonic() + SLICE_SECONDS
            )
        except OperationalError:
            retries = self.request.retries
            log.warning("database unavailable: import retried", retries=retries + 1)
            _give_back(import_id, token)
            raise self.retry(countdown=retry_delay(retries)) from None
        except Exception as exc:
            log.exception("unexpected error during an import")
            reason = f"unexpected error ({type(exc).__name__}); nothing after the rows counted was imported"
            outcome = imports.fail(session, import_id, token, reason)
    if outcome == imports.Outcome.PAUSED:
        import_contacts.apply_async((import_id,), queue=contracts.QUEUE_CAMPAIGNS)
    log.info("import slice over", outcome=outcome.value)
    return outcome.value


def _give_back(import_id: int, token: str) -> None:
    """Queue the import again for the retry; if the database is still down, the lease expires instead
    and the reconciler does it."""
    try:
        with session_factory()() as session:
            imports.release(session, import_id, token)
    except OperationalError:
        pass
