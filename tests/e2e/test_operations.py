"""What ops and producer services see: metrics, readiness, structured logs, Celery-native submission."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery
from fastapi.testclient import TestClient

from tests.support.processes import Stack, free_port
from tests.support.tenants import Tenant, ci_phone


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
    return 0.0


def test_metrics_move_when_a_campaign_runs(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    before = tenant.client.get("/metrics").text
    sandbox_box.post("/_sandbox/faults", json={"numbers": [ci_phone(91_002)], "kind": "permanent", "code": 21211})
    created = tenant.post(
        "/v1/campaigns", {"contacts": [{"phone": ci_phone(91_000 + i)} for i in range(3)], "text": "metrics"}
    ).json()
    tenant.wait_final(created["id"])
    after = tenant.client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    sent = {"channel": "sms", "provider": "sandbox", "outcome": "sent"}
    assert metric(text, "dispatcher_messages_total", **sent) - metric(before, "dispatcher_messages_total", **sent) == 2
    failed = {"channel": "sms", "provider": "sandbox", "outcome": "failed", "code": "21211"}
    assert metric(text, "dispatcher_messages_total", **failed) >= 1
    assert metric(text, "dispatcher_send_latency_seconds_count", channel="sms", provider="sandbox") >= 3
    assert metric(text, "dispatcher_runs", status="sent") >= 1
    assert 'dispatcher_queue_length{queue="send.sms"}' in text


def test_limiter_waits_and_provider_pauses_are_metrics(tenant: Tenant, sandbox_box: httpx.Client) -> None:
    sandbox_box.post(
        "/_sandbox/faults", json={"numbers": "*", "kind": "throttle", "retry_after": 1, "duration_seconds": 1}
    )
    created = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(92_000)}], "text": "x"}).json()
    tenant.wait_final(created["id"])
    text = tenant.client.get("/metrics").text
    assert metric(text, "dispatcher_limiter_waits_total", sender=str(tenant.sender_id), kind="throttled") >= 1


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_readiness_fails_when_redis_stops(
    stack: Stack, private_redis: tuple[str, subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatcher.api.app import create_app
    from dispatcher.config import get_settings

    url, proc = private_redis
    monkeypatch.setenv("DISPATCHER_REDIS_URL", url)
    get_settings.cache_clear()
    try:
        client = TestClient(create_app())
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        proc.terminate()
        proc.wait(timeout=10)
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["checks"]["redis"].startswith("error")
        assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_worker_logs_are_json_with_ids_and_no_secrets(stack: Stack, tenant: Tenant, sandbox_box: httpx.Client) -> None:
    created = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(93_000)}], "text": "logs"}).json()
    tenant.wait_final(created["id"])
    time.sleep(0.5)
    lines = [json.loads(line) for line in stack.workers[0].log.read_text().splitlines() if line.startswith("{")]
    started = [entry for entry in lines if entry.get("event") == "run started"]
    assert started and all("run_id" in entry and "timestamp" in entry for entry in started)
    assert tenant.token not in stack.workers[0].log.read_text()


def test_log_redaction_hides_tokens_and_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from dispatcher.logs import configure

    configure(json_logs=True)
    structlog.get_logger("t").warning(
        "calling provider", auth_token="s3cret", note="key dsp_abcdefghijkl in text", url="postgresql://user:pw@db/x"
    )
    out = capsys.readouterr().err
    entry = json.loads(out.strip().splitlines()[-1])
    assert entry["auth_token"] == "[redacted]"
    assert "dsp_abcdefghijkl" not in out and "pw@" not in out and "s3cret" not in out


def producer(stack: Stack) -> Celery:
    """A separate service on the same broker that knows nothing of our code, only the task name."""
    app = Celery("other-service", broker=stack.redis_url)
    app.conf.broker_connection_retry_on_startup = True
    return app


def test_a_celery_producer_submits_by_task_name(stack: Stack, tenant: Tenant, sandbox_box: httpx.Client) -> None:
    payload = {
        "name": "from celery",
        "contacts": [{"phone": ci_phone(94_000), "firstName": "Lou"}],
        "text": "Salut @prenom",
    }
    producer(stack).send_task(
        "dispatcher.submit_campaign",
        queue="campaigns",
        kwargs={"payload": payload, "token": tenant.token, "idempotency_key": "svc-1"},
    )
    deadline = time.monotonic() + 30
    found: list = []
    while time.monotonic() < deadline and not found:
        found = [c for c in tenant.get("/v1/campaigns").json()["data"] if c["name"] == "from celery"]
        time.sleep(0.2)
    assert found, "the submitted campaign never appeared"
    final = tenant.wait_final(found[0]["id"])
    assert final["stats"]["sent"] == 1
    assert sandbox_box.get("/_sandbox/messages").json()["messages"][0]["body"] == "Salut Lou"


def test_a_bad_celery_submission_is_recorded_as_rejected_not_retried(stack: Stack, tenant: Tenant) -> None:
    app = producer(stack)
    app.send_task(
        "dispatcher.submit_campaign",
        queue="campaigns",
        kwargs={"payload": {"contacts": [{"phone": "22500000000"}], "text": "x"}, "token": tenant.token},
    )
    app.send_task("dispatcher.submit_campaign", queue="campaigns", kwargs={"payload": "not an object", "token": "bad"})
    app.send_task("dispatcher.submit_campaign", queue="campaigns", args=[1, 2, 3, 4, 5, 6])  # wrong signature
    deadline = time.monotonic() + 30
    rejections: list = []
    while time.monotonic() < deadline and not rejections:
        rejections = tenant.get("/v1/rejections").json()["data"]
        time.sleep(0.2)
    assert rejections[0]["errors"][0]["loc"] == ["payload", "contacts", 0, "phone"]
    assert "old 8-digit" in rejections[0]["errors"][0]["msg"]
    time.sleep(1.0)
    assert len(tenant.get("/v1/rejections").json()["data"]) == 1  # recorded once: not retried
    from sqlalchemy import select

    from dispatcher.db.models import Rejection
    from dispatcher.db.session import session_factory

    with session_factory(stack.db_url)() as session:
        anonymous = session.scalars(select(Rejection).where(Rejection.account_id.is_(None))).all()
    assert any(r.reason["errors"][0]["loc"] == ["token"] for r in anonymous)
    # The worker survived all three and still sends.
    created = tenant.post("/v1/campaigns", {"contacts": [{"phone": ci_phone(95_000)}], "text": "still alive"}).json()
    assert tenant.wait_final(created["id"])["stats"]["sent"] == 1
