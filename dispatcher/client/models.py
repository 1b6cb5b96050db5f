"""Typed results: pydantic models of the API's answers.

Attributes are snake_case; the JSON is camelCase (`status_reason` reads `statusReason`). Both names are
accepted when building a model by hand. Unknown fields are kept (`model_extra`), and every field except
`id` has a default, so a newer server adding or leaving out a field does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Base of every result: camelCase aliases, snake_case attributes, extra fields allowed."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


ItemT = TypeVar("ItemT")


class Page(Model, Generic[ItemT]):
    """One page of a list and `total`, the number of items in all pages (None from an older server)."""

    data: list[ItemT] = Field(default_factory=list)
    page: int = 1
    limit: int = 0
    total: int | None = None


class CampaignStats(Model):
    """Message counters, in the API's order. `pending` = total - sent - failed - skipped - unknown;
    `delivered` and `read` count messages already counted as `sent`."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    delivered: int = 0
    read: int = 0
    pending: int = 0


class Contact(Model):
    """A saved contact (`/v1/contacts`). `fields` are custom fields, usable as `@name` in texts."""

    id: str
    phone: str = ""
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    sex: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class CampaignRecipient(Contact):
    """A campaign's recipient; once the campaign started, with its message's status and error."""

    status: str | None = None
    error_code: str | None = None
    error: str | None = None


class CampaignErrorSummary(Model):
    """How many messages were not sent for one provider error code."""

    code: str | None = None
    error: str | None = None
    count: int = 0


class CampaignRun(Model):
    """One firing of a campaign (one for SMS and SCHEDULED campaigns, one per occurrence for RECURRING)."""

    id: str
    fire_at: datetime | None = None
    status: str | None = None
    status_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stats: CampaignStats = Field(default_factory=CampaignStats)


# A campaign in one of these statuses has nothing left to send (a PAUSED one may resume).
FINAL_STATUSES = frozenset({"SENT", "FAILED", "CANCELLED"})


class Campaign(Model):
    """A campaign in the SMS document's `CampaignDetails` shape, with the server's additions.

    List pages carry the summary fields only: `contacts`, `errors`, `runs`, `next_runs`, `recipients`,
    `encoding`, `segments`, `total_segments` and `warnings` are None there and set in the answers of
    `get`, `create`, `pause`, `resume`, `cancel` and `reschedule`. A WhatsApp campaign has `template` and
    `language` (its approved template's name and language) instead of `encoding` and segments.
    `sender_id` is the sender's id; `sender_label` the name it sends as. `recurring` is the server's stored
    rule (`{"times": {"monday": "09:00"}, "timezone": ..., "until": ...}`), not the submitted object.
    """

    id: str
    name: str | None = None
    type: str | None = None
    channel: str | None = None
    status: str | None = None
    status_reason: str | None = None
    text: str | None = None
    sender_id: str | None = None
    sender_label: str | None = None
    scheduled_date: datetime | None = None
    recurring: dict[str, Any] | None = None
    timezone: str | None = None
    recurring_until: datetime | None = None
    stats: CampaignStats = Field(default_factory=CampaignStats)
    contacts: list[CampaignRecipient] | None = None
    errors: list[CampaignErrorSummary] | None = None
    runs: list[CampaignRun] | None = None
    next_runs: list[datetime] | None = None
    recipients: int | None = None
    encoding: str | None = None
    segments: int | None = None
    total_segments: int | None = None
    template: str | None = None
    language: str | None = None
    warnings: list[str] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """Whether the campaign is over (SENT, FAILED or CANCELLED): nothing is left to send, though receipts
        may still raise `stats.delivered` and `stats.read`."""
        return self.status in FINAL_STATUSES


class CampaignPage(Page[Campaign]):
    """A page of campaigns, newest first (`client.campaigns.list`)."""


class Message(Model):
    """One recipient's message of a campaign: rendered body, status, attempts and provider answer."""

    id: str
    run_id: str | None = None
    contact_id: str | None = None
    phone: str | None = None
    name: str | None = None
    body: str | None = None
    encoding: str | None = None
    segments: int | None = None
    status: str | None = None
    attempts: int = 0
    provider_message_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    sent_at: datetime | None = None


class MessagePage(Page[Message]):
    """A page of a campaign's messages (`client.campaigns.messages`)."""


class ContactPage(Page[Contact]):
    """A page of contacts (`client.contacts.list`, `client.groups.contacts`)."""


class Sender(Model):
    """Who campaigns are sent from. Provider settings are write-only and never returned."""

    id: str
    channel: str | None = None
    label: str | None = None
    provider: str | None = None
    active: bool = True
    default: bool = False
    rate: float | None = None
    burst: int | None = None
    created_at: datetime | None = None


class Group(Model):
    """A named set of contacts; `size` is its number of members."""

    id: str
    name: str | None = None
    size: int = 0
    created_at: datetime | None = None


class GroupContactsAdded(Model):
    """The answer of `client.groups.add_contacts`: how many contacts joined, and the group after."""

    added: int = 0
    group: Group


class Template(Model):
    """A message template (`/v1/templates`, needs a server that has templates); `variables` is how many
    `{{n}}` placeholders the body takes; `status` is PENDING, APPROVED or REJECTED."""

    id: str
    name: str | None = None
    language: str | None = None
    body: str | None = None
    variables: int | None = None
    status: str | None = None
    channel: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ImportRowError(Model):
    """A row an import did not take: its line in the file (the header is line 1), the column, why."""

    line: int = 0
    column: str | None = None
    reason: str = ""


# An import in one of these statuses has ended.
FINAL_IMPORT_STATUSES = frozenset({"done", "failed"})


class ContactImport(Model):
    """A file of contacts being imported into a group (`client.contacts.import_file`).

    `status` is queued, running, done or failed (`status_reason` says why); `rows` counts the rows read so
    far, each `created`, `updated` or `invalid`; `errors` are the first 1,000 invalid ones.
    """

    id: str
    status: str | None = None
    status_reason: str | None = None
    group_id: str | None = None
    format: str | None = None
    country: str | None = None
    rows: int = 0
    created: int = 0
    updated: int = 0
    invalid: int = 0
    errors: list[ImportRowError] = Field(default_factory=list)
    ignored_columns: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """Whether the import is over (done or failed)."""
        return self.status in FINAL_IMPORT_STATUSES
