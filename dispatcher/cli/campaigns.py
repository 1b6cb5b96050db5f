"""`dispatcher campaigns ...`: submit a JSON file and follow campaigns through the HTTP API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher.config import get_settings

FINAL = {"SENT", "FAILED", "CANCELLED"}
console = Console()


def _token() -> str:
    settings = get_settings()
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    saved = settings.state_dir / "token"
    if saved.exists():
        return saved.read_text().strip()
    raise click.ClickException(
        "no API token: set DISPATCHER_API_TOKEN (from `dispatcher accounts create NAME`) or run `dispatcher up`"
    )


def _client() -> httpx.Client:
    settings = get_settings()
    return httpx.Client(base_url=settings.api_url, headers={"Authorization": f"Bearer {_token()}"}, timeout=30)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client() as client:
            response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach the API at {get_settings().api_url}: {exc}") from None
    if response.status_code >= 400:
        raise click.ClickException(_describe_error(response))
    return response.json()


def _describe_error(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(detail, list):
        lines = [f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail]
        return f"HTTP {response.status_code}:\n  " + "\n  ".join(lines)
    return f"HTTP {response.status_code}: {detail}"


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
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    campaign = _call("POST", "/v1/campaigns", json=payload, headers=headers)
    if campaign.get("template"):  # WhatsApp: an approved template, no SMS encoding or segments
        content = f"template {campaign['template']} ({campaign.get('language')})"
    else:
        content = f"{campaign['encoding']}, {campaign['totalSegments']} segments"
    console.print(
        f"campaign [bold]{campaign['id']}[/] accepted: {campaign['recipients']} recipients, "
        f"{content}, status {campaign['status']}"
    )
    for warning in campaign.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    if watch:
        _watch(campaign["id"])


@campaigns.command("watch")
@click.argument("campaign_id")
def watch(campaign_id: str) -> None:
    """Show a live progress bar until the campaign ends."""
    _watch(campaign_id)


def _watch(campaign_id: str, interval: float = 0.5) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"campaign {campaign_id}", total=None, detail="")
        started: tuple[float, int] | None = None
        while True:
            c = _call("GET", f"/v1/campaigns/{campaign_id}", params={"contacts": "false"})
            s = c["stats"]
            done = s["total"] - s["pending"]
            now = time.monotonic()
            started = started or (now, done)
            rate = (done - started[1]) / (now - started[0]) if now > started[0] else 0.0
            detail = f"sent {s['sent']}  failed {s['failed']}  pending {s['pending']}  {rate:.0f}/s  [{c['status']}]"
            progress.update(task, total=s["total"] or None, completed=done, detail=detail)
            if c["status"] in FINAL:
                break
            time.sleep(interval)
    console.print(
        f"campaign {campaign_id}: {c['status']}" + (f" ({c['statusReason']})" if c.get("statusReason") else "")
    )
    for err in c.get("errors", []):
        console.print(f"  {err['count']} × {err['code']}: {err['error']}")


@campaigns.command("list")
@click.option("--status", default="ALL", type=click.Choice(["ALL", "PENDING", "SENT", "FAILED", "PAUSED", "CANCELLED"]))
@click.option("--page", default=1, type=int)
@click.option("--limit", default=10, type=int)
def list_(status: str, page: int, limit: int) -> None:
    """List campaigns, newest first."""
    result = _call("GET", "/v1/campaigns", params={"status": status, "page": page, "limit": limit})
    table = Table("id", "name", "type", "status", "total", "sent", "failed", "pending", "created")
    for c in result["data"]:
        s = c["stats"]
        table.add_row(
            c["id"],
            c["name"],
            c["type"],
            c["status"],
            *(str(s[k]) for k in ("total", "sent", "failed", "pending")),
            c["createdAt"],
        )
    console.print(table)
    console.print(f"page {result['page']} · {result['total']} campaigns")


@campaigns.command("show")
@click.argument("campaign_id")
def show(campaign_id: str) -> None:
    """Show one campaign: definition, stats and errors."""
    c = _call("GET", f"/v1/campaigns/{campaign_id}")
    table = Table(show_header=False)
    for key in (
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
    ):
        if c.get(key) is not None:
            table.add_row(key, str(c[key]))
    table.add_row("stats", "  ".join(f"{k} {v}" for k, v in c["stats"].items()))
    console.print(table)
    for err in c.get("errors", []):
        console.print(f"  {err['count']} × {err['code']}: {err['error']}")


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
        why = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in errors[:3])
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
