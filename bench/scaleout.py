"""Scale-out: our pipeline with two worker processes on this machine beside one, and the shared rate limit.

Throughput: rounds alternate one worker (A) and two (A plus B, started for the round and stopped after
it, warmed by a short campaign first); both run what `dispatcher worker` runs. CPU is summed over the
workers that ran.

Limiter: with both workers up, a sender limited to 20 msg/s with a burst of 5 sends a 200-message campaign
(as `tests/workers/sending/test_engine.py::test_one_rate_limit_is_shared_by_every_worker_process`). From
the sandbox's arrival times: the busiest one-second window (must be <= rate + burst = 25) and the mean
rate after the burst (within 5% of 20/s). Each worker's connections to the sandbox are sampled during
the campaign, to show both processes sent.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.procfs import connections_to
from bench.report import Summary, rate, ratio, say
from bench.sides import FAST_BURST, FAST_RATE, Driver, Measured, median
from bench.stack import Stack, Worker, make_tenant, ours_worker, stack

SCALE_AIM = 1.0  # two processes must at least not lose throughput; more is what this machine allows
LIMIT_RATE, LIMIT_BURST, LIMIT_MESSAGES = 20.0, 5, 200
WARM_UP = 256


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 5_000
    rounds: int = 2
    concurrency: int = 16
    latency_ms: float = 20.0
    db: str = "sqlite"


@dataclass(frozen=True, slots=True)
class Limited:
    sent: int
    busiest: int  # most arrivals in any one-second window
    mean: float  # msg/s after the burst
    connections: tuple[int, ...]  # per worker, the most sandbox connections seen at once


def _arrivals(s: Stack) -> list[float]:
    messages: list[dict[str, Any]] = s.box.get("/_sandbox/messages").json()["messages"]
    return sorted(datetime.fromisoformat(m["received_at"].replace("Z", "+00:00")).timestamp() for m in messages)


def busiest_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most arrivals in any window of `width` seconds (each window starting at an arrival)."""
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + width:
            j += 1
        best = max(best, j - i)
    return best


def _limited(s: Stack, driver: Driver, workers: Sequence[Worker]) -> Limited:
    tenant = make_tenant(s.db_url, "limited", rate=LIMIT_RATE, burst=LIMIT_BURST)
    seen = [0] * len(workers)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            for k, w in enumerate(workers):
                seen[k] = max(seen[k], connections_to(w.pid, s.sandbox_port))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        r = driver.ours(LIMIT_MESSAGES, tenant, timeout=60 + LIMIT_MESSAGES / LIMIT_RATE)
    finally:
        done.set()
        sampler.join(timeout=5)
    times = _arrivals(s)
    mean = (len(times) - LIMIT_BURST) / (times[-1] - times[0]) if len(times) > LIMIT_BURST else 0.0
    return Limited(r.sent, busiest_window(times), mean, tuple(seen))


def run(opts: Options) -> Summary:
    n = opts.messages
    say(
        f"--- scaleout: {n:,} messages, sandbox latency {opts.latency_ms:g} ms, one vs two worker processes of ours "
        f"(threads pool -c {opts.concurrency} each), {opts.db}, {opts.rounds} round(s) per count"
    )
    results: dict[int, list[Measured]] = {1: [], 2: []}
    with stack(opts.db) as s, ours_worker(s, concurrency=opts.concurrency, name="ours-a") as a:
        tenant = make_tenant(s.db_url, "bench", rate=FAST_RATE, burst=FAST_BURST)
        driver = Driver(s, tenant, opts.latency_ms)
        driver.ours(WARM_UP)
        for k in range(opts.rounds):
            for count in (1, 2) if k % 2 == 0 else (2, 1):
                if count == 1:
                    r = driver.measured("ours", n, [a])
                else:
                    with ours_worker(s, concurrency=opts.concurrency, name="ours-b") as b:
                        driver.ours(WARM_UP)
                        r = driver.measured("ours", n, [a, b])
                results[count].append(r)
                say(f"round {k + 1} ours x{count} {r.line(n)}")
        with ours_worker(s, concurrency=opts.concurrency, name="ours-b") as b:
            driver.ours(WARM_UP)
            limited = _limited(s, driver, [a, b])
    return _report(opts, results, limited)


def _report(opts: Options, results: dict[int, list[Measured]], limited: Limited) -> Summary:
    n = opts.messages
    one, two = (rate(n, median(results[c], lambda r: r.run.seconds)) for c in (1, 2))
    x = ratio(two, one)
    cpu = {c: median(v, lambda r: r.cpu_ms(n)) for c, v in results.items()}
    say(f"scaleout ours, one worker process: {one:.1f} msg/s end to end ({cpu[1]:.2f} ms CPU/msg)")
    say(f"scaleout ours, two worker processes: {two:.1f} msg/s end to end ({cpu[2]:.2f} ms CPU/msg), {x:.2f}x one")
    both = all(c > 0 for c in limited.connections)
    exact = limited.busiest <= LIMIT_RATE + LIMIT_BURST and abs(limited.mean - LIMIT_RATE) <= 0.05 * LIMIT_RATE
    say(
        f"scaleout limiter, two workers, {LIMIT_RATE:g} msg/s burst {LIMIT_BURST}, {LIMIT_MESSAGES} messages: "
        f"{limited.sent} sent, busiest one-second window {limited.busiest} (must be <= "
        f"{LIMIT_RATE + LIMIT_BURST:g}), mean {limited.mean:.2f} msg/s (must be within 5% of {LIMIT_RATE:g}); "
        f"sandbox connections per worker {list(limited.connections)}; "
        f"{'exact' if exact else 'NOT EXACT'}{'' if both else ', but one worker sent nothing'}"
    )
    line = (
        f"two workers {two:.0f}/s vs one {one:.0f}/s ({x:.2f}x)  limiter busiest 1 s {limited.busiest} "
        f"(<= 25), mean {limited.mean:.2f}/s"
    )
    return Summary("scaleout", line, exact and both and x >= SCALE_AIM)
