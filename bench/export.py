"""export: rows/s of the CSV export, and the API process's peak RSS while it streams a large campaign.

A campaign of N message rows is inserted directly (bulk inserts; nothing is sent, no worker runs), then
`dispatcher api` runs as a subprocess, so its resident set is the server's alone, and the campaign is
downloaded with `GET /v1/campaigns/{id}/messages?format=csv` over loopback. The API's VmRSS is sampled
every 50 ms from /proc during the download; the baseline is taken after a warm-up export of a small campaign
(imports, pools, first queries). Every row must arrive.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import env
from bench.report import Summary, rate, say, stopwatch
from bench.stack import database, make_tenant, rss_bytes
from tests.support import processes
from tests.support.messages import seed_campaign

# Growth of the API's RSS while exporting, whatever N: the export holds one chunk of rows at a time.
# (Reading a million rows at once would take several hundred MiB.)
TARGET_GROWTH_MIB = 64.0
MIB = 2**20
WARMUP_MESSAGES = 10_000


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 1_000_000
    db: str = "sqlite"


@dataclass
class Api:
    url: str
    proc: subprocess.Popen[bytes]

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)


class PeakSampler:
    """The highest RSS of a process, sampled every `interval` seconds in a thread until `stop()`."""

    def __init__(self, api: Api, interval: float = 0.05) -> None:
        self.api, self.interval = api, interval
        self.peak = api.rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, self.api.rss())

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, self.api.rss())


def run(opts: Options) -> Summary:
    n = opts.messages
    say(f"--- export: a campaign of {n:,} messages as CSV, {opts.db}, API as a subprocess")
    logs = Path(tempfile.mkdtemp(prefix="bench-export-"))
    with database(opts.db, logs) as db_url:
        settings_env = env.configure({"DISPATCHER_DATABASE_URL": db_url})
        tenant = make_tenant(db_url, "export")
        warmup = seed_campaign(db_url, tenant.account_id, tenant.sender_id, WARMUP_MESSAGES)
        with stopwatch() as inserting:
            campaign = seed_campaign(db_url, tenant.account_id, tenant.sender_id, n)
        say(f"inserted {n:,} message rows in {inserting[0]:.1f} s ({rate(n, inserting[0]):,.0f} rows/s)")
        with api_process(settings_env, logs) as api, httpx.Client(base_url=api.url, timeout=60) as http:
            http.headers["Authorization"] = f"Bearer {tenant.token}"
            download(http, warmup.campaign_id, WARMUP_MESSAGES)
            before = api.rss()
            sampler = PeakSampler(api)
            with stopwatch() as exporting:
                size = download(http, campaign.campaign_id, n)
            peak = sampler.stop()
            after = api.rss()
    seconds = exporting[0]
    growth = (peak - before) / MIB
    say(f"exported {n:,} rows ({size / MIB:,.1f} MiB of CSV) in {seconds:.1f} s: {rate(n, seconds):,.0f} rows/s")
    say(
        f"API rss before {before / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB (+{growth:.1f}), after {after / MIB:.1f} MiB"
    )
    line = (
        f"{rate(n, seconds):,.0f} rows/s over {n:,} rows; API peak RSS {peak / MIB:.0f} MiB "
        f"(+{growth:.1f} MiB)  (target: growth <= {TARGET_GROWTH_MIB:g} MiB)"
    )
    return Summary("export", line, growth <= TARGET_GROWTH_MIB)


def download(http: httpx.Client, campaign_id: int, expected: int) -> int:
    """Stream the campaign's CSV, counting its lines as they arrive; the byte count. The bench's texts hold no
    newline, so lines are rows (plus the header)."""
    size = lines = 0
    with http.stream("GET", f"/v1/campaigns/{campaign_id}/messages", params={"format": "csv"}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
            lines += chunk.count(b"\n")
    if lines != expected + 1:
        raise RuntimeError(f"campaign {campaign_id}: {lines - 1:,} rows exported, {expected:,} expected")
    return size


@contextmanager
def api_process(settings_env: dict[str, str], logs: Path) -> Iterator[Api]:
    """`dispatcher api` on a free loopback port, stopped by its pid."""
    port = processes.free_port()
    log = logs / "api.log"
    command = [sys.executable, "-m", "dispatcher.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=env.ROOT, env=env.process_env(settings_env), stdout=out, stderr=out)
    api = Api(f"http://127.0.0.1:{port}", proc)
    try:
        _wait_ready(api, log)
        yield api
    finally:
        processes.stop(proc)


def _wait_ready(api: Api, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.proc.poll() is not None:
            raise RuntimeError(f"the API exited with {api.proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{api.url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not answer in {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")
