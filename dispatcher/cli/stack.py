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

import httpx
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.audience.senders import sandbox_phone_number_id, with_sandbox_secrets
from dispatcher.config import Settings
from dispatcher.db.models import Sender

DEMO_ACCOUNT = "demo"
DEMO_SENDER = "My Sender"
DEMO_WHATSAPP_SENDER = "VOTRE_ID_EXPEDITEUR"
DEMO_TEMPLATE = ("commande_prete", "fr", "Bonjour {{1}}, votre commande {{2}} est prête.")


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
        # The demo's senders talk to the sandbox on this machine.
        env.setdefault("DISPATCHER_ALLOW_PRIVATE_PROVIDER_URLS", "true")
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
        wire_sandbox(settings, state)
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
    from dispatcher.audience.accounts import create_account, issue_token
    from dispatcher.db.models import Account, Template
    from dispatcher.db.session import session_scope

    with session_scope(settings.database_url) as session:
        account = session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
        if account is None:
            account, token = create_account(session, DEMO_ACCOUNT)
        else:
            token = issue_token(session, account)
        _ensure_sender(session, account.id, "sms", DEMO_SENDER, rate=50)
        whatsapp = _ensure_sender(session, account.id, "whatsapp", DEMO_WHATSAPP_SENDER, rate=80)
        name, language, body = DEMO_TEMPLATE
        if session.scalar(select(Template).where(Template.account_id == account.id, Template.name == name)) is None:
            session.add(
                Template(account_id=account.id, name=name, language=language, body=body, variables=2, status="APPROVED")
            )
        whatsapp_id = whatsapp.id
    (state / "whatsapp-sender").write_text(str(whatsapp_id))
    token_file = state / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return token


def _ensure_sender(session: Session, account_id: int, channel: str, label: str, *, rate: float) -> Sender:
    sender = session.scalar(select(Sender).where(Sender.account_id == account_id, Sender.label == label))
    if sender is None:
        sender = Sender(
            account_id=account_id,
            channel=channel,
            label=label,
            provider="sandbox",
            settings=with_sandbox_secrets({}),
            active=True,
            is_default=True,
            rate=rate,
            burst=20,
        )
        session.add(sender)
        session.flush()
    else:
        # A demo database from before senders had their own secrets gets some; present ones are kept.
        sender.settings = with_sandbox_secrets(sender.settings or {})
    return sender


def wire_sandbox(settings: Settings, state: Path) -> None:
    """Point the sandbox's WhatsApp webhooks at our API and have it report delivered/read by itself,
    so the demo shows receipts. Best effort: the demo works without it."""
    from dispatcher.db.session import session_scope

    sender_id = int((state / "whatsapp-sender").read_text())
    with session_scope(settings.database_url) as session:
        app_secret = str(session.get_one(Sender, sender_id).settings["app_secret"])
    hook = {"url": f"{settings.api_url}/v1/webhooks/whatsapp_cloud/{sender_id}", "app_secret": app_secret}
    config = {"whatsapp_webhooks": {sandbox_phone_number_id(sender_id): hook}, "auto_statuses": ["delivered", "read"]}
    for _ in range(50):
        try:
            httpx.put(f"{settings.sandbox_url}/_sandbox/config", json=config, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    print("note: could not configure the sandbox's callbacks; receipts will not show in the demo", file=sys.stderr)


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
        f"  export DISPATCHER_API_TOKEN={token}",
        "  (also saved for the CLI in " + str(state / "token") + ")",
        "",
        "  try:  dispatcher campaigns send examples/campaign.json --watch",
        "        dispatcher campaigns send examples/whatsapp.json --watch",
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
