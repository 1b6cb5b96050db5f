"""Worker RSS across a long run: one campaign of N messages through our full pipeline.

The worker's resident set (VmRSS of its one process: threads pool) is sampled every second. The baseline
is the first sample after warm-up (10% of the messages stored by the sandbox); growth is the last sample
(campaign final) against it. The peak and the samples at 25/50/75/100% are printed too, so a slope shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.report import Summary, say
from bench.sides import Watch
from bench.stack import ci_phone, make_tenant, stack, worker

TARGET_PCT = 10.0
WARMUP = 0.10
TEXT = "Votre commande est prete. Retrait au magasin Plateau avant samedi 18h. Merci de votre confiance."


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 20_000
    concurrency: int = 16
    latency_ms: float = 20.0
    db: str = "sqlite"


def run(opts: Options) -> Summary:
    from fastapi.testclient import TestClient

    from dispatcher.api.app import create_app

    n = opts.messages
    say(f"--- rss: {n:,} messages through one worker (-c {opts.concurrency}), {opts.db}")
    with stack(opts.db) as s, worker(s, concurrency=opts.concurrency, name="rss") as w:
        tenant = make_tenant(s.db_url, "rss")
        api = TestClient(create_app())
        headers = {"Authorization": f"Bearer {tenant.token}"}
        s.reset_sandbox(opts.latency_ms)
        started_rss = w.rss_bytes()
        contacts = [{"phone": ci_phone(i)} for i in range(n)]
        created = api.post("/v1/campaigns", json={"contacts": contacts, "text": TEXT}, headers=headers)
        created.raise_for_status()
        campaign_id = created.json()["id"]
        samples: list[tuple[float, int, int]] = []  # (seconds, messages stored by the sandbox, rss)
        start = time.monotonic()
        deadline = start + max(300.0, n / 4)
        body: dict[str, Any] = {}
        watch = Watch(f"rss campaign {campaign_id}")
        while time.monotonic() < deadline:
            stored = int(s.sandbox_stats()["messages"])  # type: ignore[call-overload]
            watch.see(stored)
            samples.append((time.monotonic() - start, stored, w.rss_bytes()))
            body = api.get(f"/v1/campaigns/{campaign_id}", headers=headers).json()
            if body["status"] in ("SENT", "FAILED", "CANCELLED"):
                break
            time.sleep(1.0)
        else:
            raise RuntimeError(f"campaign not final in time: {body.get('status')} {body.get('stats')}")
        samples.append((time.monotonic() - start, int(body["stats"]["sent"]), w.rss_bytes()))
    elapsed = samples[-1][0]
    warm = next((x for x in samples if x[1] >= WARMUP * n), samples[0])
    end = samples[-1]
    peak = max(x[2] for x in samples)
    growth = 100.0 * (end[2] - warm[2]) / warm[2]
    mib = 2**20
    say(f"rss before the campaign: {started_rss / mib:.1f} MiB")
    say(f"rss after warm-up ({warm[1]:,} stored, {warm[0]:.0f} s): {warm[2] / mib:.1f} MiB")
    for q in (0.25, 0.5, 0.75):
        x = next((x for x in samples if x[1] >= q * n), end)
        say(f"rss at {q:.0%} ({x[1]:,} stored): {x[2] / mib:.1f} MiB")
    say(f"rss at the end ({end[1]:,} sent, {elapsed:.0f} s, {n / elapsed:.1f} msg/s): {end[2] / mib:.1f} MiB")
    say(f"rss peak: {peak / mib:.1f} MiB; growth after warm-up: {growth:+.1f}% (target <= {TARGET_PCT:g}%)")
    line = f"{growth:+.1f}% over {n:,} messages ({warm[2] / mib:.0f} -> {end[2] / mib:.0f} MiB)  (target <= 10%)"
    return Summary("rss", line, growth <= TARGET_PCT)
