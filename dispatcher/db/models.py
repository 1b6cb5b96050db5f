"""Durable state: SQLAlchemy 2 typed models. The database is the source of truth; Redis only mirrors counters.

Every row belongs to one account and every query is scoped by it (see `dispatcher.api.deps`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON None is SQL NULL, not the string 'null'.
Json = JSON(none_as_null=True)

# Integer primary keys everywhere; messages get a BigInteger because a busy account makes billions.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: Json, list[str]: Json}


class Channel(enum.StrEnum):
    SMS = "sms"
    WHATSAPP = "whatsapp"


class CampaignType(enum.StrEnum):
    SMS = "SMS"  # standard: sent now
    SCHEDULED = "SCHEDULED"
    RECURRING = "RECURRING"


class CampaignStatus(enum.StrEnum):
    PENDING = "PENDING"  # accepted, scheduled or sending
    SENT = "SENT"  # every message reached a final state, at least one was sent
    FAILED = "FAILED"  # no message could be sent
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"


class RunStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its fire time (beat publishes it)
    QUEUED = "queued"  # start_run published, not yet started
    RUNNING = "running"  # message rows exist and send tasks are published
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"  # fire time passed while nothing could fire it, beyond the grace window


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by one worker; lease_until bounds how long
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the request may have reached the provider; never re-sent blindly
    SKIPPED = "skipped"


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # sha256 of the token: a database leak does not leak usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Sender(Base):
    __tablename__ = "senders"
    __table_args__ = (UniqueConstraint("account_id", "channel", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(32))
    # Base URL and credentials: never returned by the API, never logged.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    rate: Mapped[float] = mapped_column(Float, default=10.0)
    burst: Mapped[int] = mapped_column(Integer, default=10)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164 with '+'
    name: Mapped[str | None] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    sex: Mapped[str | None] = mapped_column(String(1))
    # The contact's IANA time zone (Africa/Abidjan), for sending at local times; None: not known.
    timezone: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)


class ImportStatus(enum.StrEnum):
    RECEIVING = "receiving"  # the API is storing the upload; not shown, swept if the API died meanwhile
    QUEUED = "queued"  # stored, import_contacts published
    RUNNING = "running"  # claimed by a worker (claim_token, lease_until)
    DONE = "done"
    FAILED = "failed"


class ContactImport(Base):
    """A file of contacts imported into a group by a worker, chunk by chunk (`dispatcher.audience.imports`).

    `line` is the checkpoint: the last line of the file whose row is counted (committed with the contacts
    it wrote), so a run that dies is resumed after it and nothing is counted twice.
    """

    __tablename__ = "contact_imports"
    __table_args__ = (Index("ix_contact_imports_status", "status", "lease_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # A group deleted during its import ends the import `failed`; the record stays.
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    format: Mapped[str] = mapped_column(String(8))  # csv or ndjson
    country: Mapped[str | None] = mapped_column(String(2))
    # CSV: the header row as written; its line is `line` until the first row is counted.
    columns: Mapped[list[str] | None] = mapped_column(Json)
    ignored_columns: Mapped[list[str]] = mapped_column(Json, default=list)
    status: Mapped[str] = mapped_column(String(16), default=ImportStatus.RECEIVING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    # The first MAX_ERRORS invalid rows: [{"line", "column", "reason"}].
    errors: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    line: Mapped[int] = mapped_column(Integer, default=0)
    claim_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactImportChunk(Base):
    """A piece of an uploaded file, whole lines of UTF-8 text: the database is the one store every worker
    host reads. A chunk is deleted once the rows it holds are counted."""

    __tablename__ = "contact_import_chunks"

    import_id: Mapped[int] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_line: Mapped[int] = mapped_column(Integer)  # the file's line number of the chunk's first line
    data: Mapped[str] = mapped_column(Text)


class TemplateStatus(enum.StrEnum):
    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"


class Template(Base):
    """A WhatsApp message template as approved by Meta: only APPROVED ones can be sent."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("account_id", "name", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16), default=Channel.WHATSAPP)
    name: Mapped[str] = mapped_column(String(512))  # the provider's template name
    language: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    variables: Mapped[int] = mapped_column(Integer)  # how many {{n}} the body has
    status: Mapped[str] = mapped_column(String(16), default=TemplateStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Conversation(Base):
    """A WhatsApp conversation with one contact through one sender, and its tags.

    `pending_tags` wait for a reply (trigger `any-reply`) and move to `tags` when the contact writes.
    """

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("sender_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    pending_tags: Mapped[list[str]] = mapped_column(Json, default=list)
    last_inbound_at: Mapped[datetime | None] = mapped_column()
    last_inbound_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Campaign(Base):
    """The definition. Each firing is a `Run`; a standard or scheduled campaign has exactly one."""

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        Index("ix_campaigns_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    text: Mapped[str | None] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id"))
    scheduled_at: Mapped[datetime | None] = mapped_column()
    recurring: Mapped[dict[str, Any] | None] = mapped_column(Json)
    timezone: Mapped[str | None] = mapped_column(String(64))
    recurring_until: Mapped[datetime | None] = mapped_column()
    # RECURRING: the next occurrence beat has not handled yet (None once the rule has ended).
    next_fire_at: Mapped[datetime | None] = mapped_column(index=True)
    conversation_tags: Mapped[list[str] | None] = mapped_column(Json)
    trigger: Mapped[str | None] = mapped_column(String(32))
    # The audience as submitted: groups are expanded again at each run's fire time.
    group_ids: Mapped[list[int]] = mapped_column(Json, default=list)
    # What the 201 answer reported (recipients, encoding, segments...), replayed for an Idempotency-Key.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CampaignContact(Base):
    """A contact named directly by the campaign, with the per-contact data of the WhatsApp envelope."""

    __tablename__ = "campaign_contacts"
    __table_args__ = (Index("ix_campaign_contacts_position", "campaign_id", "position"),)

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any] | None] = mapped_column(Json)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("campaign_id", "fire_at"),
        Index("ix_runs_status_fire_at", "status", "fire_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    fire_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    # Set once the fan-out has written every message row: a run is never finished before (its sends may
    # overtake a long fan-out, which writes and publishes chunk by chunk).
    materialised_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # Snapshot of the Redis counters, written when the run finishes (and by counter rebuilds).
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("run_id", "contact_id"),
        Index("ix_messages_run_status", "run_id", "status"),
        Index("ix_messages_provider_id", "provider_message_id"),
        Index("ix_messages_status_lease", "status", "lease_until"),
        Index("ix_messages_campaign", "campaign_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer)
    phone: Mapped[str] = mapped_column(String(20))
    # Rendered once when the run starts; send_message renders nothing.
    body: Mapped[str | None] = mapped_column(Text)
    template_params: Mapped[list[str] | None] = mapped_column(Json)
    encoding: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # queued: by when a send task should have claimed it; sending: when the claim expires.
    # The reconciler republishes anything past it (a lost publish, a killed worker).
    lease_until: Mapped[datetime | None] = mapped_column()
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    # When the provider's receipt arrived (`dispatcher.tracking.receipts`); a read message is delivered too.
    delivered_at: Mapped[datetime | None] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Rejection(Base):
    """A submission that arrived by Celery message and could not be accepted (see dispatcher.submit_campaign)."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payload: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
