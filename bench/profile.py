"""Summaries of py-spy raw (collapsed-stack) recordings: where a worker's samples go.

`py-spy record --gil -f raw` keeps only samples of the thread holding the GIL, so with a threads pool
the shares below are shares of the one core the worker can use for Python.
Each line of the file is `frame;frame;...;leaf N`, a frame being `function (path:line)`.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

OWN_CODE = ("workers/", "dispatcher/", "bench/", "beat_schedule/")
LOGGING = re.compile(r"\((?:logging/|structlog/|dispatcher/logs\.py)")
PROVIDER = "provider call: request and answer (adapter, httpx, aiohttp)"
LOOP = "provider calls: event loop (aiohttp I/O callbacks, asyncio)"
CLAIM = "claim UPDATE ... RETURNING"
FINAL = "final write (UPDATE ... CASE), releases"
LIMITER = "limiter (GCRA script, pause/cancel check)"
COUNTERS = "counters and metrics after the send"
CONFIG = "sender config / campaign cache"
# The activity of a sample is read from the frames of our own code, innermost first: the first one that a
# rule (path prefix, function or None for any) names decides. Frames no rule names (`writes.run`, shared
# by every write) are passed over, so their caller decides.
ACTIVITIES: tuple[tuple[str, str | None, str], ...] = (
    ("workers/sending/limiter.py", None, LIMITER),
    ("workers/sending/budget.py", "Streaks", "error-budget streaks (MGET, follow)"),
    ("workers/sending/budget.py", None, COUNTERS),
    ("dispatcher/tracking/stats.py", None, COUNTERS),
    ("dispatcher/tracking/metrics.py", None, COUNTERS),
    ("dispatcher/campaigns/completion.py", None, "run completion check"),
    ("workers/providers/", None, PROVIDER),
    ("bench/bare.py", None, PROVIDER),
    ("workers/http.py", None, PROVIDER),
    ("workers/sending/writes.py", "claim", CLAIM),
    ("workers/sending/writes.py", "finish", FINAL),
    ("workers/sending/writes.py", "release", FINAL),
    ("workers/sending/writes.py", "skip", FINAL),
    ("workers/sending/writes.py", "park", FINAL),
    ("workers/sending/writes.py", "_finish_statement", FINAL),
    ("workers/sending/context.py", "run", LOOP),
    ("workers/sending/context.py", "thread_loop", LOOP),
    ("workers/sending/context.py", None, "connection checkout / return, session"),
    ("workers/sending/engine.py", "sender_config", CONFIG),
    ("workers/sending/engine.py", "campaign_content", CONFIG),
    ("workers/sending/engine.py", "_config", CONFIG),
    ("workers/sending/engine.py", "_complete", CONFIG),
    ("workers/sending/engine.py", "_gate", LIMITER),
    ("workers/sending/engine.py", "_wait_for_slot", LIMITER),
    ("workers/sending/engine.py", "_claim", CLAIM),
    ("workers/sending/engine.py", "_call", PROVIDER),
    ("workers/sending/engine.py", "_send", PROVIDER),
    ("workers/sending/engine.py", "_call_all", PROVIDER),
    ("workers/sending/engine.py", "_settle", FINAL),
    ("workers/sending/engine.py", None, "batch engine, elsewhere (send_batch)"),
    ("workers/sending/consumer.py", "_drain", "batch consumer: acks (kombu, per message)"),
    ("workers/sending/consumer.py", "_republish", "batch consumer: republish"),
    ("workers/sending/consumer.py", "_publish", "batch consumer: republish"),
    ("workers/sending/consumer.py", None, "batch consumer: receive, buffer, flush"),
    ("dispatcher/db/session.py", None, "session factory / engine lookup"),
    ("workers/tasks.py", "send_message", "send_message body (session open/close, settings)"),
    ("workers/fanout.py", None, "start_run (rows, publish)"),
    ("workers/publisher.py", None, "start_run (rows, publish)"),
    ("dispatcher/campaigns/", None, "start_run (rows, publish)"),
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


def _stacks(raw: Path) -> list[tuple[list[str], int]]:
    out: list[tuple[list[str], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    return f"{m.group('func')} ({m.group('path')})"


def _parts(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame)
    return (m.group("func"), m.group("path")) if m else (frame, "")


def categorise(frames: list[str]) -> str:
    """What the sample was doing: logging anywhere, else the innermost frame of our code, else Celery's loop."""
    if any(LOGGING.search(f) for f in frames):
        return "logging (task received/succeeded lines, structlog)"
    innermost: tuple[str, str] | None = None
    for frame in reversed(frames):
        func, path = _parts(frame)
        if not path.startswith(OWN_CODE):
            continue
        innermost = innermost or (func, path)
        # A qualified name: `Class.method.<locals>.<listcomp>` is named by any of its parts.
        parts = func.split(".")
        for prefix, name, activity in ACTIVITIES:
            if path.startswith(prefix) and (name is None or name in parts):
                return activity
    if innermost is not None:
        return f"ours, elsewhere: {innermost[0]} ({innermost[1]})"
    if any("celery/app/trace.py" in f for f in frames):
        return "celery task tracing (around the task body)"
    return "celery/kombu consumer loop (BRPOP, receive, ack, dispatch)"


def library(frame: str) -> str:
    """The top-level package (or stdlib module) of a frame's file."""
    _, path = _parts(frame)
    if path.startswith(OWN_CODE):
        return "our code"
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


def summarise(raw: Path, top: int = 12, seconds: float | None = None, hz: int = 100) -> list[str]:
    """Lines: total samples, share per category, then the hottest leaf functions."""
    if not raw.exists():
        return [f"no profile at {raw} (py-spy failed?)"]
    stacks = _stacks(raw)
    total = sum(c for _, c in stacks)
    if not total:
        return ["no samples"]
    by_category: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    for frames, count in stacks:
        by_category[categorise(frames)] += count
        by_leaf[_short(frames[-1])] += count
        by_library[library(frames[-1])] += count
    held = f" (the GIL was held {100 * total / (seconds * hz):.0f}% of the time)" if seconds else ""
    lines = [f"{total} samples holding the GIL{held}; by activity:"]
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in by_category.most_common()]
    lines.append("by library of the running (leaf) frame:")
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in by_library.most_common(top)]
    lines.append("hottest leaf functions:")
    lines += [f"{100 * c / total:5.1f}%  {name}" for name, c in by_leaf.most_common(top)]
    return lines


def main(argv: list[str]) -> int:
    for path in argv:
        print(path)
        for line in summarise(Path(path), top=25):
            print("  " + line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
