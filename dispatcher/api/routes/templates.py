"""`/v1/templates`: the account's WhatsApp templates (name and language as approved by Meta)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.api.deps import AccountDep, SessionDep, owned
from dispatcher.api.openapi import ERRORS
from dispatcher.content.templates import variable_count
from dispatcher.db.models import Template
from dispatcher.errors import SpecError

router = APIRouter(prefix="/v1/templates", tags=["templates"])

TemplateStatusIn = Literal["APPROVED", "PENDING", "REJECTED"]


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=512, description="The template name at the provider")
    language: str = Field(min_length=2, max_length=16, description='Exact language code, e.g. "fr" or "en_US"')
    body: str = Field(min_length=1, max_length=1024, description="Body text with {{1}}, {{2}}...")
    status: TemplateStatusIn = "PENDING"
    channel: Literal["whatsapp"] = "whatsapp"


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: TemplateStatusIn


class TemplatePublic(BaseModel):
    id: str
    name: str
    language: str
    body: str
    variables: int
    status: str
    channel: str
    createdAt: datetime
    updatedAt: datetime


def public(t: Template) -> TemplatePublic:
    return TemplatePublic(
        id=str(t.id),
        name=t.name,
        language=t.language,
        body=t.body,
        variables=t.variables,
        status=t.status,
        channel=t.channel,
        createdAt=t.created_at,
        updatedAt=t.updated_at,
    )


def _own(session: Session, account_id: int, template_id: str) -> Template:
    return owned(session, Template, account_id, template_id, "template")


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_template(body: TemplateCreate, session: SessionDep, account: AccountDep) -> TemplatePublic:
    try:
        count = variable_count(body.body)
    except ValueError as exc:
        raise SpecError.single(("body",), str(exc)) from None
    if session.scalar(
        select(Template.id).where(
            Template.account_id == account.id, Template.name == body.name, Template.language == body.language
        )
    ):
        raise SpecError.single(("name",), f"template {body.name!r} already exists in language {body.language!r}")
    template = Template(
        account_id=account.id,
        channel=body.channel,
        name=body.name,
        language=body.language,
        body=body.body,
        variables=count,
        status=body.status,
    )
    session.add(template)
    session.commit()
    return public(template)


@router.get("", responses=ERRORS)
def list_templates(session: SessionDep, account: AccountDep) -> dict[str, Any]:
    rows = session.scalars(select(Template).where(Template.account_id == account.id).order_by(Template.id)).all()
    return {"data": [public(t) for t in rows]}


@router.get("/{template_id}", responses=ERRORS)
def get_template(template_id: str, session: SessionDep, account: AccountDep) -> TemplatePublic:
    return public(_own(session, account.id, template_id))


@router.patch("/{template_id}", responses=ERRORS)
def update_template(template_id: str, body: TemplateUpdate, session: SessionDep, account: AccountDep) -> TemplatePublic:
    """Record the provider's review outcome (APPROVED / REJECTED)."""
    template = _own(session, account.id, template_id)
    template.status = body.status
    session.commit()
    return public(template)
