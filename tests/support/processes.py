"""Real processes for integration tests: the sandbox gateway and a Celery worker, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tests.support.redis_keys import delete_ours

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@dataclass
class Stack:
    db_url: str
    redis_url: str
    sandbox: Service
    env: dict[str, str]
    workers: list[Service] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        """The live API (uvicorn in a thread of the test process), for callers that need real HTTP."""
        return self.env["DISPATCHER_API_URL"]


def stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL after `grace`: only for a process the caller started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until(check, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def service(
    name: str, command: list[str], health: str, logs: Path, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """A server started as `command` (its last argument is the port), ready once `health` answers 200."""
    port = int(command[-1])
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}{health}", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait_until(up, name, proc, log)
        yield Service(url, port, proc, log)
    finally:
        stop(proc)


@contextmanager
def sandbox(logs: Path) -> Iterator[Service]:
    command = [sys.executable, "-m", "dispatcher.cli", "sandbox", "--port", str(free_port())]
    with service("sandbox", command, "/_sandbox/healthz", logs) as running:
        yield running


@contextmanager
def api(logs: Path, env: dict[str, str]) -> Iterator[Service]:
    """`dispatcher api` as a process of its own, with the environment `env`."""
    command = [sys.executable, "-m", "dispatcher.cli", "api", "--port", str(free_port())]
    with service("api", command, "/healthz", logs, env) as running:
        yield running


def stack_env(db_url: str, redis_url: str, sandbox: Service) -> dict[str, str]:
    api_port = free_port()
    return {
        "DISPATCHER_API_PORT": str(api_port),
        "DISPATCHER_API_URL": f"http://127.0.0.1:{api_port}",
        "DISPATCHER_DATABASE_URL": db_url,
        "DISPATCHER_REDIS_URL": redis_url,
        "DISPATCHER_BROKER_URL": redis_url,
        "DISPATCHER_SANDBOX_PORT": str(sandbox.port),
        "DISPATCHER_SANDBOX_HOST": "127.0.0.1",
        # Short leases and timeouts keep fault tests fast.
        "DISPATCHER_SEND_LEASE_SECONDS": "10",
        "DISPATCHER_PROVIDER_READ_TIMEOUT": "2",
        # A one-minute grid lets schedule tests fire within a minute instead of fifteen.
        "DISPATCHER_SCHEDULE_GRID_MINUTES": "1",
        "DISPATCHER_ERROR_BUDGET": "10",
        # Tests point senders at the sandbox and at local fakes.
        "DISPATCHER_ALLOW_PRIVATE_PROVIDER_URLS": "true",
    }


def apply_env(env: dict[str, str]) -> None:
    """Point this test process at the same settings as the worker."""
    from dispatcher.campaigns import enqueue
    from dispatcher.config import get_settings

    os.environ.update(env)
    get_settings.cache_clear()
    enqueue.producer_app.cache_clear()


# The queues `dispatcher worker` consumes by default.
WORKER_QUEUES = "campaigns,send.sms,send.whatsapp"


def worker_command(concurrency: int, name: str, extra: Sequence[str] = (), *, queues: str = WORKER_QUEUES) -> list[str]:
    """What `dispatcher worker` runs (threads pool, every queue unless told, no mingle/gossip), with a node name."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "-P",
        "threads",
        "-c",
        str(concurrency),
        "-Q",
        queues,
        "-n",
        f"{name}@%h",
        "-l",
        "INFO",
        "--without-mingle",
        "--without-gossip",
        *extra,
    ]


def start_worker(env: dict[str, str], logs: Path, *, concurrency: int = 8, name: str | None = None) -> Service:
    name = name or f"test-{uuid.uuid4().hex[:6]}"
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            worker_command(concurrency, name),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_until(lambda: "ready." in log.read_text(errors="replace"), "worker", proc, log, timeout=60)
    return Service(url="", port=0, proc=proc, log=log)


@contextmanager
def stack(db_url: str, redis_url: str, sandbox: Service, logs: Path) -> Iterator[Stack]:
    # Queues left by the previous backend's run must not reach this backend's worker.
    delete_ours(redis.Redis.from_url(redis_url))
    env = stack_env(db_url, redis_url, sandbox)
    apply_env(env)
    running = Stack(db_url, redis_url, sandbox, env)
    try:
        with live_api(int(env["DISPATCHER_API_PORT"])):
            running.workers.append(start_worker(env, logs))
            yield running
    finally:
        for worker in running.workers:
            stop(worker.proc, grace=30)


@contextmanager
def live_api(port: int) -> Iterator[None]:
    """The API served over real HTTP from a thread, so the sandbox can call its webhooks."""
    import threading

    import uvicorn

    from dispatcher.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
