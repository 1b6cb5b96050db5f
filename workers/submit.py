"""`dispatcher.submit_campaign`: the same submission as `POST /v1/campaigns`, for producers on the broker.

    app.send_task("dispatcher.submit_campaign", queue="campaigns",
                  kwargs={"payload": {...}, "token": "dsp_...", "idempotency_key": "order-42"})

A payload that cannot be accepted (invalid, unknown account, bad token) is recorded in `rejections`
with its reason (`dispatcher campaigns rejected`) and the task ends: it is never retried, so a bad
message cannot loop, and nothing it carries can crash the worker. Only a database that does not
answer is retried, a bounded number of times.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from beat_schedule import ticker
from dispatcher import contracts
from dispatcher.accounts import account_for_token
from dispatcher.config import get_settings
from dispatcher.db.models import Account, Rejection
from dispatcher.db.session import session_factory
from dispatcher.errors import IdempotencyMismatch, SpecError
from dispatcher.submission import submit
from workers.app import app
from workers.tasks import publish_start, start_run

log = structlog.get_logger(__name__)


@app.task(
    name=contracts.SUBMIT_CAMPAIGN,
    bind=True,
    autoretry_for=(OperationalError,),
    max_retries=5,
    retry_backoff=2,
    retry_jitter=True,
    acks_late=True,
)
def submit_campaign(
    self: Task,
    payload: Any = None,
    token: str | None = None,
    account_id: int | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    task_id = self.request.id
    with session_factory()() as session:
        account = None
        if isinstance(token, str) and token:
            account = account_for_token(session, token)
        elif isinstance(account_id, int) and not isinstance(account_id, bool):
            account = session.get(Account, account_id)
        if account is None:
            reason = [{"loc": ["token" if token else "account_id"], "msg": "no such account or token", "type": "auth"}]
            return _reject(task_id, None, reason, payload)
        try:
            result = submit(session, account.id, payload, get_settings(), idempotency_key=idempotency_key)
        except SpecError as exc:
            session.rollback()
            return _reject(task_id, account.id, [{**e, "loc": ["payload", *e["loc"]]} for e in exc.errors], payload)
        except IdempotencyMismatch as exc:
            session.rollback()
            return _reject(
                task_id, account.id, [{"loc": ["idempotency_key"], "msg": str(exc), "type": "idempotency"}], payload
            )
        campaign_id = result.campaign.id
        if result.created:
            for run_id in result.runs_to_start:
                start_run.apply_async((run_id, None), queue=contracts.QUEUE_CAMPAIGNS)
            if result.scheduled:
                ticker.schedule_new(session, campaign_id, get_settings(), publish_start)
    log.info("campaign submitted by task", campaign_id=campaign_id, replayed=not result.created)
    return {"campaign_id": str(campaign_id), "created": result.created}


def _reject(task_id: str | None, account_id: int | None, reason: list[dict[str, Any]], payload: Any) -> dict[str, Any]:
    """Record why, keep the payload for inspection (if it is JSON-like), and end the task."""
    kept = payload if isinstance(payload, dict) else {"value": repr(payload)[:2000]}
    with session_factory()() as session:
        rejection = Rejection(account_id=account_id, task_id=task_id, reason={"errors": reason}, payload=kept)
        session.add(rejection)
        session.commit()
        rejection_id = rejection.id
    log.warning("campaign submission rejected", rejection_id=rejection_id, errors=reason[:5])
    return {"rejected": rejection_id, "errors": reason}
