"""The README's path for a new user: `dispatcher up`, then `dispatcher campaigns send FILE --watch`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.processes import ROOT, free_port
from tests.support.redis_keys import delete_ours

REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('DISPATCHER_TEST_UP_REDIS_DB', '12')}"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[dict[str, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not available: {exc}")
    delete_ours(client)
    env = {
        **os.environ,
        "DISPATCHER_REDIS_URL": REDIS_URL,
        "DISPATCHER_API_PORT": str(free_port()),
        "DISPATCHER_SANDBOX_PORT": str(free_port()),
        "DISPATCHER_STATE_DIR": str(tmp_path / ".dispatcher"),
        "DISPATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'dispatcher.db'}",
    }
    env.pop("DISPATCHER_API_URL", None)
    env.pop("DISPATCHER_BROKER_URL", None)
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "up", "--no-flower"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{env['DISPATCHER_API_PORT']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"{api}/readyz", timeout=1).status_code == 200
                and "is up" in (tmp_path / "up.log").read_text()
            ):
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        time.sleep(0.3)
    try:
        yield {**env, "api": api, "log": str(tmp_path / "up.log")}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        delete_ours(client)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_new_user_sends_the_readme_examples_with_dispatcher_up(up: dict[str, str]) -> None:
    banner = Path(up["log"]).read_text()
    exported = re.search(r"export (DISPATCHER_API_TOKEN)=(dsp_\S+)", banner)
    assert exported is not None and up["api"] in banner
    # The variable the banner exports is the one the CLI reads (away from the saved token file).
    away = {**up, exported[1]: exported[2], "DISPATCHER_STATE_DIR": str(Path(up["log"]).parent / "elsewhere")}
    listed = cli(away, "campaigns", "list")
    assert listed.returncode == 0, listed.stderr

    sms = cli(up, "campaigns", "send", "examples/campaign.json", "--watch")
    assert sms.returncode == 0, sms.stderr
    assert "3 recipients" in sms.stdout and "campaign 1: SENT" in sms.stdout

    whatsapp = cli(up, "campaigns", "send", "examples/whatsapp.json", "--watch")
    assert whatsapp.returncode == 0, whatsapp.stderr
    assert "campaign 2: SENT" in whatsapp.stdout
    assert "None" not in whatsapp.stdout and "template " in whatsapp.stdout

    token = Path(up["DISPATCHER_STATE_DIR"], "token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    stats: dict = {}
    while time.monotonic() < deadline:  # the sandbox reports delivered and read by itself in the demo
        stats = httpx.get(f"{up['api']}/v1/campaigns/2", headers=headers).json()["stats"]
        if stats["read"] == 2:
            break
        time.sleep(0.2)
    assert (stats["sent"], stats["delivered"], stats["read"]) == (2, 2, 2)
    sms_stats = httpx.get(f"{up['api']}/v1/campaigns/1", headers=headers).json()["stats"]
    assert (sms_stats["delivered"], sms_stats["read"]) == (3, 0)  # an SMS is delivered, never read
    received = httpx.get(f"http://127.0.0.1:{up['DISPATCHER_SANDBOX_PORT']}/_sandbox/messages").json()
    assert received["count"] == 5

    listing = cli(up, "campaigns", "list")
    assert listing.returncode == 0 and "Bienvenue" in listing.stdout
    bad = Path(up["DISPATCHER_STATE_DIR"], "bad.json")
    bad.write_text(json.dumps({"contacts": [{"phone": "22500000000"}], "text": "x"}))
    refused = cli(up, "campaigns", "send", str(bad))
    assert refused.returncode == 1 and "contacts.0.phone" in refused.stderr and "Traceback" not in refused.stderr
