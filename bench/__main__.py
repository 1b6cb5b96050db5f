"""`python -m bench [fanout|pipeline|memory|rss|export|submit|audience|import|upsert ...] [--messages N] [...]`:
run benchmarks, print a summary.

Everything runs on this machine: Redis database 14 (emptied before and after), a SQLite file or a fresh
PostgreSQL database, the sandbox gateway and one Celery worker, all on loopback and stopped by pid.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from pathlib import Path

from bench import env
from bench.report import Summary, say, summary_block

NAMES = ("fanout", "memory", "pipeline", "pipeline0", "scaleout", "rss")
# Run only when named: they measure volume (export, submission, fan-out, imports), not the send path.
EXTRA = ("export", "submit", "audience", "import", "upsert")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(NAMES + EXTRA)} (default: the first six)"
    )
    p.add_argument("--messages", type=int, help="size for the benchmark(s) named (overrides the per-bench sizes)")
    p.add_argument("--fanout-messages", type=int, default=20_000)
    p.add_argument("--fanout-rounds", type=int, default=2)
    p.add_argument("--legacy", action="store_true", help="fanout: also time the previous publish_sends")
    p.add_argument("--memory-messages", type=int, default=10_000)
    p.add_argument("--pipeline-messages", type=int, default=5_000, help="pipeline, pipeline0, scaleout size")
    p.add_argument("--pipeline-rounds", type=int, default=3)
    p.add_argument("--scaleout-rounds", type=int, default=2, help="scaleout: rounds per worker count")
    p.add_argument("--rss-messages", type=int, default=20_000)
    p.add_argument("--submit-messages", type=int, default=100_000, help="contacts in the submitted campaign")
    p.add_argument("--submit-rounds", type=int, default=2)
    p.add_argument("--audience-messages", type=int, default=1_000_000, help="group size for the fan-out")
    p.add_argument("--export-messages", type=int, default=1_000_000, help="message rows the export streams")
    p.add_argument("--import-rows", type=int, default=100_000, help="rows of the imported file (import, upsert)")
    p.add_argument("--import-again", action="store_true", help="import: import the same file a second time")
    p.add_argument("--concurrency", type=int, default=16, help="worker threads (pipeline, rss, import)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="sandbox added latency (pipeline, rss)")
    p.add_argument(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="database (pipeline, rss, export, import, upsert)",
    )
    p.add_argument("--profile", type=Path, help="pipeline: record py-spy profiles of the worker into this folder")
    p.add_argument("--profile-seconds", type=int, default=10)
    args = p.parse_args(argv)
    unknown = set(args.names) - set(NAMES + EXTRA)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    # A SIGTERM unwinds like Ctrl-C, so every process a benchmark started is stopped by its context manager.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # FastAPI's test client (the API, in-process) warns on import about a future httpx change; not ours to fix.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    names = [n for n in NAMES + EXTRA if n in args.names] or list(NAMES)
    env.configure()
    env.claim()
    summaries: list[Summary] = []
    try:
        for name in names:
            summaries.append(_run(name, args))
    finally:
        env.release()
    say(summary_block(summaries))
    return 0


def _run(name: str, args: argparse.Namespace) -> Summary:
    size = args.messages
    if name == "fanout":
        from bench import fanout

        n = size or args.fanout_messages
        return fanout.run(fanout.Options(messages=n, rounds=args.fanout_rounds, legacy=args.legacy))
    if name == "memory":
        from bench import memory

        return memory.run(memory.Options(messages=size or args.memory_messages))
    if name in ("pipeline", "pipeline0"):
        from bench import pipeline

        return pipeline.run(
            pipeline.Options(
                messages=size or args.pipeline_messages,
                rounds=args.pipeline_rounds,
                concurrency=args.concurrency,
                latency_ms=args.latency_ms,
                db=args.db,
                profile_dir=args.profile,
                profile_seconds=args.profile_seconds,
                name=name,
            )
        )
    if name == "scaleout":
        from bench import scaleout

        return scaleout.run(
            scaleout.Options(
                messages=size or args.pipeline_messages,
                rounds=args.scaleout_rounds,
                concurrency=args.concurrency,
                latency_ms=args.latency_ms,
                db=args.db,
            )
        )
    if name in ("submit", "audience"):
        from bench import volume

        default = args.submit_messages if name == "submit" else args.audience_messages
        opts = volume.Options(messages=size or default, rounds=args.submit_rounds, db=args.db)
        return volume.run_submit(opts) if name == "submit" else volume.run_audience(opts)
    if name == "export":
        from bench import export

        return export.run(export.Options(messages=size or args.export_messages, db=args.db))
    if name == "import":
        from bench import imports

        rows = size or args.import_rows
        return imports.run(
            imports.Options(rows=rows, db=args.db, again=args.import_again, concurrency=args.concurrency)
        )
    if name == "upsert":
        from bench import upsert

        return upsert.run(upsert.Options(rows=size or args.import_rows, db=args.db))
    from bench import rss

    return rss.run(
        rss.Options(
            messages=size or args.rss_messages, concurrency=args.concurrency, latency_ms=args.latency_ms, db=args.db
        )
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
