"""The sending engine under load and faults: shared rate limit, throttling, retries, exactly-once,
worker loss, pause/resume/cancel and the error budget. Real Redis, two worker processes, the sandbox."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from dispatcher import redis_client
from dispatcher.campaigns import enqueue
from dispatcher.campaigns.outbox import queued_refs
from dispatcher.db.models import Message
from dispatcher.db.session import session_factory
from tests.support.processes import Service, Stack, start_worker
from tests.support.tenants import Tenant, ci_phone, make_tenant
from workers import reconciler


@pytest.fixture(scope="module")
def second_worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A second worker process on the same broker, for the shared-limit and worker-loss tests."""
    worker = start_worker(stack.env, tmp_path_factory.mktemp("worker2"), name="second")
    yield worker
    if worker.proc.poll() is None:
        worker.proc.terminate()
        worker.proc.wait(timeout=30)


def received(box: httpx.Client) -> list[dict]:
    return box.get("/_sandbox/messages").json()["messages"]


def seconds(message: dict) -> float:
    return datetime.fromisoformat(message["received_at"].replace("Z", "+00:00")).timestamp()


def submit(tenant: Tenant, phones: list[str], text: str = "Promo") -> str:
    response = tenant.post("/v1/campaigns", {"contacts": [{"phone": p} for p in phones], "text": text})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_count(box: httpx.Client, n: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = box.get("/_sandbox/messages").json()["count"]
        if count >= n:
            return count
        time.sleep(0.1)
    return count


def test_one_rate_limit_is_shared_by_every_worker_process(
    stack: Stack, second_worker: Service, sandbox_box: httpx.Client
) -> None:
    # Given two worker processes whose connections to the provider are open (a first connection delays
    # the first arrival by a few ms, which squeezes the window the provider sees), and a sender limited
    # to 20 messages/s with a burst of 5
    warm = make_tenant(stack, "warm-up")
    warm.wait_final(submit(warm, [ci_phone(79_000 + i) for i in range(64)]))
    sandbox_box.delete("/_sandbox/messages")
    tenant = make_tenant(stack, "limited", rate=20, burst=5)
    cid = submit(tenant, [ci_phone(80_000 + i) for i in range(200)])

    final = tenant.wait_final(cid, timeout=60)

    # Then no one-second window holds more than rate + burst, and the mean rate is 20/s within 5%
    assert final["stats"]["sent"] == 200
    times = sorted(seconds(m) for m in received(sandbox_box))
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= 25, busiest
    mean = (len(times) - 5) / (times[-1] - times[0])
    assert 19.0 <= mean <= 21.0, mean


def test_a_throttling_storm_pauses_the_sender_and_fails_nothing(stack: Stack, sandbox_box: httpx.Client) -> None:
    # Given the provider answers 429 with Retry-After: 1 to everything for 3 seconds
    fault = {"numbers": "*", "kind": "throttle", "retry_after": 1, "duration_seconds": 3}
    assert sandbox_box.post("/_sandbox/faults", json=fault).status_code == 201
    tenant = make_tenant(stack, "storm")

    cid = submit(tenant, [ci_phone(81_000 + i) for i in range(100)])
    final = tenant.wait_final(cid, timeout=60)

    # Then nothing failed, everything was sent after the storm, and the pause was logged
    assert (final["stats"]["sent"], final["stats"]["failed"]) == (100, 0)
    stats = sandbox_box.get("/_sandbox/stats").json()
    assert stats["by_outcome"]["throttle"] >= 1
    assert len({m["to"] for m in received(sandbox_box)}) == 100
    logs = "".join(w.log.read_text(errors="replace") for w in stack.workers)
    assert "sender throttled by provider; paused" in logs
    # Throttling is neither a failure nor an attempt
    with session_factory(stack.db_url)() as session:
        attempts = session.scalars(select(Message.attempts).where(Message.campaign_id == int(cid))).all()
    assert max(attempts) == 1


def test_transient_errors_are_retried_until_sent(stack: Stack, tenant: Tenant, sandbox_box: httpx.Client) -> None:
    sandbox_box.post("/_sandbox/faults", json={"numbers": "*", "kind": "transient", "duration_seconds": 5})
    cid = submit(tenant, [ci_phone(82_000 + i) for i in range(30)])
    final = tenant.wait_final(cid, timeout=90)
    assert (final["stats"]["sent"], final["stats"]["failed"]) == (30, 0)
    assert sandbox_box.get("/_sandbox/stats").json()["by_outcome"]["transient"] >= 1


def test_a_duplicated_send_task_makes_one_provider_call(stack: Stack, sandbox_box: httpx.Client) -> None:
    # Given a slow sender so the send tasks are still queued when we publish them all a second time
    tenant = make_tenant(stack, "dupes", rate=5, burst=1)
    phones = [ci_phone(83_000 + i) for i in range(10)]
    cid = submit(tenant, phones)
    deadline = time.monotonic() + 10
    run_id = None
    while run_id is None and time.monotonic() < deadline:  # start_run is asynchronous
        with session_factory(stack.db_url)() as session:
            run_id = session.scalars(select(Message.run_id).where(Message.campaign_id == int(cid))).first()
        time.sleep(0.05)
    assert run_id is not None
    with session_factory(stack.db_url)() as session:
        for refs in queued_refs(session, run_id, 100):
            enqueue.send_messages(refs, "sms")
            enqueue.send_messages(refs, "sms")

    final = tenant.wait_final(cid, timeout=60)

    assert final["stats"]["total"] == final["stats"]["sent"] == 10
    assert sorted(m["to"] for m in received(sandbox_box)) == sorted("+" + p for p in phones)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    stack: Stack, second_worker: Service, sandbox_box: httpx.Client
) -> None:
    # Given a 2,000-recipient run in progress on two workers, with 20 ms of provider latency
    sandbox_box.put("/_sandbox/config", json={"latency_ms": 20})
    tenant = make_tenant(stack, "killed", rate=300, burst=50)
    phones = [ci_phone(84_000 + i) for i in range(2000)]
    cid = submit(tenant, phones)
    wait_count(sandbox_box, 300)

    # When one worker is killed with SIGKILL (no warm shutdown, its tasks stay unacked)
    os.kill(second_worker.proc.pid, signal.SIGKILL)
    second_worker.proc.wait()

    # Then the reconciler (beat runs it every minute) brings back what it held, once leases expire
    publish = enqueue.send_messages
    deadline = time.monotonic() + 120
    status = "PENDING"
    while time.monotonic() < deadline and status == "PENDING":
        with session_factory(stack.db_url)() as session:
            reconciler.reconcile(session, redis_client.get_redis(), publish, lease_seconds=10)
        status = tenant.get(f"/v1/campaigns/{cid}").json()["status"]
        time.sleep(1)
    final = tenant.wait_final(cid, timeout=30)
    assert final["stats"]["sent"] == 2000 and final["stats"]["unknown"] == 0
    messages = received(sandbox_box)
    assert len(messages) == 2000  # exactly once at the provider
    assert {m["to"] for m in messages} == {"+" + p for p in phones}


def test_pause_stops_sending_within_a_second_and_resume_finishes(stack: Stack, sandbox_box: httpx.Client) -> None:
    tenant = make_tenant(stack, "pausable", rate=20, burst=1)
    cid = submit(tenant, [ci_phone(85_000 + i) for i in range(80)])
    wait_count(sandbox_box, 10)

    paused = tenant.post(f"/v1/campaigns/{cid}/pause", {}).json()
    assert paused["status"] == "PAUSED"
    time.sleep(1.0)
    settled = sandbox_box.get("/_sandbox/messages").json()["count"]
    time.sleep(2.0)
    assert sandbox_box.get("/_sandbox/messages").json()["count"] == settled < 80
    assert tenant.get("/v1/campaigns", params={"status": "PAUSED"}).json()["total"] == 1

    assert tenant.post(f"/v1/campaigns/{cid}/resume", {}).json()["status"] == "PENDING"
    final = tenant.wait_final(cid, timeout=60)
    assert final["status"] == "SENT" and final["stats"]["sent"] == 80
    assert len({m["to"] for m in received(sandbox_box)}) == 80 == len(received(sandbox_box))


def test_cancel_skips_the_rest(stack: Stack, sandbox_box: httpx.Client) -> None:
    tenant = make_tenant(stack, "cancellable", rate=20, burst=1)
    cid = submit(tenant, [ci_phone(86_000 + i) for i in range(80)])
    wait_count(sandbox_box, 10)

    assert tenant.post(f"/v1/campaigns/{cid}/cancel", {}).json()["status"] == "CANCELLED"
    tenant.wait_final(cid, timeout=30)
    # The campaign is CANCELLED at once; its run ends when the sends already in flight have finished.
    deadline = time.monotonic() + 15
    details = tenant.get(f"/v1/campaigns/{cid}").json()
    while time.monotonic() < deadline and details["runs"][0]["status"] == "running":
        time.sleep(0.2)
        details = tenant.get(f"/v1/campaigns/{cid}").json()

    stats = details["stats"]
    sent_at_provider = sandbox_box.get("/_sandbox/messages").json()["count"]
    assert stats["sent"] == sent_at_provider < 80
    assert stats["sent"] + stats["skipped"] == 80 and stats["pending"] == 0
    assert details["runs"][0]["status"] == "cancelled"
    assert tenant.post(f"/v1/campaigns/{cid}/resume", {}).status_code == 409
    assert tenant.get("/v1/campaigns", params={"status": "CANCELLED"}).json()["total"] == 1


def paused_and_settled(tenant: Tenant, cid: str) -> dict:
    """The campaign once paused and its counts still: a batch counts its outcomes when its last call ends,
    which a reserved slot's sleep can hold back for up to the limiter's horizon (2 s)."""
    deadline = time.monotonic() + 30
    body = tenant.get(f"/v1/campaigns/{cid}").json()
    while time.monotonic() < deadline and body["status"] != "PAUSED":
        time.sleep(0.2)
        body = tenant.get(f"/v1/campaigns/{cid}").json()
    while time.monotonic() < deadline:
        time.sleep(2.5)
        later = tenant.get(f"/v1/campaigns/{cid}").json()
        if later["stats"] == body["stats"]:
            return later
        body = later
    return body


def test_the_error_budget_auto_pauses_a_failing_campaign(stack: Stack, sandbox_box: httpx.Client) -> None:
    # Given every number is refused (the test stack sets the budget to 10 consecutive failures)
    sandbox_box.post("/_sandbox/faults", json={"numbers": "*", "kind": "permanent", "code": 21610})
    tenant = make_tenant(stack, "budget", rate=20, burst=1)
    cid = submit(tenant, [ci_phone(87_000 + i) for i in range(60)])

    body = paused_and_settled(tenant, cid)

    assert body["status"] == "PAUSED"
    assert "auto-paused after 10 consecutive permanent failures" in body["statusReason"]
    assert "21610" in body["statusReason"]
    assert 10 <= body["stats"]["failed"] <= 14  # in-flight sends may finish; the rest wait
    # The rest wait
    assert body["stats"]["pending"] >= 40

    # And after a resume the budget starts again: ten more failures in a row pause it again
    failed_before = body["stats"]["failed"]
    assert tenant.post(f"/v1/campaigns/{cid}/resume", {}).json()["status"] == "PENDING"
    body = paused_and_settled(tenant, cid)
    assert body["status"] == "PAUSED", body["stats"]
    assert failed_before + 10 <= body["stats"]["failed"] <= failed_before + 14


def test_a_pause_after_the_last_message_left_still_ends_the_campaign(stack: Stack, sandbox_box: httpx.Client) -> None:
    # Given every message of a campaign is already at the (slow) provider when the pause arrives
    sandbox_box.put("/_sandbox/config", json={"latency_ms": 1500})
    tenant = make_tenant(stack, "late-pause")
    cid = submit(tenant, [ci_phone(89_000 + i) for i in range(3)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_factory(stack.db_url)() as session:
            statuses = session.scalars(select(Message.status).where(Message.campaign_id == int(cid))).all()
        if statuses and all(s == "sending" for s in statuses):
            break
        time.sleep(0.05)
    assert tenant.post(f"/v1/campaigns/{cid}/pause", {}).json()["status"] == "PAUSED"

    # Then nothing is left to hold: the campaign ends SENT instead of staying PAUSED for ever
    final = tenant.wait_final(cid, timeout=20)
    assert final["status"] == "SENT" and final["stats"]["sent"] == 3
    assert tenant.post(f"/v1/campaigns/{cid}/resume", {}).status_code == 409


def test_counters_lost_by_redis_are_rebuilt_from_the_database(stack: Stack, sandbox_box: httpx.Client) -> None:
    import redis as redis_lib

    from dispatcher import keys

    # Longer than one batch holds at this rate (its slots reach 2 s ahead), so sends go on after the loss
    tenant = make_tenant(stack, "rebuild", rate=20, burst=1)
    cid = submit(tenant, [ci_phone(88_000 + i) for i in range(100)])
    wait_count(sandbox_box, 10)
    run_id = int(tenant.get(f"/v1/campaigns/{cid}").json()["runs"][0]["id"])
    r = redis_lib.Redis.from_url(stack.redis_url, decode_responses=True)
    r.delete(keys.run_stats(run_id))  # as if Redis restarted empty
    # Sends go on meanwhile: their increments recreate the hash with no total
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not r.hget(keys.run_stats(run_id), "sent"):
        time.sleep(0.05)
    assert r.hget(keys.run_stats(run_id), "total") is None
    with session_factory(stack.db_url)() as session:
        reconciler.reconcile(session, redis_client.get_redis(), enqueue.send_messages, lease_seconds=10)
    live = tenant.get(f"/v1/campaigns/{cid}").json()
    assert live["status"] == "PENDING" and live["stats"]["total"] == 100 and live["stats"]["pending"] > 0
    final = tenant.wait_final(cid, timeout=60)
    assert (final["stats"]["total"], final["stats"]["sent"], final["stats"]["pending"]) == (100, 100, 0)
