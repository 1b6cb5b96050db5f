"""The `dispatcher` command: run each process, manage the database and accounts, send and follow campaigns."""

from __future__ import annotations

import os
import sys

import click

from dispatcher import contracts
from dispatcher.config import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """campaign-dispatcher: SMS and WhatsApp campaigns on Celery, Redis and SQL."""
    from pydantic import ValidationError

    from dispatcher.logs import configure

    try:
        get_settings()
    except ValidationError as exc:
        if not {"-h", "--help"} & set(sys.argv[1:]):  # help needs no settings
            raise click.ClickException(settings_problem(exc)) from None
    configure()


def settings_problem(exc: Exception) -> str:
    """A settings error as the environment variables to fix, not a traceback."""
    from pydantic import ValidationError

    from dispatcher.errors import user_message

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for error in exc.errors():
        name = "DISPATCHER_" + "_".join(str(part) for part in error["loc"]).upper() if error["loc"] else "settings"
        lines.append(f"{name}: {user_message(error['msg'])}")
    return "invalid settings in the environment:\n  " + "\n  ".join(lines)


@main.command()
@click.option("--flower/--no-flower", default=True, help="Also start Flower.")
def up(flower: bool) -> None:
    """Run the whole stack on this machine: API, worker, beat, sandbox (and Flower), SQLite, local Redis."""
    from dispatcher.cli.stack import run_stack

    sys.exit(run_stack(get_settings(), with_flower=flower))


@main.command()
@click.option("--host", default=None, help="Default: DISPATCHER_API_HOST.")
@click.option("--port", type=int, default=None, help="Default: DISPATCHER_API_PORT.")
@click.option("--workers", type=int, default=1, show_default=True)
def api(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API (FastAPI on uvicorn)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "dispatcher.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level="info",
        log_config=None,  # keep our structured logging (dispatcher.logs)
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("-Q", "--queues", default=",".join(contracts.ALL_QUEUES), show_default=True)
@click.option("-c", "--concurrency", type=int, default=None, help="Default: DISPATCHER_WORKER_CONCURRENCY.")
@click.option("-P", "--pool", default="threads", show_default=True, help="threads suits I/O-bound sends.")
@click.option("-n", "--hostname", default=None, help="Celery node name (default celery@HOST).")
@click.pass_context
def worker(ctx: click.Context, queues: str, concurrency: int | None, pool: str, hostname: str | None) -> None:
    """Run a Celery worker (extra arguments go to `celery worker`)."""
    if concurrency:
        # The worker's pools (database, provider connections) are sized from the setting: keep them in step.
        os.environ["DISPATCHER_WORKER_CONCURRENCY"] = str(concurrency)
    args = [
        "worker",
        "-Q",
        queues,
        "-P",
        pool,
        "-c",
        str(concurrency or get_settings().worker_concurrency),
        "-l",
        "INFO",
        "--without-mingle",
        "--without-gossip",
    ]
    if hostname:
        args += ["-n", hostname]
    _exec_celery([*args, *ctx.args])


@main.command()
def beat() -> None:
    """Run Celery beat (exactly one per deployment): the tick and the reconciler."""
    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    _exec_celery(["beat", "-l", "INFO", "-s", str(settings.state_dir / "celerybeat-schedule")])


@main.command()
@click.option("--port", type=int, default=None, help="Default: DISPATCHER_FLOWER_PORT.")
def flower(port: int | None) -> None:
    """Run Flower with basic auth (DISPATCHER_FLOWER_USER / DISPATCHER_FLOWER_PASSWORD)."""
    settings = get_settings()
    if settings.flower_password is None:
        raise click.ClickException("set DISPATCHER_FLOWER_PASSWORD: Flower never runs without authentication")
    auth = f"{settings.flower_user}:{settings.flower_password.get_secret_value()}"
    _exec_celery(
        [
            "flower",
            f"--port={port or settings.flower_port}",
            f"--basic-auth={auth}",
            "--max-tasks=20000",
            "--purge_offline_workers=600",
        ]
    )


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None, help="Default: DISPATCHER_SANDBOX_PORT.")
def sandbox(host: str | None, port: int | None) -> None:
    """Serve the sandbox provider gateway (Twilio and WhatsApp Cloud wire formats)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "dispatcher.sandbox:create_app",
        factory=True,
        host=host or settings.sandbox_host,
        port=port or settings.sandbox_port,
        log_level="warning",
        timeout_keep_alive=30,  # well above the workers' 4 s client expiry, as real providers' are
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (SQLite file by default, PostgreSQL with DISPATCHER_DATABASE_URL)."""
    from dispatcher.db.migrate import upgrade

    upgrade(revision=revision)
    click.echo(f"database at {_redacted(get_settings().database_url)} is at {revision}")


@main.group()
def accounts() -> None:
    """Accounts and API tokens."""


@accounts.command("create")
@click.argument("name")
def accounts_create(name: str) -> None:
    """Create an account and print its API token (shown once; only a hash is stored)."""
    from dispatcher.audience.accounts import create_account
    from dispatcher.db.session import session_scope

    name = name.strip()
    if not name or len(name) > 200:
        raise click.BadParameter("give the account a name of 1 to 200 characters", param_hint="NAME")
    with session_scope() as session:
        account, token = create_account(session, name)
        account_id = account.id
    click.echo(f"account {account_id} ({name}) created. API token (shown once):")
    click.echo(token)


def _exec_celery(args: list[str]) -> None:
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", *args]
    os.execv(sys.executable, argv)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register_api_commands() -> None:
    from dispatcher.cli.campaigns import campaigns
    from dispatcher.cli.contacts import contacts

    main.add_command(campaigns)
    main.add_command(contacts)


_register_api_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
