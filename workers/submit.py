"""`dispatcher.submit_campaign`: the same submission as `POST /v1/campaigns`, for producers on the broker.

    app.send_task("dispatcher.submit_campaign", queue="campaigns",
                  kwargs={"payload": {...}, "token": "dsp_...", "idempotency_key": "order-42"},
                  kwargsrepr="{'token': '***'}")

A payload that cannot be accepted (invalid, unknown account, bad token), or whose submission fails in
a way we did not foresee, is recorded in `rejections` with its reason (`dispatcher campaigns rejected`)
and the task ends: it is never retried, so a bad message cannot loop, and nothing it carries can crash
the worker. Only a database that does not answer (OperationalError) is retried, MAX_DB_RETRIES times.

The token is a credential: it is never logged, and a retry publishes it masked for Flower. The
producer's own message shows whatever `kwargsrepr` the producer gave (Celery computes it there).
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from beat_schedule import ticker
from dispatcher import contracts
from dispatcher.audience.accounts import account_for_token
from dispatcher.campaigns.submission import Submission, submit
from dispatcher.config import get_settings
from dispatcher.db.models import Account, Rejection
from dispatcher.db.session import session_factory
from dispatcher.errors import IdempotencyMismatch, SpecError
from dispatcher.inputs import json_problem
from workers.app import app
from workers.tasks import publish_start, start_run

log = structlog.get_logger(__name__)

MAX_DB_RETRIES = 5
MAX_BACKOFF_SECONDS = 60


def retry_delay(retries: int) -> int:
    """Seconds before retry number `retries + 1`: exponential from 2 s, jittered, at most a minute."""
    return int(get_exponential_backoff_interval(2, retries, MAX_BACKOFF_SECONDS, full_jitter=True))


def masked_kwargs(kwargs: dict[str, Any]) -> str:
    """What Flower shows for these kwargs: the token hidden, the payload summarised."""
    shown = {k: ("***" if k == "token" and v else v) for k, v in kwargs.items() if k != "payload"}
    return repr({**shown, "payload": "..."})


@app.task(name=contracts.SUBMIT_CAMPAIGN, bind=True, max_retries=MAX_DB_RETRIES, acks_late=True)
def submit_campaign(
    self: Task,
    payload: Any = None,
    token: str | None = None,
    account_id: int | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    task_id = self.request.id
    owner: int | None = None
    try:
        owner = _owner(token, account_id)
        if owner is None:
            reason = [{"loc": ["token" if token else "account_id"], "msg": "no such account or token", "type": "auth"}]
            return _reject(task_id, None, reason, payload)
        return _submit(task_id, owner, payload, idempotency_key)
    except OperationalError:
        retries = self.request.retries
        if retries < MAX_DB_RETRIES:
            countdown = retry_delay(retries)
            log.warning("database unavailable: submission retried", retries=retries + 1, countdown=countdown)
            kwargs = {"payload": payload, "token": token, "account_id": account_id, "idempotency_key": idempotency_key}
            raise self.retry(countdown=countdown, kwargsrepr=masked_kwargs(kwargs)) from None
        return _reject(task_id, owner, _internal(f"the database did not answer after {retries} retries"), payload)
    except Exception as exc:
        # Nothing was committed (publishing failures after the commit are handled in _submit): refuse it
        # visibly instead of failing the task with a traceback that may show the payload.
        log.error("unexpected error during submission", error=type(exc).__name__)
        return _reject(task_id, owner, _internal(f"unexpected error ({type(exc).__name__})"), payload)


def _owner(token: str | None, account_id: int | None) -> int | None:
    with session_factory()() as session:
        account = None
        if isinstance(token, str) and token:
            account = account_for_token(session, token)
        elif isinstance(account_id, int) and not isinstance(account_id, bool):
            account = session.get(Account, account_id)
        return account.id if account is not None else None


def _submit(task_id: str | None, account_id: int, payload: Any, idempotency_key: str | None) -> dict[str, Any]:
    problem = json_problem(payload)
    if problem is not None:
        loc, msg = problem
        return _reject(task_id, account_id, [{"loc": ["payload", *loc], "msg": msg, "type": "value_error"}], payload)
    with session_factory()() as session:
        try:
            result = submit(session, account_id, payload, get_settings(), idempotency_key=idempotency_key)
        except SpecError as exc:
            session.rollback()
            return _reject(task_id, account_id, [{**e, "loc": ["payload", *e["loc"]]} for e in exc.errors], payload)
        except IdempotencyMismatch as exc:
            session.rollback()
            reason = [{"loc": ["idempotency_key"], "msg": str(exc), "type": "idempotency"}]
            return _reject(task_id, account_id, reason, payload)
        if result.created:
            _publish(session, result)
    log.info("campaign submitted by task", campaign_id=result.campaign.id, replayed=not result.created)
    return {"campaign_id": str(result.campaign.id), "created": result.created}


def _publish(session: Session, result: Submission) -> None:
    """Publish a committed campaign's runs. It is accepted already, so a failure here must neither reject
    nor retry it (a retry would submit it twice): the beat tick publishes runs that were not."""
    try:
        for run_id in result.runs_to_start:
            start_run.apply_async((run_id, None), queue=contracts.QUEUE_CAMPAIGNS)
        if result.scheduled:
            ticker.schedule_new(session, result.campaign.id, get_settings(), publish_start)
    except Exception as exc:
        log.warning("publishing a submitted campaign failed; the tick will", error=type(exc).__name__)


def _internal(msg: str) -> list[dict[str, Any]]:
    return [{"loc": ["payload"], "msg": f"{msg}: the campaign was not accepted; submit it again", "type": "internal"}]


def _reject(task_id: str | None, account_id: int | None, reason: list[dict[str, Any]], payload: Any) -> dict[str, Any]:
    """Record why, keep the payload for inspection when it can be stored, and end the task."""
    storable = isinstance(payload, dict) and json_problem(payload) is None
    kept = payload if storable else {"value": repr(payload)[:2000]}
    try:
        with session_factory()() as session:
            rejection = Rejection(account_id=account_id, task_id=task_id, reason={"errors": reason}, payload=kept)
            session.add(rejection)
            session.commit()
            rejection_id: int | None = rejection.id
    except Exception as exc:  # the database is down for good: the log is all that is left
        log.error("could not record a rejected submission", task_id=task_id, error=type(exc).__name__)
        rejection_id = None
    log.warning("campaign submission rejected", rejection_id=rejection_id, errors=reason[:5])
    return {"rejected": rejection_id, "errors": reason}
