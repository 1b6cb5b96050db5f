"""Volume: submitting a big campaign, and fanning a million-recipient group out into sends.

* submit: `POST /v1/campaigns` with N new contacts (the API in a child process through its test client,
  so its peak RSS is the request's), against bare phone validation (`phonenumbers` parse + valid + E.164
  of the same N numbers) timed in the same child, rounds alternating. Target: >= 0.5x, RSS < 300 MB.
* audience: a campaign to a group of N contacts (inserted directly), its run started in a child process
  (`workers.fanout.start_run` publishing to Redis database 14 with the fast path, no worker): rows/s, the
  time until the first sends are published, and the child's peak RSS. Targets: first publish < 2 s, all
  published < 2 minutes for 1,000,000, RSS < 400 MB.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import env
from bench.report import Summary, ratio, say
from bench.stack import database

SUBMIT_RATIO, SUBMIT_RSS_MB, AUDIENCE_RSS_MB, FIRST_SECONDS = 0.5, 300, 400, 2.0


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 100_000
    rounds: int = 2
    db: str = "sqlite"


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.volume", *args],
        env=env.process_env({}),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.volume {args[0]} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_submit(opts: Options) -> Summary:
    n = opts.messages
    say(f"--- submit: POST /v1/campaigns with {n:,} new contacts, {opts.db}, {opts.rounds} round(s)")
    ratios, rss = [], []
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp, database(opts.db, Path(tmp)) as url:
        for k in range(opts.rounds):
            figures = _child("submit-child", url, str(n), str(k), "bare-first" if k % 2 else "ours-first")
            ratios.append(ratio(figures["submit_rate"], figures["bare_rate"]))
            rss.append(figures["peak_rss_mb"])
            say(
                f"round {k + 1} submit {figures['submit_rate']:,.0f} contacts/s ({figures['submit_seconds']:.2f} s), "
                f"bare phone validation {figures['bare_rate']:,.0f}/s, ratio {ratios[-1]:.2f}x, "
                f"API peak RSS {figures['peak_rss_mb']:.0f} MiB"
            )
    x = statistics.median(ratios)
    met = x >= SUBMIT_RATIO and max(rss) < SUBMIT_RSS_MB
    say(f"submit ratio: {x:.2f}x bare phone validation (target >= {SUBMIT_RATIO}x); peak RSS {max(rss):.0f} MiB")
    return Summary("submit", f"{x:.2f}x bare validation, RSS {max(rss):.0f} MiB (target >= {SUBMIT_RATIO}x)", met)


def run_audience(opts: Options) -> Summary:
    n = opts.messages
    say(f"--- audience: a campaign to a group of {n:,} contacts, fanned out in a child process, {opts.db}")
    with tempfile.TemporaryDirectory(prefix="bench-audience-") as tmp, database(opts.db, Path(tmp)) as url:
        run_id, setup_seconds = audience_setup(url, n)
        figures = _child("audience-child", url, str(run_id))
    env.flush()
    rows_rate = n / figures["seconds"]
    say(
        f"audience: {n:,} rows in {figures['seconds']:.1f} s ({rows_rate:,.0f} rows/s), first sends published "
        f"after {figures['first_seconds']:.2f} s, {figures['published']:,} published, peak RSS "
        f"{figures['peak_rss_mb']:.0f} MiB (group inserted in {setup_seconds:.1f} s)"
    )
    met = figures["first_seconds"] < FIRST_SECONDS and figures["peak_rss_mb"] < AUDIENCE_RSS_MB
    line = (
        f"{rows_rate:,.0f} rows/s, first after {figures['first_seconds']:.2f} s, RSS {figures['peak_rss_mb']:.0f} MiB"
    )
    return Summary("audience", line, met)


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux carries the parent's peak into a
    child across fork and exec, which here reported the parent's 1.5 GB set-up as the fan-out's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _account(url: str) -> tuple[int, str]:
    from tests.support.databases import sandbox_account

    account_id, token, _ = sandbox_account(url, f"bench-{time.time_ns()}")
    return account_id, token


def submit_child(url: str, n: int, round_: int, order: str) -> dict[str, Any]:
    import os

    os.environ["DISPATCHER_DATABASE_URL"] = url
    env.configure()
    import phonenumbers
    from fastapi.testclient import TestClient

    from dispatcher.api.app import create_app

    _, token = _account(url)
    phones = [f"22507{round_ * 10_000_000 + i:08d}" for i in range(n)]

    def bare() -> float:
        start = time.perf_counter()
        for p in phones:
            number = phonenumbers.parse("+" + p)
            phonenumbers.is_valid_number(number)
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return n / (time.perf_counter() - start)

    def ours() -> float:
        body = json.dumps({"contacts": [{"phone": p} for p in phones], "text": "Bonjour, votre commande est prete."})
        client = TestClient(create_app())
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        start = time.perf_counter()
        answer = client.post("/v1/campaigns", content=body, headers=headers)
        seconds = time.perf_counter() - start
        if answer.status_code != 201:
            raise RuntimeError(f"submit answered {answer.status_code}: {answer.text[:300]}")
        return seconds

    if order == "bare-first":
        bare_rate, seconds = bare(), ours()
    else:
        seconds, bare_rate = ours(), bare()
    return {
        "submit_seconds": seconds,
        "submit_rate": n / seconds,
        "bare_rate": bare_rate,
        "peak_rss_mb": _peak_rss_mb(),
    }


def audience_setup(url: str, n: int) -> tuple[int, float]:
    """A campaign to a group of n new contacts, inserted directly; its run's id and the seconds it took."""
    from sqlalchemy import insert, select

    from dispatcher.campaigns.submission import submit
    from dispatcher.config import Settings
    from dispatcher.db.models import Contact, Group, GroupMember, Run
    from dispatcher.db.session import session_factory

    account_id, _ = _account(url)
    setup = time.perf_counter()
    with session_factory(url)() as session:
        group = Group(account_id=account_id, name="million")
        session.add(group)
        session.flush()
        for start in range(0, n, 50_000):
            rows = [
                {"account_id": account_id, "phone": f"+22507{i:08d}", "fields": {}}
                for i in range(start, min(n, start + 50_000))
            ]
            ids = session.scalars(insert(Contact).returning(Contact.id), rows).all()
            session.execute(insert(GroupMember), [{"group_id": group.id, "contact_id": i} for i in ids])
        session.commit()
        payload = {"groupsIds": [group.id], "text": "Promo"}
        campaign = submit(session, account_id, payload, Settings(database_url=url)).campaign
        run_id = session.scalars(select(Run.id).where(Run.campaign_id == campaign.id)).one()
    return run_id, time.perf_counter() - setup


def audience_child(url: str, run_id: int) -> dict[str, Any]:
    import os

    os.environ["DISPATCHER_DATABASE_URL"] = url
    env.configure()
    from dispatcher import redis_client
    from dispatcher.db.session import session_factory
    from workers import fanout
    from workers.tasks import publish_sends

    first: list[float] = []
    started = time.perf_counter()

    def publish(refs: Any, channel: str) -> None:
        if not first:
            first.append(time.perf_counter() - started)
        publish_sends(refs, channel)

    with session_factory(url)() as session:
        published = fanout.start_run(session, redis_client.get_redis(), run_id, publish)
    return {
        "seconds": time.perf_counter() - started,
        "first_seconds": first[0] if first else float("nan"),
        "published": published,
        "peak_rss_mb": _peak_rss_mb(),
    }


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    if name == "submit-child":
        result = submit_child(rest[0], int(rest[1]), int(rest[2]), rest[3])
    else:
        result = audience_child(rest[0], int(rest[1]))
    print(json.dumps(result))
