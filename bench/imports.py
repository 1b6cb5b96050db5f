"""A contacts file imported end to end: the client uploads it to a live API, a worker imports it.

`python -m bench import --messages 1000000 [--db postgresql]`: a CSV of N rows (phone, first and last
name, a custom field, a time zone on every tenth row, one bad phone in a thousand) is written to disk,
then `Client.contacts.import_file` streams it to `dispatcher api` (a uvicorn subprocess), which stores it
in the database in chunks and answers 202; one worker (threads pool, as `dispatcher worker`) imports it in
batches. Timed from the start of the upload until the import is `done`. RSS of the worker and of the API
are sampled every half second. `--import-again` imports the same file a second time (every row an
update that changes nothing: nothing is written).

Targets: 1,000,000 rows in at most 120 s; worker RSS under 300 MiB.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import env
from bench.report import Summary, rate, say
from bench.stack import ci_phone, make_tenant, rss_bytes, stack, worker
from tests.support import processes

TARGET_SECONDS_PER_MILLION = 120.0
TARGET_RSS_MIB = 300.0
MIB = 2**20


@dataclass(frozen=True, slots=True)
class Options:
    rows: int = 100_000
    db: str = "sqlite"
    again: bool = False
    concurrency: int = 16


@dataclass(frozen=True, slots=True)
class Run:
    upload_seconds: float
    seconds: float
    rows: int
    created: int
    updated: int
    invalid: int


def write_file(path: Path, n: int) -> int:
    """The CSV the benchmark imports; returns how many rows have a bad phone."""
    bad = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("phone,firstName,lastName,ville,timezone\r\n")
        for i in range(1, n + 1):
            phone = ci_phone(i)
            if i % 1000 == 0:
                phone, bad = "12345", bad + 1
            zone = "Africa/Abidjan" if i % 10 == 0 else ""
            out.write(f"{phone},Awa{i},Koné,Abidjan {i % 97},{zone}\r\n")
    return bad


class Sampler:
    """The peak RSS of some processes, read every half second in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], rss_bytes(pid))


def _import(url: str, token: str, file: Path, group_id: str, n: int) -> Run:
    from dispatcher.client import Client

    with Client(base_url=url, token=token, timeout=120) as client:
        start = time.monotonic()
        started = client.contacts.import_file(file, group_id=group_id)
        uploaded = time.monotonic() - start
        deadline = time.monotonic() + max(300.0, n / 1000)
        for current in client.contacts.watch_import(started.id, interval=0.25):
            if time.monotonic() > deadline:
                raise RuntimeError(f"import not over in time: {current.status} at row {current.rows}")
        seconds = time.monotonic() - start
    if current.status != "done":
        raise RuntimeError(f"import {current.status}: {current.status_reason}")
    return Run(uploaded, seconds, current.rows, current.created, current.updated, current.invalid)


def run(opts: Options) -> Summary:
    n = opts.rows
    say(f"--- import: {n:,} rows, one worker (-c {opts.concurrency}), {opts.db}")
    with (
        stack(opts.db) as s,
        worker(s, concurrency=opts.concurrency, name="import") as w,
        processes.api(s.logs, env.process_env(s.env)) as api,
    ):
        url = api.url
        file = s.logs / "contacts.csv"
        bad = write_file(file, n)
        say(f"file: {file} ({file.stat().st_size / MIB:.1f} MiB, {bad:,} bad phones)")
        tenant = make_tenant(s.db_url, "import")
        group = httpx.post(
            f"{url}/v1/groups", json={"name": "Bench"}, headers={"Authorization": f"Bearer {tenant.token}"}
        ).json()
        rounds: list[tuple[str, Run, dict[str, int]]] = []
        for label in ("first", "again")[: 2 if opts.again else 1]:
            with Sampler({"worker": w.pid, "api": api.proc.pid}) as sampler:
                result = _import(url, tenant.token, file, group["id"], n)
            rounds.append((label, result, sampler.peaks))
    for label, result, peaks in rounds:
        say(
            f"import ({label}): {result.seconds:.1f} s ({rate(result.rows, result.seconds):,.0f} rows/s), upload "
            f"{result.upload_seconds:.1f} s, then {rate(result.rows, result.seconds - result.upload_seconds):,.0f} "
            f"rows/s in the worker; created {result.created:,}, updated {result.updated:,}, invalid {result.invalid:,}"
        )
        say(f"import ({label}): peak RSS worker {peaks['worker'] / MIB:.0f} MiB, API {peaks['api'] / MIB:.0f} MiB")
    first, result, peaks = rounds[0]
    allowed = TARGET_SECONDS_PER_MILLION * n / 1_000_000
    met = result.seconds <= allowed and peaks["worker"] / MIB < TARGET_RSS_MIB
    line = (
        f"{n:,} rows in {result.seconds:.1f} s ({rate(n, result.seconds):,.0f} rows/s, {opts.db}), worker peak "
        f"{peaks['worker'] / MIB:.0f} MiB  (target <= {allowed:.0f} s, < {TARGET_RSS_MIB:.0f} MiB)"
    )
    return Summary("import", line, met)
