"""Scheduled and recurring campaigns through the real beat tick code, the real worker and the sandbox.

Most tests drive `ticker.tick` with a clock they control and a recording publisher; one waits for real
fire times (the tests run with a one-minute grid) and checks the first message leaves within 2 s.
A simulated tick sees every campaign in the database, so assertions look only at the test's own runs.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from beat_schedule import ticker
from dispatcher import redis_client
from dispatcher.campaigns import enqueue
from dispatcher.config import get_settings
from dispatcher.db.models import Campaign, Run
from dispatcher.db.session import session_factory
from tests.support.processes import Stack
from tests.support.tenants import Tenant, ci_phone


class Recorder:
    """A publisher that records instead of publishing (the tick's clock is simulated)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, datetime]] = []
        self.lock = threading.Lock()

    def __call__(self, run_id: int, fire_at: datetime) -> None:
        with self.lock:
            self.calls.append((run_id, fire_at))

    def of(self, stack: Stack, campaign_id: str) -> list[tuple[int, datetime]]:
        """The calls for one campaign's runs (the tick also handles other tests' campaigns)."""
        ids = {r.id for r in runs_of(stack, campaign_id)}
        return [call for call in self.calls if call[0] in ids]


def tick(stack: Stack, now: datetime, publish: object) -> dict[str, int]:
    with session_factory(stack.db_url)() as session:
        return ticker.tick(session, get_settings(), publish, now=now)  # type: ignore[arg-type]


def runs_of(stack: Stack, campaign_id: str) -> list[Run]:
    with session_factory(stack.db_url)() as session:
        return list(session.scalars(select(Run).where(Run.campaign_id == int(campaign_id)).order_by(Run.fire_at)))


def next_fire_of(stack: Stack, campaign_id: str) -> datetime | None:
    with session_factory(stack.db_url)() as session:
        return session.get_one(Campaign, int(campaign_id)).next_fire_at


def recurring(tenant: Tenant, days: dict[str, str], tz: str = "UTC", phones: int = 1, base: int = 0) -> dict:
    payload = {
        "name": "weekly",
        "type": "RECURRING",
        "recurring": days,
        "timezone": tz,
        "text": "Rappel @prenom",
        "contacts": [{"phone": ci_phone(base + i), "firstName": f"P{i}"} for i in range(phones)],
    }
    response = tenant.post("/v1/campaigns", payload)
    assert response.status_code == 201, response.text
    return response.json()


def test_scheduled_and_recurring_campaigns_fire_at_their_time(
    stack: Stack, tenant: Tenant, sandbox_box: httpx.Client
) -> None:
    # Given a scheduled campaign and a recurring one (today's weekday in Paris), both due at the next
    # minute, inside the publishing horizon at submission
    if datetime.now(UTC).second >= 55:
        time.sleep(6)
    fire_at = (datetime.now(UTC) + timedelta(seconds=60)).replace(second=0, microsecond=0)
    assert fire_at - datetime.now(UTC) <= ticker.HORIZON
    paris = fire_at.astimezone(ZoneInfo("Europe/Paris"))
    weekday = paris.strftime("%A").lower()
    scheduled = tenant.post(
        "/v1/campaigns",
        {
            "type": "SCHEDULED",
            "scheduledDate": fire_at.isoformat(),
            "contacts": [{"phone": ci_phone(70_000)}],
            "text": "Rappel",
        },
    ).json()
    assert scheduled["status"] == "PENDING" and scheduled["scheduledDate"] == fire_at.isoformat().replace("+00:00", "Z")
    group = tenant.post("/v1/groups", {"name": "weekly"}).json()
    weekly = tenant.post(
        "/v1/campaigns",
        {
            "type": "RECURRING",
            "recurring": {weekday: paris.strftime("%H:%M")},
            "timezone": "Europe/Paris",
            "groupsIds": [group["id"]],
            "contacts": [{"phone": ci_phone(70_001), "firstName": "Ana"}],
            "text": "Séance @prenom",
        },
    ).json()
    assert weekly["nextRuns"][0] == fire_at.isoformat().replace("+00:00", "Z")
    assert weekly["nextRuns"][1] == (fire_at + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    # And the group gains a member after submission (the audience is resolved at fire time)
    tenant.post(f"/v1/groups/{group['id']}/contacts", {"contacts": [{"phone": ci_phone(70_002), "firstName": "Bo"}]})

    # When no beat tick runs before the fire time: submission itself published both as ETA tasks
    assert [r.status for r in runs_of(stack, scheduled["id"])] == ["queued"]
    assert [r.status for r in runs_of(stack, weekly["id"])] == ["queued"]
    deadline = fire_at + timedelta(seconds=30)
    received: list[dict] = []
    while datetime.now(UTC) < deadline and len(received) < 3:
        received = sandbox_box.get("/_sandbox/messages").json()["messages"]
        time.sleep(0.5)

    # Then each campaign fired once, on time: the first message left within 2 s of the fire time
    assert sorted((m["to"], m["body"]) for m in received) == [
        ("+" + ci_phone(70_000), "Rappel"),
        ("+" + ci_phone(70_001), "Séance Ana"),
        ("+" + ci_phone(70_002), "Séance Bo"),
    ]
    first = min(datetime.fromisoformat(m["received_at"].replace("Z", "+00:00")) for m in received)
    assert timedelta(0) <= first - fire_at < timedelta(seconds=2), first - fire_at
    assert tenant.wait_final(scheduled["id"])["stats"]["sent"] == 1
    for _ in range(3):
        tick(stack, datetime.now(UTC), enqueue.start_run)
    assert [r.fire_at for r in runs_of(stack, weekly["id"])] == [fire_at]
    assert len(runs_of(stack, scheduled["id"])) == 1
    details = tenant.get(f"/v1/campaigns/{weekly['id']}").json()
    assert details["status"] == "PENDING"  # it recurs
    assert details["runs"][0]["stats"]["sent"] == 2
    assert details["nextRuns"][0] == (fire_at + timedelta(days=7)).isoformat().replace("+00:00", "Z")


def test_recurring_rule_fires_on_its_weekdays_and_local_times(stack: Stack, tenant: Tenant) -> None:
    # Monday 09:00 and Friday 17:30 in New York, across the 2027 spring-forward (Sunday 14 March)
    c = recurring(tenant, {"monday": "2024-03-18T09:00:00Z", "friday": "17:30"}, tz="America/New_York")
    start = datetime(2027, 3, 1, tzinfo=UTC)
    with session_factory(stack.db_url)() as session:  # move the campaign's clock to March 2027
        from beat_schedule.rules import WeeklyRule, next_fire

        campaign = session.get_one(Campaign, int(c["id"]))
        campaign.next_fire_at = next_fire(WeeklyRule.from_json(campaign.recurring or {}), start)
        session.commit()
    recorder = Recorder()
    now = start
    for _ in range(8):
        upcoming = next_fire_of(stack, c["id"])
        assert upcoming is not None
        now = upcoming - timedelta(seconds=20)
        tick(stack, now, recorder)
    ny = ZoneInfo("America/New_York")
    # Nothing consumes these runs, so later ticks also republish them as lost: keep first publications.
    firsts = list(dict.fromkeys(recorder.of(stack, c["id"])))
    local = [f.astimezone(ny).strftime("%a %d %H:%M") for _, f in firsts]
    assert local == [
        "Mon 01 09:00",
        "Fri 05 17:30",
        "Mon 08 09:00",
        "Fri 12 17:30",
        "Mon 15 09:00",
        "Fri 19 17:30",
        "Mon 22 09:00",
        "Fri 26 17:30",
    ]
    utc_hours = [f.astimezone(UTC).hour for _, f in firsts]
    assert utc_hours == [14, 22, 14, 22, 13, 21, 13, 21]  # EST then EDT: wall time kept
    assert len({run_id for run_id, _ in firsts}) == 8


def test_two_ticks_at_once_create_and_publish_one_run(stack: Stack, tenant: Tenant) -> None:
    c = recurring(tenant, {"monday": "09:00", "thursday": "09:00"})
    fire_at = next_fire_of(stack, c["id"])
    assert fire_at is not None
    recorder = Recorder()
    barrier = threading.Barrier(4)

    def beat() -> None:
        barrier.wait()
        tick(stack, fire_at - timedelta(seconds=30), recorder)

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = runs_of(stack, c["id"])
    assert [r.fire_at for r in runs] == [fire_at]
    assert recorder.of(stack, c["id"]) == [(runs[0].id, fire_at)]


def test_after_an_outage_recent_occurrences_fire_once_and_older_ones_are_missed(stack: Stack, tenant: Tenant) -> None:
    # Given two daily rules whose occurrences passed while beat was down
    every_day = dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), "09:00")
    recent = recurring(tenant, every_day, base=71_000)
    old = recurring(tenant, every_day, base=71_100)
    fire_at = next_fire_of(stack, recent["id"])
    assert fire_at is not None and next_fire_of(stack, old["id"]) == fire_at
    recorder = Recorder()

    # When beat comes back 10 minutes late (within the 15-minute grace window) for the first ...
    with session_factory(stack.db_url)() as session:
        session.get_one(Campaign, int(old["id"])).next_fire_at = fire_at - timedelta(days=2)
        session.commit()
    tick(stack, fire_at + timedelta(minutes=10), recorder)

    # Then the recent occurrence fires once, late; the old campaign's missed occurrences are recorded
    recent_runs = runs_of(stack, recent["id"])
    assert [(r.fire_at, r.status) for r in recent_runs] == [(fire_at, "queued")]
    old_runs = runs_of(stack, old["id"])
    assert [r.status for r in old_runs] == ["missed", "missed", "queued"]
    assert [r.fire_at for r in old_runs] == [fire_at - timedelta(days=2), fire_at - timedelta(days=1), fire_at]
    assert recorder.of(stack, recent["id"]) == [(recent_runs[0].id, fire_at)]
    assert recorder.of(stack, old["id"]) == [(old_runs[2].id, fire_at)]
    # And a two-hour outage records the occurrence as missed and fires nothing
    two_hours_later = fire_at + timedelta(days=1, hours=2)
    recorder.calls.clear()
    tick(stack, two_hours_later, recorder)
    assert recorder.of(stack, recent["id"]) == []
    assert [r.status for r in runs_of(stack, recent["id"])][-1] == "missed"
    details = tenant.get(f"/v1/campaigns/{recent['id']}").json()
    assert [r["status"] for r in details["runs"]][-1] == "missed"
    assert "grace window" in details["runs"][-1]["statusReason"]
    assert next_fire_of(stack, recent["id"]) == fire_at + timedelta(days=2)


def test_a_queued_run_whose_task_was_lost_is_published_again(stack: Stack, tenant: Tenant) -> None:
    c = recurring(tenant, {"monday": "09:00"})
    fire_at = next_fire_of(stack, c["id"])
    assert fire_at is not None
    lost = Recorder()  # the ETA task "dies with the worker": nothing consumes it
    tick(stack, fire_at - timedelta(seconds=30), lost)
    assert len(lost.of(stack, c["id"])) == 1
    again = Recorder()
    tick(stack, fire_at + timedelta(seconds=30), again)
    assert again.of(stack, c["id"]) == []  # not yet: it may just be starting
    tick(stack, fire_at + timedelta(minutes=3), again)
    assert again.of(stack, c["id"]) == lost.of(stack, c["id"])
    # Past the grace window a lost run is recorded as missed rather than sent hours late.
    tick(stack, fire_at + timedelta(hours=2), again)
    assert [r.status for r in runs_of(stack, c["id"])] == ["missed"]


def test_paused_recurring_campaign_skips_occurrences_and_resume_does_not_replay(stack: Stack, tenant: Tenant) -> None:
    c = recurring(
        tenant, dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), "09:00")
    )
    first = next_fire_of(stack, c["id"])
    assert first is not None
    assert tenant.post(f"/v1/campaigns/{c['id']}/pause", {}).json()["status"] == "PAUSED"
    recorder = Recorder()
    tick(stack, first - timedelta(seconds=10), recorder)
    assert runs_of(stack, c["id"]) == []
    assert tenant.get(f"/v1/campaigns/{c['id']}").json()["nextRuns"] == []

    resumed = tenant.post(f"/v1/campaigns/{c['id']}/resume", {}).json()
    assert resumed["status"] == "PENDING"
    # Resuming continues from the next occurrence after now; nothing that passed is replayed.
    assert datetime.fromisoformat(resumed["nextRuns"][0].replace("Z", "+00:00")) > datetime.now(UTC)
    assert tenant.post(f"/v1/campaigns/{c['id']}/resume", {}).status_code == 409
    assert tenant.post(f"/v1/campaigns/{c['id']}/cancel", {}).json()["status"] == "CANCELLED"
    tick(stack, first + timedelta(days=14), recorder)
    assert runs_of(stack, c["id"]) == []


def set_fire_at(stack: Stack, campaign_id: str, fire_at: datetime) -> None:
    """As if the clock moved on: the campaign's runs are due at `fire_at`."""
    from sqlalchemy import update

    with session_factory(stack.db_url)() as session:
        session.execute(update(Run).where(Run.campaign_id == int(campaign_id)).values(fire_at=fire_at))
        session.commit()


@pytest.mark.parametrize(("late", "status", "run_status"), [(1, "SENT", "sent"), (120, "FAILED", "missed")])
def test_a_scheduled_campaign_paused_past_its_time_fires_on_resume_only_within_the_grace_window(
    stack: Stack, tenant: Tenant, sandbox_box: httpx.Client, late: int, status: str, run_status: str
) -> None:
    # Given a scheduled campaign, paused, whose time passes `late` minutes before it is resumed
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    phone = ci_phone(72_100 + late)
    c = tenant.post(
        "/v1/campaigns",
        {"type": "SCHEDULED", "scheduledDate": when.isoformat(), "contacts": [{"phone": phone}], "text": "x"},
    ).json()
    assert tenant.post(f"/v1/campaigns/{c['id']}/pause", {}).json()["status"] == "PAUSED"
    set_fire_at(stack, c["id"], datetime.now(UTC) - timedelta(minutes=late))
    tick(stack, datetime.now(UTC), Recorder())  # beat leaves a paused campaign's run alone
    assert [r.status for r in runs_of(stack, c["id"])] == ["scheduled"]

    # When it is resumed
    assert tenant.post(f"/v1/campaigns/{c['id']}/resume", {}).status_code == 200

    # Then within the grace window it goes out now; past it, it is missed and the campaign ends FAILED
    final = tenant.wait_final(c["id"], timeout=30)
    assert final["status"] == status and [r["status"] for r in final["runs"]] == [run_status]
    sent = [m for m in sandbox_box.get("/_sandbox/messages").json()["messages"] if m["to"] == "+" + phone]
    assert len(sent) == (1 if status == "SENT" else 0)


def test_an_occurrence_whose_start_arrives_while_paused_is_missed_not_replayed(stack: Stack, tenant: Tenant) -> None:
    from workers import fanout

    # Given a recurring campaign whose next occurrence beat has already published
    c = recurring(
        tenant, dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), "09:00")
    )
    first = next_fire_of(stack, c["id"])
    assert first is not None
    tick(stack, first - timedelta(seconds=10), Recorder())
    [run] = runs_of(stack, c["id"])
    assert run.status == "queued"

    # When the campaign is paused and the occurrence's start task arrives anyway
    assert tenant.post(f"/v1/campaigns/{c['id']}/pause", {}).json()["status"] == "PAUSED"
    published: list = []
    with session_factory(stack.db_url)() as session:
        assert (
            fanout.start_run(session, redis_client.get_redis(), run.id, lambda refs, _channel: published.extend(refs))
            == 0
        )

    # Then the occurrence is missed, nothing was sent, and resuming does not bring it back
    assert published == [] and [r.status for r in runs_of(stack, c["id"])] == ["missed"]
    resumed = tenant.post(f"/v1/campaigns/{c['id']}/resume", {}).json()
    assert resumed["status"] == "PENDING" and [r["status"] for r in resumed["runs"]] == ["missed"]
    assert resumed["runs"][0]["statusReason"] == "the campaign was paused at its fire time"
    tenant.post(f"/v1/campaigns/{c['id']}/cancel", {})


def test_a_scheduled_campaign_can_be_rescheduled_or_cancelled_before_it_fires(stack: Stack, tenant: Tenant) -> None:
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    c = tenant.post(
        "/v1/campaigns",
        {
            "type": "SCHEDULED",
            "scheduledDate": when.isoformat(),
            "contacts": [{"phone": ci_phone(72_000)}],
            "text": "x",
        },
    ).json()
    later = when + timedelta(hours=1)
    moved = tenant.post(f"/v1/campaigns/{c['id']}/reschedule", {"scheduledDate": later.isoformat()})
    assert moved.status_code == 200, moved.text
    assert [r.fire_at for r in runs_of(stack, c["id"])] == [later]
    recorder = Recorder()
    tick(stack, when, recorder)
    assert recorder.of(stack, c["id"]) == [] and [r.status for r in runs_of(stack, c["id"])] == ["scheduled"]
    assert tenant.post(f"/v1/campaigns/{c['id']}/cancel", {}).json()["status"] == "CANCELLED"
    tick(stack, later, recorder)
    assert recorder.of(stack, c["id"]) == [] and [r.status for r in runs_of(stack, c["id"])] == ["cancelled"]


@pytest.mark.parametrize(
    ("patch", "loc", "says"),
    [
        pytest.param(
            {"type": "SCHEDULED", "scheduledDate": "2020-01-01T10:00:00Z"},
            ["body", "scheduledDate"],
            "future",
            id="past",
        ),
        pytest.param(
            {"type": "SCHEDULED", "scheduledDate": "2031-01-01T10:00:30Z"},
            ["body", "scheduledDate"],
            "multiple of 1 minutes",
            id="off-grid",
        ),
        pytest.param({"type": "SCHEDULED"}, ["body", "scheduledDate"], "needs scheduledDate", id="missing-date"),
        pytest.param(
            {"scheduledDate": "2031-01-01T10:00:00Z"}, ["body", "scheduledDate"], "SCHEDULED", id="date-without-type"
        ),
        pytest.param(
            {"type": "RECURRING", "recurring": {"funday": "09:00"}},
            ["body", "recurring", "funday"],
            "",
            id="bad-weekday",
        ),
        pytest.param(
            {"type": "RECURRING", "recurring": {"monday": "09:00"}, "timezone": "Mars/Olympus"},
            ["body", "timezone"],
            "unknown time zone",
            id="bad-zone",
        ),
        pytest.param({"type": "RECURRING"}, ["body", "recurring"], "needs recurring", id="missing-rule"),
    ],
)
def test_schedule_errors_name_the_field(tenant: Tenant, patch: dict, loc: list, says: str) -> None:
    payload = {"contacts": [{"phone": ci_phone(73_000)}], "text": "x", **patch}
    response = tenant.post("/v1/campaigns", payload)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc and says in detail["msg"]


def test_before_it_fires_a_campaign_shows_its_audience_as_pending(tenant: Tenant) -> None:
    """A scheduled campaign (its run exists) reads like a recurring one (no run yet): the audience waits."""
    contacts = [{"phone": ci_phone(91_000 + i)} for i in range(3)]
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT09:00:00Z")
    scheduled = tenant.post(
        "/v1/campaigns", {"type": "SCHEDULED", "scheduledDate": later, "contacts": contacts, "text": "x"}
    )
    recurring = tenant.post(
        "/v1/campaigns", {"type": "RECURRING", "recurring": {"monday": "09:00"}, "contacts": contacts, "text": "x"}
    )
    for answer in (scheduled, recurring):
        assert answer.status_code == 201, answer.text
        stats = tenant.get(f"/v1/campaigns/{answer.json()['id']}").json()["stats"]
        assert (stats["total"], stats["pending"], stats["sent"]) == (3, 3, 0)
        tenant.post(f"/v1/campaigns/{answer.json()['id']}/cancel", {})
        cancelled = tenant.get(f"/v1/campaigns/{answer.json()['id']}").json()
        assert cancelled["status"] == "CANCELLED" and cancelled["stats"]["pending"] == 0
