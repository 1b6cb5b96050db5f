"""`/v1/campaigns`: submit either documented payload, list, details, and per-recipient messages (JSON or CSV)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from beat_schedule import ticker
from dispatcher.api.deps import (
    AccountDep,
    CsvWanted,
    PageNumber,
    RedisDep,
    SessionDep,
    SettingsDep,
    owned,
    total_of,
)
from dispatcher.api.openapi import CAMPAIGN_BODY, ERRORS, MESSAGES_ANSWER
from dispatcher.audience.contacts import parse_id
from dispatcher.campaigns import control, enqueue, export, views
from dispatcher.campaigns.export import ExportScope
from dispatcher.campaigns.payloads import ScheduleDate
from dispatcher.campaigns.submission import submit
from dispatcher.db.models import Campaign, Contact, Message, MessageStatus, Run, Sender
from dispatcher.errors import NotFound

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

StatusFilter = Literal["ALL", "PENDING", "SENT", "FAILED", "PAUSED", "CANCELLED"]


def _any_case(value: object) -> object:
    """A message status filter in any case (`failed`, `FAILED`); empty means none."""
    if isinstance(value, str):
        return value.strip().lower() or None
    return value


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS, openapi_extra=CAMPAIGN_BODY)
def create_campaign(
    payload: Annotated[dict[str, Any], Body(description="The SMS campaign object or the WhatsApp-style envelope")],
    session: SessionDep,
    account: AccountDep,
    r: RedisDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    """Validate and accept a campaign. Nothing is queued unless every recipient and field is valid."""
    result = submit(session, account.id, payload, settings, idempotency_key=idempotency_key)
    if not result.created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    else:
        for run_id in result.runs_to_start:
            enqueue.start_run(run_id)
        if result.scheduled:
            ticker.schedule_new(session, result.campaign.id, settings, enqueue.start_run)
    return views.details(session, r, result.campaign)


@router.get("", responses=ERRORS)
def list_campaigns(
    session: SessionDep,
    account: AccountDep,
    r: RedisDep,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    status_: Annotated[StatusFilter, Query(alias="status")] = "ALL",
) -> dict[str, Any]:
    """The account's campaigns, newest first, with live stats."""
    query = select(Campaign).where(Campaign.account_id == account.id)
    if status_ != "ALL":
        query = query.where(Campaign.status == status_)
    total = total_of(session, query)
    campaigns = session.scalars(query.order_by(Campaign.id.desc()).offset((page - 1) * limit).limit(limit)).all()
    runs = session.scalars(select(Run).where(Run.campaign_id.in_([c.id for c in campaigns]))).all()
    counts = views.run_counts(session, r, runs)
    senders = {s.id: s for s in session.scalars(select(Sender).where(Sender.account_id == account.id))}
    data = [
        views.summary(c, senders.get(c.sender_id), [run for run in runs if run.campaign_id == c.id], counts)
        for c in campaigns
    ]
    return {"data": data, "page": page, "limit": limit, "total": total}


def _own(session: Session, account_id: int, campaign_id: str) -> Campaign:
    return owned(session, Campaign, account_id, campaign_id, "campaign")


@router.get("/{campaign_id}", responses=ERRORS)
def get_campaign(
    campaign_id: str, session: SessionDep, account: AccountDep, r: RedisDep, contacts: bool = True
) -> dict[str, Any]:
    """One campaign in the SMS document's CampaignDetails shape, plus runs and error summary.
    `contacts=false` leaves out the recipients (for frequent polling)."""
    return views.details(session, r, _own(session, account.id, campaign_id), with_contacts=contacts)


def _run_of(session: Session, campaign: Campaign, ident: str) -> int:
    """The id of the campaign's run `ident`; a run of another campaign is a 404 like a missing one."""
    key = parse_id(ident)
    run = session.get(Run, key) if key is not None else None
    if run is None or run.campaign_id != campaign.id:
        raise NotFound("run", ident)
    return run.id


@router.get("/{campaign_id}/messages", responses={**ERRORS, **MESSAGES_ANSWER}, response_model=None)
def list_messages(
    campaign_id: str,
    session: SessionDep,
    account: AccountDep,
    as_csv: CsvWanted,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    status_: Annotated[MessageStatus | None, BeforeValidator(_any_case), Query(alias="status")] = None,
    run: Annotated[str | None, Query(description="Only this run's messages (an id from the details' `runs`)")] = None,
) -> dict[str, Any] | StreamingResponse:
    """Every recipient's message: rendered body, status, attempts, provider id and error.

    With `Accept: text/csv` or `format=csv`: every message at once (no paging) as a CSV file, streamed."""
    campaign = _own(session, account.id, campaign_id)
    run_id = _run_of(session, campaign, run) if run is not None else None
    if as_csv:
        scope = ExportScope(account.id, campaign.id, run_id, status_)
        # The export reads on connections of its own for as long as the download lasts: end this read now,
        # so the request's session holds no connection (nor a SQLite read lock) meanwhile.
        session.close()
        return _csv_answer(scope)
    query = (
        # An outer join: a deleted contact's messages stay in the campaign's history.
        select(Message, Contact)
        .outerjoin(Contact, Contact.id == Message.contact_id)
        .where(Message.campaign_id == campaign.id)
    )
    if run_id is not None:
        query = query.where(Message.run_id == run_id)
    if status_:
        query = query.where(Message.status == status_)
    rows = session.execute(query.order_by(Message.id).offset((page - 1) * limit).limit(limit)).all()
    data = [
        {
            "id": str(m.id),
            "runId": str(m.run_id),
            "contactId": str(m.contact_id),
            "phone": m.phone,
            "name": c.name if c is not None else None,
            "body": m.body,
            "encoding": m.encoding,
            "segments": m.segments,
            "status": m.status,
            "attempts": m.attempts,
            "providerMessageId": m.provider_message_id,
            "errorCode": m.error_code,
            "error": m.error_text,
            "sentAt": views.iso(m.sent_at),
        }
        for m, c in rows
    ]
    return {"data": data, "page": page, "limit": limit, "total": total_of(session, query)}


def _csv_answer(scope: ExportScope) -> StreamingResponse:
    headers = {"Content-Disposition": f'attachment; filename="{scope.filename}"'}
    return StreamingResponse(export.csv_chunks(scope), media_type="text/csv; charset=utf-8", headers=headers)


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheduledDate: ScheduleDate


@router.post("/{campaign_id}/pause", responses=ERRORS)
def pause_campaign(campaign_id: str, session: SessionDep, account: AccountDep, r: RedisDep) -> dict[str, Any]:
    """Stop sending: no new run fires, queued messages wait. Sends already at the provider finish."""
    campaign = _own(session, account.id, campaign_id)
    control.pause(session, r, campaign)
    return views.details(session, r, campaign)


@router.post("/{campaign_id}/resume", responses=ERRORS)
def resume_campaign(
    campaign_id: str, session: SessionDep, account: AccountDep, r: RedisDep, settings: SettingsDep
) -> dict[str, Any]:
    """Continue a paused campaign; a recurring one continues from its next occurrence (no replay)."""
    campaign = _own(session, account.id, campaign_id)
    control.resume(session, r, campaign, settings, enqueue.resume_run)
    if campaign.type != "SMS":
        ticker.schedule_new(session, campaign.id, settings, enqueue.start_run)
    return views.details(session, r, campaign)


@router.post("/{campaign_id}/cancel", responses=ERRORS)
def cancel_campaign(campaign_id: str, session: SessionDep, account: AccountDep, r: RedisDep) -> dict[str, Any]:
    """Cancel for good: pending runs are cancelled and queued messages skipped."""
    campaign = _own(session, account.id, campaign_id)
    control.cancel(session, r, campaign)
    return views.details(session, r, campaign)


@router.post("/{campaign_id}/reschedule", responses=ERRORS)
def reschedule_campaign(
    campaign_id: str, body: RescheduleIn, session: SessionDep, account: AccountDep, r: RedisDep, settings: SettingsDep
) -> dict[str, Any]:
    """Move a SCHEDULED campaign that has not fired yet (the new time must be on the grid and ahead)."""
    campaign = _own(session, account.id, campaign_id)
    control.reschedule(session, campaign, body.scheduledDate, settings)
    ticker.schedule_new(session, campaign.id, settings, enqueue.start_run)
    return views.details(session, r, campaign)
