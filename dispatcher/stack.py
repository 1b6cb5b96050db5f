"""`dispatcher up`: the whole stack on one machine, for a first look and for demos.

It makes sure Redis answers (starting a private `redis-server` if none does and one is installed),
migrates the SQLite database, prepares a demo account with a fresh token and a sandbox sender, then
runs api, worker, beat, sandbox and Flower as child processes until Ctrl-C, and stops them by pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
from sqlalchemy import select

from dispatcher.config import Settings

DEMO_ACCOUNT = "demo"
DEMO_SENDER = "My Sender"


def run_stack(settings: Settings, *, with_flower: bool = True) -> int:
    state = settings.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        redis_proc = ensure_redis(settings, state)
        if redis_proc is not None:
            children.append(("redis", redis_proc))
        from dispatcher.db.migrate import upgrade

        upgrade(settings.database_url)
        token = prepare_demo(settings, state)
        env = dict(os.environ)
        flower_password = None
        if with_flower:
            flower_password = _flower_password(settings, state)
            env["DISPATCHER_FLOWER_PASSWORD"] = flower_password
        commands = [("sandbox", ["sandbox"]), ("api", ["api"]), ("worker", ["worker"]), ("beat", ["beat"])]
        if with_flower:
            commands.append(("flower", ["flower"]))
        for name, args in commands:
            log = (state / f"{name}.log").open("ab")
            proc = subprocess.Popen([sys.executable, "-m", "dispatcher.cli", *args], env=env, stdout=log, stderr=log)
            children.append((name, proc))
        _banner(settings, state, token, flower_password)
        return _supervise(children)
    except StackError as exc:
        print(f"dispatcher up: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop(children)


class StackError(Exception):
    pass


def ensure_redis(settings: Settings, state: Path) -> subprocess.Popen[bytes] | None:
    """Use the Redis at the configured URL; start a private one on its port if nothing answers."""
    if _redis_answers(settings.redis_url):
        return None
    url = urlparse(settings.redis_url)
    binary = shutil.which("redis-server")
    if binary is None or url.hostname not in ("127.0.0.1", "localhost"):
        raise StackError(
            f"nothing answers at {settings.redis_url}: install Redis (apt-get install redis-server) "
            "or set DISPATCHER_REDIS_URL"
        )
    port = str(url.port or 6379)
    log = (state / "redis.log").open("ab")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(state),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
        ],
        stdout=log,
        stderr=log,
    )
    for _ in range(50):
        if _redis_answers(settings.redis_url):
            print(f"started a private redis-server on port {port} (data in {state})")
            return proc
        time.sleep(0.1)
    proc.terminate()
    raise StackError(f"redis-server did not start on port {port}; see {state / 'redis.log'}")


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def prepare_demo(settings: Settings, state: Path) -> str:
    """A demo account with a new token (saved for the CLI) and the sandbox sender "My Sender"."""
    from dispatcher.accounts import create_account, issue_token
    from dispatcher.db.models import Account, Sender
    from dispatcher.db.session import session_scope

    with session_scope(settings.database_url) as session:
        account = session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
        if account is None:
            account, token = create_account(session, DEMO_ACCOUNT)
        else:
            token = issue_token(session, account)
        exists = session.scalar(select(Sender).where(Sender.account_id == account.id, Sender.label == DEMO_SENDER))
        if exists is None:
            session.add(
                Sender(
                    account_id=account.id,
                    channel="sms",
                    label=DEMO_SENDER,
                    provider="sandbox",
                    settings={},
                    active=True,
                    is_default=True,
                    rate=50,
                    burst=20,
                )
            )
    token_file = state / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return token


def _flower_password(settings: Settings, state: Path) -> str:
    if settings.flower_password is not None:
        return settings.flower_password.get_secret_value()
    saved = state / "flower-password"
    if not saved.exists():
        saved.write_text(secrets.token_urlsafe(12))
        saved.chmod(0o600)
    return saved.read_text().strip()


def _banner(settings: Settings, state: Path, token: str, flower_password: str | None) -> None:
    lines = [
        "",
        "campaign-dispatcher is up",
        f"  API       {settings.api_url}   (docs: {settings.api_url}/docs)",
        f"  sandbox   {settings.sandbox_url}/_sandbox/messages",
    ]
    if flower_password:
        lines.append(
            f"  Flower    http://127.0.0.1:{settings.flower_port}   ({settings.flower_user} / {flower_password})"
        )
    lines += [
        f"  logs      {state}/*.log",
        "",
        f"  export DISPATCHER_TOKEN={token}",
        "  (also saved for the CLI in " + str(state / "token") + ")",
        "",
        "  try:  dispatcher campaigns send examples/campaign.json --watch",
        "  stop: Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)


def _supervise(children: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    stop = {"now": False}

    def _handler(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _handler)
    try:
        while not stop["now"]:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping (see its log)", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """Stop what we started, newest first, by pid: TERM, then KILL after a grace period."""
    for _name, proc in reversed(children):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for _name, proc in reversed(children):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
