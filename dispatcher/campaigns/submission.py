"""Submit a campaign: validate everything, persist in one transaction, then (after commit) enqueue.

Nothing is queued unless the whole submission is valid: phones, contacts, groups, sender, variables,
segments and schedule are all checked first, and every problem found is reported at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from beat_schedule.grid import ScheduleError, check_scheduled, parse_zone
from beat_schedule.rules import next_fire, parse_recurring
from dispatcher.audience import contacts as contact_store
from dispatcher.audience.senders import resolve_sender
from dispatcher.campaigns import payloads
from dispatcher.campaigns.payloads import CampaignSpec, RecipientSpec, Scalar
from dispatcher.config import Settings
from dispatcher.content import templates
from dispatcher.content.phones import PhoneError, normalize
from dispatcher.content.renderer import Refusal, Renderer, Totals, to_person
from dispatcher.db.models import (
    Campaign,
    CampaignContact,
    CampaignType,
    Contact,
    Run,
    RunStatus,
    Template,
    TemplateStatus,
)
from dispatcher.errors import Collector, IdempotencyMismatch, Loc, SpecError


@dataclass(slots=True)
class Submission:
    campaign: Campaign
    created: bool  # False when an Idempotency-Key replayed an earlier submission
    runs_to_start: list[int] = field(default_factory=list)
    # SCHEDULED/RECURRING: the caller runs the campaign's share of the beat tick at once (see ticker).
    scheduled: bool = False


def submit(
    session: Session,
    account_id: int,
    payload: object,
    settings: Settings,
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Submission:
    """Validate and store a campaign; commits. The caller publishes `runs_to_start` afterwards."""
    now = now or datetime.now(UTC)
    request_hash = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    if idempotency_key:
        replay = _replay(session, account_id, idempotency_key, request_hash)
        if replay is not None:
            return replay
    spec = payloads.parse(payload)
    campaign, runs = _build(session, account_id, spec, settings, now)
    campaign.idempotency_key = idempotency_key
    campaign.request_hash = request_hash
    try:
        session.commit()
    except IntegrityError:
        # A concurrent retry with the same Idempotency-Key won the insert: answer with its campaign.
        session.rollback()
        if idempotency_key:
            replay = _replay(session, account_id, idempotency_key, request_hash)
            if replay is not None:
                return replay
        raise
    return Submission(
        campaign=campaign,
        created=True,
        runs_to_start=[r.id for r in runs if r.status == RunStatus.QUEUED],
        scheduled=spec.type in (CampaignType.SCHEDULED, CampaignType.RECURRING),
    )


def _replay(session: Session, account_id: int, key: str, request_hash: str) -> Submission | None:
    existing = session.scalar(
        select(Campaign).where(Campaign.account_id == account_id, Campaign.idempotency_key == key)
    )
    if existing is None:
        return None
    if existing.request_hash != request_hash:
        raise IdempotencyMismatch("this Idempotency-Key was already used with a different payload")
    return Submission(campaign=existing, created=False)


def _build(
    session: Session, account_id: int, spec: CampaignSpec, settings: Settings, now: datetime
) -> tuple[Campaign, list[Run]]:
    errors = Collector()
    sender, warning = resolve_sender(session, account_id, spec.channel, spec.sender_ref, spec.locs["sender"], errors)
    template = _resolve_template(session, account_id, spec, errors) if spec.channel == "whatsapp" else None
    direct = _resolve_recipients(session, account_id, spec.recipients, errors, sms=spec.channel == "sms")
    group_ids = _resolve_groups(session, account_id, spec.group_ids, spec.locs["groups"], errors)
    schedule = _resolve_schedule(spec, settings, now, errors)
    errors.raise_if_any()

    audience: list[tuple[Recipient, Loc]] = list(direct)
    seen = {c.id for c, _ in direct}
    for contact in contact_store.members_of(session, group_ids):
        if contact.id not in seen:
            seen.add(contact.id)
            audience.append((contact, (*spec.locs["groups"], "members", contact.id)))
    if not audience:
        raise SpecError.single(spec.locs["contacts"], "the campaign has no recipients", "missing")
    data_by_loc = {r.loc: r.data for r in spec.recipients}
    renderer = Renderer(template=template) if template is not None else Renderer(text=spec.text)
    # Template data comes with listed contacts only: group members, who have none, are rendered at fan-out.
    rendered = direct if template is not None else audience
    totals = _render_all(renderer, rendered, data_by_loc, spec.locs["text"], errors)
    errors.raise_if_any()
    assert sender is not None
    summary = _summary(totals, template)
    if warning:
        summary["warnings"] = [warning]

    campaign = Campaign(
        account_id=account_id,
        name=spec.name or f"Campaign {now:%Y-%m-%d %H:%M}",
        channel=spec.channel,
        type=spec.type,
        sender_id=sender.id,
        text=spec.text if template is None else None,
        template_id=template.id if template is not None else None,
        scheduled_at=schedule.get("scheduled_at"),
        recurring=schedule.get("recurring"),
        timezone=schedule.get("timezone"),
        recurring_until=schedule.get("until"),
        next_fire_at=schedule.get("next_fire_at"),
        conversation_tags=spec.conversation_tags or None,
        trigger=spec.trigger,
        group_ids=group_ids,
        summary=summary,
    )
    session.add(campaign)
    session.flush()
    # By payload location: `direct` is deduplicated, so its positions are not the payload's.
    # Core rows, not ORM objects: a 100k audience would otherwise be 100k objects through the unit of work.
    audience_rows = [
        {"campaign_id": campaign.id, "contact_id": c.id, "position": i, "data": data_by_loc.get(loc)}
        for i, (c, loc) in enumerate(direct)
    ]
    if audience_rows:
        session.execute(insert(CampaignContact), audience_rows)
    runs: list[Run] = []
    if spec.type == CampaignType.SMS:
        runs.append(
            Run(campaign_id=campaign.id, account_id=account_id, fire_at=now, status=RunStatus.QUEUED, published_at=now)
        )
    elif spec.type == CampaignType.SCHEDULED:
        fire_at = schedule["scheduled_at"]
        runs.append(Run(campaign_id=campaign.id, account_id=account_id, fire_at=fire_at, status=RunStatus.SCHEDULED))
    session.add_all(runs)
    session.flush()
    return campaign, runs


Recipient = Contact | contact_store.NewContact


def _resolve_recipients(
    session: Session, account_id: int, recipients: list[RecipientSpec], errors: Collector, *, sms: bool = True
) -> list[tuple[Recipient, Loc]]:
    """Find or create the listed contacts; a phone listed twice is one recipient (the first listing wins).
    Saved contacts are updated as ORM objects; new ones are written together in one statement."""
    phones: dict[int, str] = {}
    for i, r in enumerate(recipients):
        if r.phone is not None:
            try:
                phones[i] = normalize(r.phone, sms=sms)
            except PhoneError as exc:
                errors.add((*r.loc, r.phone_field), str(exc), "phone")
    wanted_ids = {i: contact_store.parse_id(r.contact_id) for i, r in enumerate(recipients) if r.contact_id is not None}
    by_id = contact_store.by_ids(session, account_id, (v for v in wanted_ids.values() if v is not None))
    by_phone: dict[str, Recipient] = dict(contact_store.by_phones(session, account_id, phones.values()))
    # Phones naming no saved contact become contacts (rolled back with the rest if the submission fails).
    new: dict[str, contact_store.NewContact] = {}
    for i, phone in phones.items():
        if recipients[i].contact_id is None and phone not in by_phone:
            by_phone[phone] = new[phone] = contact_store.NewContact(phone)

    out: list[tuple[Recipient, Loc]] = []
    given_new: list[tuple[str, contact_store.ContactFields]] = []
    seen: set[int] = set()  # by object: a new contact has no id yet
    for i, r in enumerate(recipients):
        given = contact_store.ContactFields(r.name, r.first_name, r.last_name, r.sex, r.fields or None)
        contact: Recipient
        if r.contact_id is not None:
            found = by_id.get(wanted_ids[i] or -1)
            if found is None:
                errors.add((*r.loc, "id"), f"contact {r.contact_id!r} does not exist in this account", "not_found")
                continue
            contact = found
            new_phone = phones.get(i)
            if new_phone is not None and new_phone != contact.phone:
                owner = by_phone.get(new_phone)
                if owner is not None and owner is not contact:
                    errors.add((*r.loc, "phone"), f"{new_phone} already belongs to contact {owner.id}", "conflict")
                    continue
                contact.phone = new_phone
        elif i in phones:
            contact = by_phone[phones[i]]
        else:
            continue  # its phone was invalid: already reported
        if errors.errors:
            continue  # keep collecting errors, but change nothing once the submission is doomed
        problem = contact_store.apply(contact, given)
        if problem is not None:
            errors.add((*r.loc, "fields"), problem, "fields")
            continue
        if isinstance(contact, contact_store.NewContact):
            given_new.append((contact.phone, given))
        if id(contact) not in seen:
            seen.add(id(contact))
            out.append((contact, r.loc))
    if errors.errors:
        return out
    _create_new(session, account_id, new, given_new)
    session.flush()
    return out


def _create_new(
    session: Session,
    account_id: int,
    new: dict[str, contact_store.NewContact],
    given: list[tuple[str, contact_store.ContactFields]],
) -> None:
    """Write the new contacts; one that a concurrent submission created meanwhile is loaded and updated
    instead, and takes its saved id."""
    taken = contact_store.create(session, account_id, new.values())
    if not taken:
        return
    saved = contact_store.by_phones(session, account_id, [c.phone for c in taken])
    for phone, fields in given:
        if phone in saved:
            contact_store.apply(saved[phone], fields)
    for contact in taken:
        contact.id = saved[contact.phone].id


def _resolve_template(session: Session, account_id: int, spec: CampaignSpec, errors: Collector) -> Template | None:
    """The approved template named by the envelope, fitting the channel."""
    loc = spec.locs["template"]
    if spec.template_ref in (None, ""):
        errors.add(loc, "a WhatsApp campaign needs message_template_id", "missing")
        return None
    found = templates.find(session, account_id, spec.template_ref)
    if not found:
        errors.add(loc, f"template {spec.template_ref!r} does not exist in this account", "not_found")
        return None
    if len(found) > 1:
        langs = ", ".join(f"{t.id} ({t.language})" for t in found)
        errors.add(loc, f"template name {spec.template_ref!r} exists in several languages; use an id: {langs}")
        return None
    template = found[0]
    if template.status != TemplateStatus.APPROVED:
        errors.add(loc, f"template {template.name!r} is {template.status}: only APPROVED templates can be sent")
    elif template.channel != spec.channel:
        errors.add(loc, f"template {template.name!r} is for {template.channel}, not {spec.channel}")
    return template


def _resolve_groups(
    session: Session, account_id: int, raw_ids: list[str | int], loc: Loc, errors: Collector
) -> list[int]:
    ids = [contact_store.parse_id(g) for g in raw_ids]
    found = contact_store.groups_by_ids(session, account_id, (g for g in ids if g is not None))
    out: list[int] = []
    for i, (raw, gid) in enumerate(zip(raw_ids, ids, strict=True)):
        if gid is None or gid not in found:
            errors.add((*loc, i), f"group {raw!r} does not exist in this account", "not_found")
        elif gid not in out:
            out.append(gid)
    return out


def _resolve_schedule(spec: CampaignSpec, settings: Settings, now: datetime, errors: Collector) -> dict[str, Any]:
    grid = settings.schedule_grid_minutes
    try:
        if spec.type == CampaignType.SCHEDULED:
            if spec.scheduled_at is None:
                raise ScheduleError("scheduledDate", "a SCHEDULED campaign needs scheduledDate")
            when = check_scheduled(spec.scheduled_at, now, grid, field=".".join(map(str, spec.locs["scheduled_at"])))
            return {"scheduled_at": when}
        if spec.type == CampaignType.RECURRING:
            if not spec.recurring:
                raise ScheduleError("recurring", 'a RECURRING campaign needs recurring: {"monday": "09:00", ...}')
            rule = parse_recurring(spec.recurring, spec.timezone, grid, spec.recurring_until)
            zone = parse_zone(spec.timezone)
            first = next_fire(rule, now)
            if first is None:
                raise ScheduleError(
                    "recurringUntil", "the rule never fires: recurringUntil is before its first occurrence"
                )
            return {"recurring": rule.to_json(), "timezone": zone.key, "until": rule.until, "next_fire_at": first}
        if spec.scheduled_at is not None:
            raise ScheduleError("scheduledDate", 'scheduledDate needs type "SCHEDULED"')
    except ScheduleError as exc:
        errors.add(tuple(exc.field.split(".")), exc.reason, "schedule")
    return {}


def _render_all(
    renderer: Renderer,
    recipients: list[tuple[Recipient, Loc]],
    data_by_loc: dict[Loc, dict[str, Scalar] | None],
    text_loc: Loc,
    errors: Collector,
) -> Totals:
    """Render every recipient's message: each reason one cannot be sent is an error naming its field."""
    totals = Totals()
    for contact, loc in recipients:
        result = renderer.render(to_person(contact), data_by_loc.get(loc))
        if not isinstance(result, Refusal):
            totals.add(result)
            continue
        for reason in result.reasons:
            if reason.key is None:  # the text itself: too long or empty once personalised
                errors.add(text_loc, reason.text)
            else:
                errors.add((*loc, *reason.key), reason.text, reason.code)
    return totals


def _summary(totals: Totals, template: Template | None) -> dict[str, Any]:
    """The figures the 201 answer reports (and an Idempotency-Key replays)."""
    named = {"template": template.name, "language": template.language} if template is not None else {}
    return {
        "recipients": totals.recipients,
        **named,
        "encoding": totals.encoding,
        "segments": totals.segments,
        "totalSegments": totals.total_segments,
    }
