"""Printing: every benchmark prints plain `name: value` lines as it goes and returns one summary line."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """One line of the final block, and whether the benchmark met its target."""

    name: str
    line: str
    met: bool


def say(*parts: object) -> None:
    print(*parts, flush=True)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("inf")


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t: ...` then `t[0]` is the elapsed seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def summary_block(summaries: list[Summary]) -> str:
    lines = ["", "=== summary ==="]
    lines += [f"{s.name:<8} {s.line}" for s in summaries]
    missed = [s.name for s in summaries if not s.met]
    lines.append("targets: all met" if not missed else "targets missed: " + ", ".join(missed))
    return "\n".join(lines)


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)
