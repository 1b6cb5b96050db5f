"""`/v1/rejections`: campaign submissions sent as Celery messages that could not be accepted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from dispatcher.api.deps import AccountDep, SessionDep
from dispatcher.api.openapi import ERRORS
from dispatcher.campaigns.views import iso
from dispatcher.db.models import Rejection

router = APIRouter(prefix="/v1/rejections", tags=["campaigns"])


@router.get("", responses=ERRORS)
def list_rejections(
    session: SessionDep, account: AccountDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """This account's refused `dispatcher.submit_campaign` messages, newest first, with the reasons."""
    rows = session.scalars(
        select(Rejection).where(Rejection.account_id == account.id).order_by(Rejection.id.desc()).limit(limit)
    ).all()
    return {
        "data": [
            {
                "id": str(r.id),
                "taskId": r.task_id,
                "errors": (r.reason or {}).get("errors", []),
                "createdAt": iso(r.created_at),
            }
            for r in rows
        ]
    }
