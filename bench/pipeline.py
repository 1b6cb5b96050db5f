"""End to end through the sandbox: our pipeline against the bare per-task baseline, each in its own worker.

ours = what `dispatcher worker` runs (threads pool, -c 16, `campaigns,send.sms,send.whatsapp`): the API,
       start_run, then the send queues consumed in batches by our consumer step (`bench.sides`).
bare = `bench.bare_send`, one Celery task per message making only the HTTP call through the pooled sync
       client, in a worker of its own (the same pool and concurrency) on `bench.bare` only, batch step off.
naive = `bench.naive_send` (`httpx.post`, a client and connection per call) on the bare worker, one round
       after the others (`pipeline` only): printed for reference, not judged.

Both workers are up for the whole run, but only one side is active at a time: rounds alternate ours/bare,
and each side's CPU is its own worker's. Figures are medians over rounds.

`pipeline` runs at `--latency-ms` (20): ratio ours/bare (target >= 1.5x, stretch 2.5x) and our CPU per
message (target <= 1.5 ms). `pipeline0` runs the same rounds at 0 ms: what one worker process of ours can
do (aim >= 1,000 msg/s), with the sandbox's CPU share to show whether the gateway was the limit.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import profile
from bench.report import Summary, rate, ratio, say
from bench.sides import FAST_BURST, FAST_RATE, SANDBOX_SATURATED, Driver, Measured, median
from bench.stack import Stack, Worker, bare_worker, make_tenant, ours_worker, stack

RATIO_TARGET, RATIO_STRETCH = 1.5, 2.5
CPU_TARGET_MS = 1.5
ZERO_LATENCY_AIM = 1_000.0
WARM_UP = 500
# The naive side runs at ~50 msg/s: its one reference round is capped so it stays under a minute.
NAIVE_MAX = 2_000


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 5_000
    rounds: int = 3
    concurrency: int = 16
    latency_ms: float = 20.0
    db: str = "sqlite"
    profile_dir: Path | None = None
    profile_seconds: int = 10
    name: str = "pipeline"  # or "pipeline0": the same rounds at 0 ms latency, no naive round

    @property
    def zero(self) -> bool:
        return self.name == "pipeline0"


@dataclass(slots=True)
class Bench:
    s: Stack
    ours: Worker
    bare: Worker
    driver: Driver

    def side(self, side: str, n: int) -> Measured:
        busy, idle = (self.ours, self.bare) if side == "ours" else (self.bare, self.ours)
        return self.driver.measured(side, n, [busy], [idle])


def _checks(b: Bench) -> None:
    """The bare side's fast-published countdown tasks honour their eta; one warm-up round per side."""
    proof = b.driver.bare(20, countdown=1.0)
    say(f"countdown check: 20 fast-published bare tasks with countdown=1s ran after {proof.seconds:.2f} s")
    if proof.seconds < 1.0:
        raise RuntimeError("countdown tasks ran before their eta")
    b.driver.ours(WARM_UP)
    b.driver.bare(WARM_UP)


def _log_checks(b: Bench) -> None:
    bare_done = b.bare.count("bench.bare_send[")
    per_task = b.ours.count("dispatcher.send_message[")
    taken = b.ours.count("consuming sends in batches")
    dropped = b.ours.count("unreadable message on a send queue")
    say(
        f"worker logs: bare {bare_done} bench.bare_send lines (received + succeeded); ours {per_task} per-task "
        f"send_message lines, batch step started {taken}x, {dropped} messages dropped"
    )
    if not taken or per_task or dropped:
        raise RuntimeError("our worker did not send through the batch consumer step alone")


def _profiled(b: Bench, side: str, n: int, out: Path, seconds: int) -> Path:
    """One extra (unmeasured) round of `side` with py-spy recording its worker from its first sandbox hit."""
    raw = out / f"{side}.raw"
    pid = (b.ours if side == "ours" else b.bare).pid
    done = threading.Event()

    def record() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            if int(b.s.sandbox_stats()["messages"]) > 0:  # type: ignore[call-overload]
                break
            time.sleep(0.02)
        command = [profile.py_spy(), "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "--gil"]
        subprocess.run([*command, "-o", str(raw)], check=False, capture_output=True, timeout=seconds + 60)

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    try:
        b.driver.ours(n) if side == "ours" else b.driver.bare(n)
    finally:
        done.set()
        thread.join(timeout=seconds + 90)
    return raw


def _profiles(b: Bench, opts: Options) -> None:
    assert opts.profile_dir is not None
    out = opts.profile_dir / opts.name
    out.mkdir(parents=True, exist_ok=True)
    # Long enough that py-spy's window falls inside the send phase.
    n = max(opts.messages, 8_000)
    for side in ("ours", "bare"):
        raw = _profiled(b, side, n, out, opts.profile_seconds)
        say(f"profile {side}: {raw}")
        for line in profile.summarise(raw, seconds=opts.profile_seconds):
            say("  " + line)


def run(opts: Options) -> Summary:
    n, name = opts.messages, opts.name
    latency = 0.0 if opts.zero else opts.latency_ms
    say(
        f"--- {name}: {n:,} messages, sandbox latency {latency:g} ms, threads pool -c {opts.concurrency} in each "
        f"worker (ours, bare), {opts.db}, {opts.rounds} round(s) per side"
    )
    with (
        stack(opts.db) as s,
        ours_worker(s, concurrency=opts.concurrency) as ours,
        bare_worker(s, concurrency=opts.concurrency) as bare,
    ):
        tenant = make_tenant(s.db_url, "bench", rate=FAST_RATE, burst=FAST_BURST)
        b = Bench(s, ours, bare, Driver(s, tenant, latency))
        _checks(b)
        results: dict[str, list[Measured]] = {"ours": [], "bare": []}
        for k in range(opts.rounds):
            for side in ("ours", "bare") if k % 2 == 0 else ("bare", "ours"):
                r = b.side(side, n)
                results[side].append(r)
                say(f"round {k + 1} {side:<4} {r.line(n)}")
        naive = None if opts.zero else b.side("naive", min(n, NAIVE_MAX))
        if naive is not None:
            say(f"naive bare ({min(n, NAIVE_MAX):,} messages) {naive.line(min(n, NAIVE_MAX))}")
        _log_checks(b)
        if opts.profile_dir is not None:
            _profiles(b, opts)
        rss = ours.rss_bytes()
    return _report(opts, results, naive, rss)


def _report(opts: Options, results: dict[str, list[Measured]], naive: Measured | None, rss: int) -> Summary:
    n, name = opts.messages, opts.name
    ours, bare = results["ours"], results["bare"]
    ours_rate = rate(n, median(ours, lambda r: r.run.seconds))
    bare_rate = rate(n, median(bare, lambda r: r.run.seconds))
    x = ratio(ours_rate, bare_rate)
    steady_x = ratio(median(ours, lambda r: r.run.steady), median(bare, lambda r: r.run.steady))
    cpu_ours, cpu_bare = median(ours, lambda r: r.cpu_ms(n)), median(bare, lambda r: r.cpu_ms(n))
    box = {side: median(v, lambda r: r.share(r.sandbox_cpu)) for side, v in results.items()}
    saturated = [side for side, v in results.items() if any(r.sandbox_saturated for r in v)]
    mean_batch = median(ours, lambda r: r.batches.mean)
    say(f"{name} ours: {ours_rate:.1f} msg/s end to end, one worker process (mean batch {mean_batch:.0f})")
    say(f"{name} bare: {bare_rate:.1f} msg/s end to end, one worker process")
    target = f"target >= {RATIO_TARGET:g}x, stretch {RATIO_STRETCH:g}x" if not opts.zero else "reference"
    say(f"{name} ratio: {x:.2f}x end to end, {steady_x:.2f}x steady send phase ({target})")
    cpu_target = f" (target <= {CPU_TARGET_MS:g} ms)" if not opts.zero else ""
    say(f"{name} worker CPU per message: ours {cpu_ours:.2f} ms{cpu_target}, bare {cpu_bare:.2f} ms")
    verdict = (
        f"SATURATED in the {'/'.join(saturated)} side's rounds: the gateway, not the worker, may be the limit"
        if saturated
        else f"not saturated (< {100 * SANDBOX_SATURATED:.0f}% of its one core)"
    )
    say(f"{name} sandbox CPU: ours side {box['ours']:.0f}%, bare side {box['bare']:.0f}% of a core; {verdict}")
    if naive is not None:
        say(
            f"{name} vs naive bare (httpx.post per call, reference only): naive {naive.rate(min(n, NAIVE_MAX)):.1f} "
            f"msg/s, ours/naive {ratio(ours_rate, naive.rate(min(n, NAIVE_MAX))):.2f}x"
        )
    say(f"{name} ours worker RSS at the end: {rss / 2**20:.0f} MiB")
    if opts.zero:
        line = f"ours {ours_rate:.0f}/s at 0 ms, one worker (aim >= {ZERO_LATENCY_AIM:,.0f}/s)  bare {bare_rate:.0f}/s"
        line += "  sandbox saturated" if saturated else ""
        return Summary(name, line, ours_rate >= ZERO_LATENCY_AIM)
    line = (
        f"ours {ours_rate:.0f}/s  bare {bare_rate:.0f}/s  ratio {x:.2f}x (target >= {RATIO_TARGET:g}x)  "
        f"CPU {cpu_ours:.2f} ms/msg (target <= {CPU_TARGET_MS:g})"
    )
    return Summary(name, line, x >= RATIO_TARGET and cpu_ours <= CPU_TARGET_MS)
