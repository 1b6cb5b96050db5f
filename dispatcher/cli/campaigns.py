"""`dispatcher campaigns ...`: submit a JSON file, follow campaigns and export their messages through the HTTP API.

The commands call the API through `dispatcher.client`, the Python client users get
(`dispatcher.cli.remote`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import click
from pydantic_core import to_jsonable_python
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher.cli.remote import api as _api
from dispatcher.cli.remote import console, refusal
from dispatcher.client import CampaignErrorSummary, Client, TransportError
from dispatcher.client.campaigns import StatusFilter

# What `show` lists, under the API's names, when the campaign has it.
SHOWN = (
    "id",
    "name",
    "type",
    "channel",
    "status",
    "statusReason",
    "senderLabel",
    "text",
    "scheduledDate",
    "recipients",
    "encoding",
    "totalSegments",
    "createdAt",
)


def _as_sent(value: Any) -> str:
    """A value as the API's JSON writes it (a datetime in ISO 8601), for a table cell."""
    return str(to_jsonable_python(value))


@click.group()
def campaigns() -> None:
    """Send, list and follow campaigns."""


@campaigns.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--watch", is_flag=True, help="Show a progress bar until the campaign ends.")
@click.option("--idempotency-key", default=None, help="Make a retried send return the first campaign.")
def send(file: Path, watch: bool, idempotency_key: str | None) -> None:
    """Submit the campaign in FILE (either documented JSON payload)."""
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file} is not valid JSON: {exc}") from None
    with _api() as client:
        campaign = client.campaigns.create_raw(payload, idempotency_key=idempotency_key or None)
        if campaign.template:  # WhatsApp: an approved template, no SMS encoding or segments
            content = f"template {campaign.template} ({campaign.language})"
        else:
            content = f"{campaign.encoding}, {campaign.total_segments} segments"
        console.print(
            f"campaign [bold]{campaign.id}[/] accepted: {campaign.recipients} recipients, "
            f"{content}, status {campaign.status}"
        )
        for warning in campaign.warnings or []:
            console.print(f"[yellow]warning:[/] {warning}")
        if watch:
            _watch(client, campaign.id)


@campaigns.command("watch")
@click.argument("campaign_id")
def watch(campaign_id: str) -> None:
    """Show a live progress bar until the campaign ends."""
    with _api() as client:
        _watch(client, campaign_id)


@dataclass(frozen=True, slots=True)
class _Start:
    """When watching began and how many messages were done then: the rate shown is measured from here."""

    at: float
    done: int

    def rate(self, at: float, done: int) -> float:
        return (done - self.done) / (at - self.at) if at > self.at else 0.0


def _watch(client: Client, campaign_id: str, interval: float = 0.5) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"campaign {campaign_id}", total=None, detail="")
        start: _Start | None = None
        for campaign in client.campaigns.watch(campaign_id, interval=interval):
            s = campaign.stats
            done = s.total - s.pending
            now = time.monotonic()
            start = start or _Start(now, done)
            rate = start.rate(now, done)
            detail = f"sent {s.sent}  failed {s.failed}  pending {s.pending}  {rate:.0f}/s  [{campaign.status}]"
            progress.update(task, total=s.total or None, completed=done, detail=detail)
    reason = f" ({campaign.status_reason})" if campaign.status_reason else ""
    console.print(f"campaign {campaign_id}: {campaign.status}{reason}")
    _print_errors(campaign.errors)


def _print_errors(errors: list[CampaignErrorSummary] | None) -> None:
    for err in errors or []:
        console.print(f"  {err.count} × {err.code}: {err.error}")


@campaigns.command("list")
@click.option("--status", default="ALL", type=click.Choice(get_args(StatusFilter)))
@click.option("--page", default=1, type=int)
@click.option("--limit", default=10, type=int)
def list_(status: StatusFilter, page: int, limit: int) -> None:
    """List campaigns, newest first."""
    with _api() as client:
        result = client.campaigns.list(page=page, limit=limit, status=status)
    table = Table("id", "name", "type", "status", "total", "sent", "failed", "pending", "created")
    for c in result.data:
        s = c.stats
        counts = (str(n) for n in (s.total, s.sent, s.failed, s.pending))
        table.add_row(c.id, c.name, c.type, c.status, *counts, _as_sent(c.created_at))
    console.print(table)
    console.print(f"page {result.page} · {result.total} campaigns")


@campaigns.command("show")
@click.argument("campaign_id")
def show(campaign_id: str) -> None:
    """Show one campaign: definition, stats and errors."""
    with _api() as client:
        campaign = client.campaigns.get(campaign_id)
    shown = campaign.model_dump(mode="json", by_alias=True, exclude_none=True)
    table = Table(show_header=False)
    for key in SHOWN:
        if key in shown:
            table.add_row(key, str(shown[key]))
    table.add_row("stats", "  ".join(f"{k} {v}" for k, v in shown["stats"].items()))
    console.print(table)
    _print_errors(campaign.errors)


@campaigns.command("export")
@click.argument("campaign_id")
@click.option("--run", "run_id", default=None, help="Only this run's messages (an id from `show`'s runs).")
@click.option("--status", default=None, help="Only messages in this status (e.g. failed).")
def export(campaign_id: str, run_id: str | None, status: str | None) -> None:
    """Write every message of the campaign to stdout as CSV, as the API streams it: `> out.csv`."""
    out = sys.stdout.buffer
    written = 0
    with _api() as client:
        try:
            for chunk in client.campaigns.export(campaign_id, run=run_id, status=status):
                out.write(chunk)
                written += len(chunk)
            out.flush()
        except TransportError as exc:
            if not written:
                raise  # no answer at all: `_api()` says the API cannot be reached
            cut = f"the export of campaign {campaign_id} was cut short after {written:,} bytes: {exc.__cause__}"
            raise click.ClickException(cut) from None
        except BrokenPipeError:
            # The reader left (`| head`): stop downloading, quietly, as Unix tools do; Python's exit flush
            # would fail on the closed pipe again, so stdout points at /dev/null from here.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)


@campaigns.command("rejected")
@click.option("--limit", default=20, type=int, show_default=True)
def rejected(limit: int) -> None:
    """Submissions sent by Celery message that were refused, newest first, with their reasons."""
    from sqlalchemy import select

    from dispatcher.db.models import Rejection
    from dispatcher.db.session import session_factory

    with session_factory()() as session:
        rows = session.scalars(select(Rejection).order_by(Rejection.id.desc()).limit(limit)).all()
    table = Table("id", "when", "account", "task", "why")
    for row in rows:
        errors = (row.reason or {}).get("errors", [])
        why = "; ".join(refusal(e) for e in errors[:3])
        table.add_row(
            str(row.id),
            row.created_at.isoformat(timespec="seconds"),
            str(row.account_id or "-"),
            (row.task_id or "-")[:8],
            why + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""),
        )
    console.print(table)
    if not rows:
        console.print("no rejected submissions")
