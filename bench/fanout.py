"""Fan-out: publish N `dispatcher.send_message` tasks to a queue no worker consumes.

ours  = `workers.tasks.publish_sends(refs, "sms")` in chunks of `publish_batch_size` (500), as start_run does.
naive = one `send_message.delay(...)` per message (as `apply_async(ref, queue="send.sms")`, so both land on
        the same list; `delay` alone would pick the default queue, at the same cost).
legacy (optional) = the previous publish_sends: `apply_async(..., producer=one_producer)` per message.

The two sides run back to back, in alternating order, for `rounds` rounds; the queue is emptied between
runs. The figure is the median round.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench import env, wire
from bench.report import Summary, rate, ratio, say, stopwatch
from dispatcher.contracts import SendRef

TARGET = 5.0
QUEUE = "send.sms"


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 20_000
    rounds: int = 2
    chunk: int = 500
    legacy: bool = False


def _refs(n: int) -> list[SendRef]:
    return [SendRef(i, 1, 1, 1) for i in range(1, n + 1)]


def ours(refs: list[SendRef], chunk: int) -> None:
    from workers.tasks import publish_sends

    for i in range(0, len(refs), chunk):
        publish_sends(refs[i : i + chunk], "sms")


def naive(refs: list[SendRef], chunk: int) -> None:
    from workers.tasks import send_message

    for ref in refs:
        send_message.apply_async(ref, queue=QUEUE)


def legacy(refs: list[SendRef], chunk: int) -> None:
    """publish_sends before workers.publisher: one producer per chunk, one apply_async (one LPUSH) per message."""
    from workers.app import app
    from workers.tasks import send_message

    for i in range(0, len(refs), chunk):
        with app.producer_or_acquire() as producer:
            for ref in refs[i : i + chunk]:
                send_message.apply_async(ref, queue=QUEUE, producer=producer)


def _timed(side: Callable[[list[SendRef], int], None], refs: list[SendRef], chunk: int) -> float:
    r = env.client()
    r.delete(QUEUE)
    with stopwatch() as t:
        side(refs, chunk)
    queued = int(r.llen(QUEUE))
    r.delete(QUEUE)
    r.close()
    if queued != len(refs):
        raise RuntimeError(f"{side.__name__}: {queued} messages on {QUEUE}, expected {len(refs)}")
    return t[0]


def run(opts: Options) -> Summary:
    say(f"--- fanout: {opts.messages:,} send tasks, chunks of {opts.chunk}, {opts.rounds} round(s)")
    for countdown in (None, 30.0):
        problems = wire.compare(countdown)
        label = "wire check" + (f" (countdown {countdown:g}s)" if countdown else "")
        say(f"{label}: " + ("same message as apply_async (ids masked)" if not problems else "DIFFERS"))
        for p in problems:
            say("  " + p)
        if problems:
            raise RuntimeError("the fast path does not produce Celery's message")
    refs = _refs(opts.messages)
    sides: dict[str, Callable[[list[SendRef], int], None]] = {"ours": ours, "naive": naive}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for n in range(opts.rounds):
        order = list(sides) if n % 2 == 0 else list(reversed(sides))
        for name in order:
            seconds = _timed(sides[name], refs, opts.chunk)
            times[name].append(seconds)
            say(f"round {n + 1} {name:<6} {seconds:8.2f} s  {rate(opts.messages, seconds):10,.0f} msg/s")
    if opts.legacy:
        seconds = _timed(legacy, refs, opts.chunk)
        say(f"legacy (one producer, apply_async each) {seconds:.2f} s  {rate(opts.messages, seconds):,.0f} msg/s")
    ours_s, naive_s = statistics.median(times["ours"]), statistics.median(times["naive"])
    ours_rate, naive_rate = rate(opts.messages, ours_s), rate(opts.messages, naive_s)
    x = ratio(ours_rate, naive_rate)
    say(f"fanout ours:  {ours_s:.2f} s, {ours_rate:,.0f} msg/s (median of {opts.rounds})")
    say(f"fanout naive: {naive_s:.2f} s, {naive_rate:,.0f} msg/s (median of {opts.rounds})")
    say(f"fanout ratio: {x:.1f}x (target >= {TARGET:g}x)")
    line = f"ours {ours_rate:,.0f}/s  naive {naive_rate:,.0f}/s  ratio {x:.1f}x  (target >= {TARGET:g}x)"
    return Summary("fanout", line, x >= TARGET)
