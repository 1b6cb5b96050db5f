"""Fan-out renders every message again: a recipient the submission checks would now refuse is skipped, not sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatcher.campaigns.submission import submit
from dispatcher.config import Settings
from dispatcher.db.models import (
    Campaign,
    CampaignContact,
    Contact,
    Group,
    GroupMember,
    Message,
    MessageStatus,
    Run,
    Sender,
    Template,
    TemplateStatus,
)
from dispatcher.db.session import session_factory
from tests.support.databases import fresh_database, sandbox_account
from workers.fanout import materialise


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A migrated SQLite database and an account with a default sandbox SMS sender."""
    with fresh_database("sqlite", tmp_path, pg_admin_url="") as url:
        account_id, _token, _sender = sandbox_account(url, "acme")
        yield url, account_id


def _materialised(session: Session, campaign_id: int) -> dict[str, Message]:
    """Start the campaign's run's fan-out (its message rows), by phone."""
    campaign = session.get_one(Campaign, campaign_id)
    run = session.scalars(select(Run).where(Run.campaign_id == campaign_id)).one()
    materialise(session, run, campaign, datetime.now(UTC), 120)
    session.commit()
    messages = session.scalars(select(Message).where(Message.run_id == run.id))
    return {m.phone: m for m in messages}


def test_a_recipient_whose_stored_data_breaks_metas_rules_is_skipped(database: tuple[str, int]) -> None:
    url, account_id = database
    with session_factory(url)() as session:
        # Given a WhatsApp campaign accepted with valid data for two recipients
        session.add(Sender(account_id=account_id, channel="whatsapp", label="WA", provider="sandbox", is_default=True))
        template = Template(
            account_id=account_id,
            name="commande_prete",
            language="fr",
            body="Bonjour {{1}}, votre commande {{2}} est prête.",
            variables=2,
            status=TemplateStatus.APPROVED,
        )
        session.add(template)
        session.commit()
        payload = {
            "title": "Commandes",
            "contacts_and_data": {
                "*": {"channel": "whatsapp", "message_template_id": template.id},
                "contacts": [
                    {"wa_id": "212600000000", "data": {"1": "Jean", "2": "ORD-1"}},
                    {"wa_id": "212600000001", "data": {"1": "Jeanne", "2": "ORD-2"}},
                ],
            },
        }
        campaign = submit(session, account_id, payload, Settings(database_url=url)).campaign
        # When one recipient's stored data has become what Meta refuses (a newline) before the run starts
        jeanne = session.scalars(select(Contact).where(Contact.phone == "+212600000001")).one()
        session.execute(
            update(CampaignContact)
            .where(CampaignContact.campaign_id == campaign.id, CampaignContact.contact_id == jeanne.id)
            .values(data={"1": "Jeanne\nDupont", "2": "ORD-2"})
        )
        messages = _materialised(session, campaign.id)

    # Then that recipient is skipped with Meta's reason, and the other one is queued as before
    skipped, queued = messages["+212600000001"], messages["+212600000000"]
    assert (skipped.status, skipped.error_code) == (MessageStatus.SKIPPED, "template_data")
    assert skipped.template_params is None
    assert skipped.error_text == "a template parameter cannot contain a newline, a tab or four spaces in a row"
    assert (queued.status, queued.template_params) == (MessageStatus.QUEUED, ["Jean", "ORD-1"])


def test_a_group_member_whose_fields_make_the_text_too_long_is_skipped(database: tuple[str, int]) -> None:
    url, account_id = database
    with session_factory(url)() as session:
        # Given an SMS campaign to a group, accepted while the group held one contact
        group = Group(account_id=account_id, name="clients")
        awa = Contact(account_id=account_id, phone="+2250700000001", fields={"ville": "Abidjan"})
        session.add_all([group, awa])
        session.flush()
        session.add(GroupMember(group_id=group.id, contact_id=awa.id))
        session.commit()
        payload = {"groupsIds": [group.id], "text": "@ville " + "a" * 1400}
        campaign = submit(session, account_id, payload, Settings(database_url=url)).campaign
        # When a member joins whose town turns the text into UCS-2, over the segment cap
        cote = Contact(account_id=account_id, phone="+2250700000002", fields={"ville": "Côte"})
        session.add(cote)
        session.flush()
        session.add(GroupMember(group_id=group.id, contact_id=cote.id))
        session.commit()
        messages = _materialised(session, campaign.id)

    # Then the newcomer is skipped with the submission's reason, and the first member is queued
    skipped, queued = messages["+2250700000002"], messages["+2250700000001"]
    assert (skipped.status, skipped.error_code, skipped.body) == (MessageStatus.SKIPPED, "too_long", None)
    assert skipped.error_text == "the text makes 21 SMS segments (at most 10)"
    assert (queued.status, queued.encoding, queued.segments) == (MessageStatus.QUEUED, "GSM-7", 10)
