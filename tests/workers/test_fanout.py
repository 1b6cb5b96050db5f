"""Fan-out: every message rendered again (a recipient the submission checks would now refuse is skipped, not
sent), the audience streamed chunk by chunk, a fan-out cut short continued, never finished early."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatcher import keys
from dispatcher.campaigns.completion import finish_run
from dispatcher.campaigns.submission import submit
from dispatcher.config import Settings
from dispatcher.contracts import SendRef
from dispatcher.db.models import (
    Campaign,
    CampaignContact,
    Contact,
    Group,
    GroupMember,
    Message,
    MessageStatus,
    Run,
    RunStatus,
    Sender,
    Template,
    TemplateStatus,
)
from dispatcher.db.session import session_factory
from tests.support.databases import fresh_database, sandbox_account
from workers.fanout import materialise, start_run


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A migrated SQLite database and an account with a default sandbox SMS sender."""
    with fresh_database("sqlite", tmp_path, pg_admin_url="") as url:
        account_id, _token, _sender = sandbox_account(url, "acme")
        yield url, account_id


def _materialised(session: Session, campaign_id: int, r: redis.Redis) -> dict[str, Message]:
    """Start the campaign's run's fan-out (its message rows), by phone."""
    campaign = session.get_one(Campaign, campaign_id)
    run = session.scalars(select(Run).where(Run.campaign_id == campaign_id)).one()
    materialise(session, r, run, campaign, lambda refs, channel: None, now=datetime.now(UTC), lease=120)
    session.commit()
    messages = session.scalars(select(Message).where(Message.run_id == run.id))
    return {m.phone: m for m in messages}


def test_a_recipient_whose_stored_data_breaks_metas_rules_is_skipped(database: tuple[str, int], redis_url: str) -> None:
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
        messages = _materialised(session, campaign.id, redis.Redis.from_url(redis_url))

    # Then that recipient is skipped with Meta's reason, and the other one is queued as before
    skipped, queued = messages["+212600000001"], messages["+212600000000"]
    assert (skipped.status, skipped.error_code) == (MessageStatus.SKIPPED, "template_data")
    assert skipped.template_params is None
    assert skipped.error_text == "a template parameter cannot contain a newline, a tab or four spaces in a row"
    assert (queued.status, queued.template_params) == (MessageStatus.QUEUED, ["Jean", "ORD-1"])


def test_a_group_member_whose_fields_make_the_text_too_long_is_skipped(
    database: tuple[str, int], redis_url: str
) -> None:
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
        messages = _materialised(session, campaign.id, redis.Redis.from_url(redis_url))

    # Then the newcomer is skipped with the submission's reason, and the first member is queued
    skipped, queued = messages["+2250700000002"], messages["+2250700000001"]
    assert (skipped.status, skipped.error_code, skipped.body) == (MessageStatus.SKIPPED, "too_long", None)
    assert skipped.error_text == "the text makes 21 SMS segments (at most 10)"
    assert (queued.status, queued.encoding, queued.segments) == (MessageStatus.QUEUED, "GSM-7", 10)


def _group_campaign(session: Session, account_id: int, url: str, members: int, listed: int = 0) -> Campaign:
    """An SMS campaign to a group of `members` new contacts (the first `listed` of them also listed)."""
    group = Group(account_id=account_id, name=f"g{members}")
    session.add(group)
    session.flush()
    phones = [f"+22507{n:08d}" for n in range(members)]
    session.execute(Contact.__table__.insert(), [{"account_id": account_id, "phone": p, "fields": {}} for p in phones])
    ids = session.scalars(select(Contact.id).where(Contact.account_id == account_id).order_by(Contact.id)).all()
    session.execute(GroupMember.__table__.insert(), [{"group_id": group.id, "contact_id": i} for i in ids])
    session.commit()
    payload = {"groupsIds": [group.id], "text": "Promo", "contacts": [{"phone": p} for p in phones[:listed]]}
    return submit(session, account_id, payload, Settings(database_url=url)).campaign


def test_the_fan_out_writes_and_publishes_chunk_by_chunk_each_contact_once(
    database: tuple[str, int], redis_url: str
) -> None:
    url, account_id = database
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    published: list[int] = []
    with session_factory(url)() as session:
        # Given a campaign to 2,500 group members, 300 of whom are also listed
        campaign = _group_campaign(session, account_id, url, 2_500, listed=300)
        run = session.scalars(select(Run).where(Run.campaign_id == campaign.id)).one()

        # When its run starts with chunks of 1,000
        assert start_run(session, r, run.id, lambda refs, _ch: published.append(len(refs)), chunk=1_000) == 2_500
        # Then the sends left chunk by chunk: the listed contacts first, then the members not listed
        assert published == [300, 700, 1_000, 500]
        rows = session.scalars(select(Message.contact_id).where(Message.run_id == run.id)).all()
        assert len(rows) == len(set(rows)) == 2_500
        assert r.hget(keys.run_stats(run.id), "total") == "2500"
        assert session.get_one(Run, run.id, populate_existing=True).materialised_at is not None
    r.delete(keys.run_stats(run.id))


def test_a_fan_out_cut_short_goes_on_when_its_task_is_redelivered_and_is_never_finished_early(
    database: tuple[str, int], redis_url: str
) -> None:
    url, account_id = database
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with session_factory(url)() as session:
        campaign = _group_campaign(session, account_id, url, 2_500)
        run = session.scalars(select(Run).where(Run.campaign_id == campaign.id)).one()

        # Given a worker that dies after its first chunk, whose sends all ended at once
        def dies(refs: list[SendRef], _channel: str) -> None:
            ids = [ref.message_id for ref in refs]
            session.execute(update(Message).where(Message.id.in_(ids)).values(status=MessageStatus.SENT))
            session.commit()
            # Every row written so far is sent, but the run is not finished: the fan-out is not done
            assert not finish_run(session, r, run.id)
            raise RuntimeError("worker lost")

        with pytest.raises(RuntimeError):
            start_run(session, r, run.id, dies, chunk=1_000)
        session.rollback()
        assert session.get_one(Run, run.id, populate_existing=True).status == RunStatus.RUNNING

        # When the task is delivered again, the fan-out goes on where it stopped
        published: list[int] = []
        start_run(session, r, run.id, lambda refs, _ch: published.append(len(refs)), chunk=1_000)
        assert sum(published) == 1_500
        rows = session.scalars(select(Message.contact_id).where(Message.run_id == run.id)).all()
        assert len(rows) == len(set(rows)) == 2_500
        assert r.hget(keys.run_stats(run.id), "total") == "2500"
    r.delete(keys.run_stats(run.id))
