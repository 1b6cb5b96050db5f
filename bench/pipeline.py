"""End to end through the sandbox (20 ms added latency): our pipeline against a bare Celery task.

ours = POST /v1/campaigns (the API, in-process through its test client) -> start_run (claim, message rows,
       publish_sends) -> send_message per recipient (limiter script, claim UPDATE, provider call, final
       UPDATE, counters) until the campaign is final. Timed from the POST to the final status.
bare = `bench.bare_send` (the same HTTP call to the sandbox, shared httpx client, nothing else), in the
       same app and worker (threads pool, same concurrency), published with the same fast path in chunks
       of 500. Timed from the first publish until the sandbox has stored every message. The target is
       judged against this side.
naive = `bench.naive_send`, the bare task as usually first written (`httpx.post`, a client and connection
       per call), one round after the others: printed for reference, not judged.

One worker serves both sides; rounds alternate ours/bare. Figures are medians over rounds; "steady" is the
median of the sandbox's per-second counts without the first and last second (the send phase alone).
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import profile
from bench.report import Summary, rate, ratio, say
from bench.stack import Stack, Tenant, Worker, ci_phone, cpu_seconds, make_tenant, stack, worker

TARGET, STRETCH = 1.0, 1.5
TEXT = "Votre commande est prete. Retrait au magasin Plateau avant samedi 18h. Merci de votre confiance."
SENDER = "My Sender"
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 2_000
    rounds: int = 3
    concurrency: int = 16
    latency_ms: float = 20.0
    db: str = "sqlite"
    profile_dir: Path | None = None
    profile_seconds: int = 10


@dataclass(frozen=True, slots=True)
class Side:
    seconds: float
    steady: float
    sent: int
    worker_cpu: float = 0.0  # CPU seconds the worker used during the side
    sandbox_cpu: float = 0.0

    def rate(self, n: int) -> float:
        return rate(n, self.seconds)


def _steady(stats: dict[str, Any]) -> float:
    counts = [int(c) for _, c in stats.get("per_second", [])]
    inner = counts[1:-1] or counts
    return float(statistics.median(inner)) if inner else 0.0


def _deadline(n: int) -> float:
    return time.monotonic() + max(120.0, n / 5)


class Driver:
    """Runs one side at a time against a running worker."""

    def __init__(self, s: Stack, w: Worker, tenant: Tenant, opts: Options) -> None:
        from fastapi.testclient import TestClient

        from dispatcher.api.app import create_app

        self.s, self.w, self.tenant, self.opts = s, w, tenant, opts
        self.api = TestClient(create_app())
        self.headers = {"Authorization": f"Bearer {tenant.token}"}
        self.round = 0

    def measured(self, side: str, n: int) -> Side:
        """One side, with the CPU time the worker and the sandbox used meanwhile."""
        w0, s0 = self.w.cpu_seconds(), cpu_seconds(self.s.sandbox_pid)
        r = self.ours(n) if side == "ours" else self.bare(n, naive=side == "naive")
        w1, s1 = self.w.cpu_seconds(), cpu_seconds(self.s.sandbox_pid)
        return Side(r.seconds, r.steady, r.sent, w1 - w0, s1 - s0)

    def ours(self, n: int) -> Side:
        self.round += 1
        self.s.reset_sandbox(self.opts.latency_ms)
        base = self.round * 1_000_000
        contacts = [{"phone": ci_phone(base + i)} for i in range(n)]
        start = time.perf_counter()
        created = self.api.post("/v1/campaigns", json={"contacts": contacts, "text": TEXT}, headers=self.headers)
        created.raise_for_status()
        campaign_id = created.json()["id"]
        deadline = _deadline(n)
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.api.get(f"/v1/campaigns/{campaign_id}", headers=self.headers).json()
            if body["status"] in ("SENT", "FAILED", "CANCELLED"):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"campaign {campaign_id} not final in time: {body.get('status')} {body.get('stats')}")
        seconds = time.perf_counter() - start
        sent = int(body["stats"]["sent"])
        if body["status"] != "SENT" or sent != n:
            raise RuntimeError(f"campaign {campaign_id}: {body['status']}, {body['stats']}")
        return Side(seconds, _steady(self.s.sandbox_stats()), sent)

    def bare(self, n: int, countdown: float | None = None, *, naive: bool = False) -> Side:
        from bench.bare import bare_send, naive_send
        from workers import publisher
        from workers.app import app

        self.round += 1
        self.s.reset_sandbox(self.opts.latency_ms)
        base = self.round * 1_000_000
        args = [(base + i, "+" + ci_phone(base + i), TEXT, SENDER) for i in range(n)]
        start = time.perf_counter()
        for i in range(0, n, CHUNK):
            task = naive_send if naive else bare_send
            publisher.publish_many(app, task, args[i : i + CHUNK], "send.sms", countdown=countdown)
        deadline = _deadline(n)
        stored = 0
        while time.monotonic() < deadline:
            stats = self.s.sandbox_stats()
            stored = int(stats["messages"])  # type: ignore[call-overload]
            if stored >= n:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"bare: {stored}/{n} messages reached the sandbox in time")
        return Side(time.perf_counter() - start, _steady(stats), stored)


def _profiled(driver: Driver, side: str, n: int, out: Path, seconds: int) -> Path:
    """One extra (unmeasured) round of `side` with py-spy recording the worker from its first sandbox hit."""
    raw = out / f"{side}.raw"
    done = threading.Event()

    def record() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            if int(driver.s.sandbox_stats()["messages"]) > 0:  # type: ignore[call-overload]
                break
            time.sleep(0.05)
        command = [profile.py_spy(), "record", "-p", str(driver.w.pid), "-d", str(seconds), "-f", "raw"]
        subprocess.run([*command, "--gil", "-o", str(raw)], check=False, capture_output=True, timeout=seconds + 60)

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    try:
        driver.ours(n) if side == "ours" else driver.bare(n)
    finally:
        done.set()
        thread.join(timeout=seconds + 90)
    return raw


def run(opts: Options) -> Summary:
    n = opts.messages
    say(
        f"--- pipeline: {n:,} messages, sandbox latency {opts.latency_ms:g} ms, threads pool -c {opts.concurrency}, "
        f"{opts.db}, {opts.rounds} round(s) per side"
    )
    with stack(opts.db) as s, worker(s, concurrency=opts.concurrency) as w:
        tenant = make_tenant(s.db_url, "bench")
        driver = Driver(s, w, tenant, opts)
        proof = driver.bare(20, countdown=1.0)
        say(f"countdown check: 20 fast-published tasks with countdown=1s ran after {proof.seconds:.2f} s")
        if proof.seconds < 1.0:
            raise RuntimeError("countdown tasks ran before their eta")
        results: dict[str, list[Side]] = {"ours": [], "bare": []}
        for k in range(opts.rounds):
            for side in ("ours", "bare") if k % 2 == 0 else ("bare", "ours"):
                r = driver.measured(side, n)
                results[side].append(r)
                say(
                    f"round {k + 1} {side:<4} {r.seconds:7.2f} s  {r.rate(n):7.1f} msg/s end to end  "
                    f"{r.steady:6.1f} msg/s steady  ({r.sent} sent)  worker CPU {1000 * r.worker_cpu / n:.2f} ms/msg "
                    f"({100 * r.worker_cpu / r.seconds:.0f}% of a core), sandbox {100 * r.sandbox_cpu / r.seconds:.0f}%"
                )
        naive = driver.measured("naive", n)
        say(
            f"naive bare {naive.seconds:7.2f} s  {naive.rate(n):7.1f} msg/s end to end  ({naive.sent} sent)  "
            f"worker CPU {1000 * naive.worker_cpu / n:.2f} ms/msg"
        )
        executed = w.count("] succeeded")
        sends = sum(1 for line in w.log.read_text(errors="replace").splitlines() if "dispatcher.send_message[" in line)
        say(f"worker log: {executed} tasks succeeded; {sends} send_message log lines (received + succeeded)")
        if opts.profile_dir is not None:
            opts.profile_dir.mkdir(parents=True, exist_ok=True)
            for side in ("ours", "bare"):
                raw = _profiled(driver, side, n, opts.profile_dir, opts.profile_seconds)
                say(f"profile {side}: {raw}")
                for line in profile.summarise(raw, seconds=opts.profile_seconds):
                    say("  " + line)
        rss = w.rss_bytes()
    ours_s = statistics.median(r.seconds for r in results["ours"])
    bare_s = statistics.median(r.seconds for r in results["bare"])
    ours_rate, bare_rate = rate(n, ours_s), rate(n, bare_s)
    x = ratio(ours_rate, bare_rate)
    steady_x = ratio(
        statistics.median(r.steady for r in results["ours"]), statistics.median(r.steady for r in results["bare"])
    )
    say(f"pipeline ours: {ours_rate:.1f} msg/s end to end (median {ours_s:.2f} s)")
    say(f"pipeline bare: {bare_rate:.1f} msg/s (median {bare_s:.2f} s)")
    say(f"pipeline ratio: {x:.2f}x end to end, {steady_x:.2f}x steady send phase (target >= {TARGET:g}x)")
    cpu = {k: statistics.median(r.worker_cpu for r in v) * 1000 / n for k, v in results.items()}
    say(f"pipeline worker CPU per message: ours {cpu['ours']:.2f} ms, bare {cpu['bare']:.2f} ms")
    say(
        f"pipeline vs naive bare (httpx.post per call, reference only): naive {naive.rate(n):.1f} msg/s, "
        f"ours/naive {ratio(ours_rate, naive.rate(n)):.2f}x"
    )
    say(f"pipeline worker RSS at the end: {rss / 2**20:.0f} MiB")
    line = f"ours {ours_rate:.0f}/s  bare {bare_rate:.0f}/s  ratio {x:.2f}x (target >= {TARGET:g}x)"
    return Summary("pipeline", line, x >= TARGET)
