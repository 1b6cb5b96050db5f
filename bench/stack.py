"""The processes an end-to-end benchmark needs: a database, the sandbox gateway and Celery workers.

Everything is on loopback; every process started here is stopped here, by its pid. `ours_worker` runs
the command `dispatcher worker` runs (threads pool, `-l INFO`, no mingle/gossip, the campaign and send
queues), so the batch consumer step takes the send queues; `bare_worker` runs the same pool on the bare
baseline's own queue only, with `--include bench.bare` and the batch step off, so it is Celery's own
per-task consumer.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import env
from bench.procfs import cpu_seconds, rss_bytes
from tests.support import processes

PG_ADMIN_URL = os.environ.get("DISPATCHER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_bytes(self) -> int:
        """The worker's RSS: the threads pool is one process."""
        return rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def count(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text)


@dataclass
class Stack:
    db_url: str
    sandbox_url: str
    env: dict[str, str]
    logs: Path
    box: httpx.Client
    sandbox_pid: int

    @property
    def sandbox_port(self) -> int:
        return int(httpx.URL(self.sandbox_url).port or 80)

    def reset_sandbox(self, latency_ms: float) -> None:
        self.box.delete("/_sandbox/messages").raise_for_status()
        self.box.put("/_sandbox/config", json={"latency_ms": latency_ms}).raise_for_status()

    def sandbox_stats(self) -> dict[str, object]:
        stats: dict[str, object] = self.box.get("/_sandbox/stats").json()
        return stats


@contextmanager
def database(kind: str, logs: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file under `logs`, or a PostgreSQL database dropped afterwards."""
    from tests.support.databases import fresh_database

    with fresh_database(kind, logs, PG_ADMIN_URL, prefix="dispatcher_bench") as url:
        yield url


@contextmanager
def stack(db_kind: str = "sqlite") -> Iterator[Stack]:
    """Database + sandbox, with this process configured for them (the API runs in-process via TestClient)."""
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    env.claim()
    try:
        with database(db_kind, logs) as db_url, processes.sandbox(logs) as sandbox:
            extra = {
                "DISPATCHER_DATABASE_URL": db_url,
                "DISPATCHER_SANDBOX_PORT": str(sandbox.port),
                "DISPATCHER_SANDBOX_HOST": "127.0.0.1",
                # Nobody listens here: the sandbox sends no callbacks unless configured to.
                "DISPATCHER_API_URL": f"http://127.0.0.1:{processes.free_port()}",
            }
            settings_env = env.configure(extra)
            with httpx.Client(base_url=sandbox.url, timeout=30) as box:
                yield Stack(db_url, sandbox.url, settings_env, logs, box, sandbox.proc.pid)
    finally:
        env.release()


@contextmanager
def worker(
    s: Stack,
    *,
    concurrency: int = 16,
    name: str = "bench",
    queues: str = processes.WORKER_QUEUES,
    extra: tuple[str, ...] = (),
    env_extra: dict[str, str] | None = None,
) -> Iterator[Worker]:
    """A Celery worker (threads pool, `concurrency` threads) on `queues`, up until the block ends."""
    node = f"{name}-{uuid.uuid4().hex[:6]}"
    log = s.logs / f"{node}.log"
    command = processes.worker_command(concurrency, node, extra, queues=queues)
    # As `dispatcher worker -c N` does: the worker's pools (database, provider connections) follow -c.
    child_env = env.process_env({**s.env, "DISPATCHER_WORKER_CONCURRENCY": str(concurrency), **(env_extra or {})})
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=env.ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield Worker(name, proc, log)
    finally:
        processes.stop(proc, grace=30.0)


def ours_worker(s: Stack, *, concurrency: int = 16, name: str = "ours") -> AbstractContextManager[Worker]:
    """What `dispatcher worker` runs: the campaign queue on Celery's pool, the send queues in batches."""
    return worker(s, concurrency=concurrency, name=name)


def bare_worker(s: Stack, *, concurrency: int = 16, name: str = "bare") -> AbstractContextManager[Worker]:
    """The bare baseline's worker: the same pool, on `bench.bare` only. Without a send queue the batch step
    has nothing to take over; `DISPATCHER_SEND_BATCHES=false` says so twice."""
    return worker(
        s,
        concurrency=concurrency,
        name=name,
        queues=env.BARE_QUEUE,
        extra=("--include", "bench.bare"),
        env_extra={"DISPATCHER_SEND_BATCHES": "false"},
    )


@dataclass(frozen=True, slots=True)
class Tenant:
    account_id: int
    token: str
    sender_id: int


def make_tenant(db_url: str, name: str, *, rate: float = 1000, burst: int = 1000) -> Tenant:
    """An account with a token and a default sandbox SMS sender (as the integration tests' make_tenant)."""
    from tests.support.databases import sandbox_account

    return Tenant(*sandbox_account(db_url, name, rate=rate, burst=burst))


def ci_phone(n: int) -> str:
    """A valid Côte d'Ivoire mobile number, without '+' (as the integration tests use)."""
    return f"22507{n:08d}"
