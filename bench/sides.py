"""The two sides of the end-to-end benchmarks, one run at a time against workers that are already up.

ours = POST /v1/campaigns (the API, in-process through its test client) -> start_run (claim, message rows,
       publish_sends) -> the batch consumer step -> `engine.send_batch` until the campaign is final.
       Timed from the POST to the final status.
bare = `bench.bare_send` tasks on `bench.bare` (the HTTP call alone, pooled sync client), published with the
       same fast path in chunks of 500. Timed from the first publish until the sandbox has stored them all.

Both wait on the sandbox's count (polled every 50 ms), ours then on the campaign's final status.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import env
from bench.procfs import cpu_seconds
from bench.report import rate
from bench.stack import Stack, Tenant, Worker, ci_phone

TEXT = "Votre commande est prete. Retrait au magasin Plateau avant samedi 18h. Merci de votre confiance."
SENDER = "My Sender"
CHUNK = 500
POLL = 0.05
# A wait whose sandbox count has not moved for this long has stalled: it fails rather than wait for its deadline.
STALL_SECONDS = 30.0
# One uvicorn process: its event loop runs on one core at most.
SANDBOX_SATURATED = 0.9
# A sender the throughput rounds never wait on: the limiter script still runs for every batch.
FAST_RATE, FAST_BURST = 1_000_000.0, 1_000_000


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    steady: float  # median of the sandbox's per-second counts, first and last second left out
    sent: int


@dataclass(frozen=True, slots=True)
class Batches:
    """What the batch consumer step recorded (`dispatcher_send_batches`): batches and their messages."""

    count: int = 0
    messages: int = 0

    def __sub__(self, other: Batches) -> Batches:
        return Batches(self.count - other.count, self.messages - other.messages)

    @property
    def mean(self) -> float:
        return self.messages / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class Measured:
    """One side's run, with what the processes used meanwhile (CPU seconds)."""

    run: Run
    cpu: float  # the side's own worker(s)
    idle_cpu: float  # the other side's worker(s), idle meanwhile
    sandbox_cpu: float
    batches: Batches

    def rate(self, n: int) -> float:
        return rate(n, self.run.seconds)

    def cpu_ms(self, n: int) -> float:
        return 1000 * self.cpu / n

    def share(self, cpu: float) -> float:
        """Share of one core over the run, in percent."""
        return 100 * cpu / self.run.seconds if self.run.seconds > 0 else 0.0

    @property
    def sandbox_saturated(self) -> bool:
        return self.share(self.sandbox_cpu) >= 100 * SANDBOX_SATURATED

    def line(self, n: int) -> str:
        batched = f"; {self.batches.count} batches, mean {self.batches.mean:.0f}" if self.batches.count else ""
        sandbox = f"sandbox {self.share(self.sandbox_cpu):.0f}%" + (" SATURATED" if self.sandbox_saturated else "")
        return (
            f"{self.run.seconds:7.2f} s  {self.rate(n):7.1f} msg/s end to end  {self.run.steady:6.1f} msg/s steady  "
            f"({self.run.sent} sent)  worker CPU {self.cpu_ms(n):.2f} ms/msg ({self.share(self.cpu):.0f}% of a core), "
            f"idle worker {self.share(self.idle_cpu):.0f}%, {sandbox}{batched}"
        )


def median(values: Sequence[Measured], key: Callable[[Measured], float]) -> float:
    return float(statistics.median(key(v) for v in values))


def _steady(stats: dict[str, Any]) -> float:
    counts = [int(c) for _, c in stats.get("per_second", [])]
    inner = counts[1:-1] or counts
    return float(statistics.median(inner)) if inner else 0.0


def _deadline(n: int) -> float:
    return time.monotonic() + max(120.0, n / 5)


class Watch:
    """Fails a wait that stopped moving, or whose Redis database 14 was emptied under it (checked each second)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count, self.since, self.checked = -1, time.monotonic(), 0.0

    def see(self, count: int) -> None:
        now = time.monotonic()
        stalled = count == self.count and now - self.since > STALL_SECONDS
        # The database first: an emptied one is why a wait stalls, and the message should say so.
        if stalled or now - self.checked >= 1.0:
            self.checked = now
            r = env.client()
            try:
                env.check(r)
            finally:
                r.close()
        if stalled:
            raise RuntimeError(f"{self.what}: no progress for {STALL_SECONDS:g} s at {count} messages")
        if count != self.count:
            self.count, self.since = count, now


def batches() -> Batches:
    """The cluster-wide batch counters (all channels)."""
    from dispatcher import keys

    r = env.client()
    try:
        raw: dict[bytes, bytes] = r.hgetall(keys.metrics("batches"))  # type: ignore[assignment]
    finally:
        r.close()
    count = sum(int(v) for k, v in raw.items() if k.endswith(b"count"))
    return Batches(count, sum(int(v) for k, v in raw.items() if k.endswith(b"messages")))


class Driver:
    """Runs one side at a time; each round has its own contacts and message ids."""

    def __init__(self, s: Stack, tenant: Tenant, latency_ms: float) -> None:
        from fastapi.testclient import TestClient

        from dispatcher.api.app import create_app

        self.s, self.tenant, self.latency_ms = s, tenant, latency_ms
        self.api = TestClient(create_app())
        self.round = 0

    def measured(self, side: str, n: int, busy: Sequence[Worker], idle: Sequence[Worker] = ()) -> Measured:
        """One side's run, with the CPU its worker(s), the idle one(s) and the sandbox used meanwhile."""
        before = ([w.cpu_seconds() for w in busy], [w.cpu_seconds() for w in idle], cpu_seconds(self.s.sandbox_pid))
        b0 = batches()
        r = self.ours(n) if side == "ours" else self.bare(n, naive=side == "naive")
        b1 = batches()
        cpu = sum(w.cpu_seconds() for w in busy) - sum(before[0])
        idle_cpu = sum(w.cpu_seconds() for w in idle) - sum(before[1])
        return Measured(r, cpu, idle_cpu, cpu_seconds(self.s.sandbox_pid) - before[2], b1 - b0)

    def ours(self, n: int, tenant: Tenant | None = None, *, timeout: float | None = None) -> Run:
        tenant = tenant or self.tenant
        headers = {"Authorization": f"Bearer {tenant.token}"}
        base = self._next_round()
        contacts = [{"phone": ci_phone(base + i)} for i in range(n)]
        start = time.perf_counter()
        created = self.api.post("/v1/campaigns", json={"contacts": contacts, "text": TEXT}, headers=headers)
        created.raise_for_status()
        campaign_id = created.json()["id"]
        deadline = time.monotonic() + timeout if timeout else _deadline(n)
        stored, body = 0, {}
        watch = Watch(f"campaign {campaign_id}")
        while time.monotonic() < deadline:
            # The sandbox's count is cheap to poll; the campaign's status only once every message is there.
            if stored < n:
                stored = int(self.s.sandbox_stats()["messages"])  # type: ignore[call-overload]
            watch.see(stored)
            if stored >= n:
                body = self.api.get(f"/v1/campaigns/{campaign_id}", headers=headers).json()
                if body["status"] in ("SENT", "FAILED", "CANCELLED"):
                    break
            time.sleep(POLL)
        else:
            raise RuntimeError(f"campaign {campaign_id} not final in time: {stored}/{n} stored, {body.get('status')}")
        seconds = time.perf_counter() - start
        sent = int(body["stats"]["sent"])
        if body["status"] != "SENT" or sent != n:
            raise RuntimeError(f"campaign {campaign_id}: {body['status']}, {body['stats']}")
        return Run(seconds, _steady(self.s.sandbox_stats()), sent)

    def bare(self, n: int, countdown: float | None = None, *, naive: bool = False) -> Run:
        from bench.bare import bare_send, naive_send
        from workers import publisher
        from workers.app import app

        base = self._next_round()
        args = [(base + i, "+" + ci_phone(base + i), TEXT, SENDER) for i in range(n)]
        task = naive_send if naive else bare_send
        start = time.perf_counter()
        for i in range(0, n, CHUNK):
            publisher.publish_many(app, task, args[i : i + CHUNK], env.BARE_QUEUE, countdown=countdown)
        deadline = _deadline(n)
        stored, stats = 0, {}
        watch = Watch(f"{task.name} x {n}")
        while time.monotonic() < deadline:
            stats = self.s.sandbox_stats()
            stored = int(stats["messages"])  # type: ignore[call-overload]
            watch.see(stored)
            if stored >= n:
                break
            time.sleep(POLL)
        else:
            raise RuntimeError(f"bare: {stored}/{n} messages reached the sandbox in time")
        return Run(time.perf_counter() - start, _steady(stats), stored)

    def _next_round(self) -> int:
        """A fresh sandbox, and the first contact number / message id of this round."""
        self.round += 1
        self.s.reset_sandbox(self.latency_ms)
        return self.round * 1_000_000
