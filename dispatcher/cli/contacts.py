"""`dispatcher contacts import FILE --group NAME`: upload a CSV or NDJSON file of contacts and follow its
import with a progress bar, through `dispatcher.client`."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dispatcher.cli.remote import api, console
from dispatcher.client import Client, ContactImport, Group
from dispatcher.client.resources import NDJSON, content_type_of

# Invalid rows printed after an import; the API keeps the first 1,000.
SHOWN_ERRORS = 10


@click.group()
def contacts() -> None:
    """Import contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--group", "group_ref", required=True, help="The group's name or id; a name no group has is created.")
@click.option("--country", default=None, help="Reads national numbers (0707123456) in this country, e.g. CI.")
@click.option("--ndjson", is_flag=True, help="The file is NDJSON (default: from a .ndjson/.jsonl name, else CSV).")
def import_(file: Path, group_ref: str, country: str | None, ndjson: bool) -> None:
    """Import the contacts of FILE (CSV with a phone column, or NDJSON) into a group."""
    content_type = NDJSON if ndjson else content_type_of(file)
    with api() as client:
        group = _group(client, group_ref)
        with console.status(f"uploading {file.name} ({file.stat().st_size / 2**20:.1f} MiB)"):
            started = client.contacts.import_file(file, group_id=group.id, country=country, content_type=content_type)
        console.print(f"import [bold]{started.id}[/] into group {group.name!r} ({group.id}): {started.status}")
        final = _follow(client, started.id, _data_lines(file, csv=content_type != NDJSON))
    _report(final)
    if final.status == "failed":
        raise click.exceptions.Exit(1)


def _group(client: Client, ref: str) -> Group:
    """The group named `ref`, or whose id it is; a name no group has becomes a new group (an unknown id
    is an error: a typo in an id must not create a group called "12")."""
    groups = client.groups.list()
    for group in groups:
        if group.id == ref or group.name == ref:
            return group
    if ref.isdigit():
        raise click.ClickException(f"no group has the id {ref}")
    created = client.groups.create(ref)
    console.print(f"group {ref!r} created ({created.id})")
    return created


def _data_lines(file: Path, *, csv: bool) -> int | None:
    """About how many rows the file has, for the bar's total (lines, less a CSV's header)."""
    count = 0
    with file.open("rb") as f:
        while piece := f.read(1 << 20):
            count += piece.count(b"\n")
    return max(count - 1, 0) if csv else count or None


def _follow(client: Client, import_id: str, estimate: int | None, interval: float = 0.5) -> ContactImport:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    began = time.monotonic()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"import {import_id}", total=estimate, detail="")
        for current in client.contacts.watch_import(import_id, interval=interval):
            rate = current.rows / (time.monotonic() - began)
            detail = (
                f"created {current.created}  updated {current.updated}  invalid {current.invalid}  "
                f"{rate:,.0f} rows/s  [{current.status}]"
            )
            total = current.rows if current.is_final else max(estimate or 0, current.rows) or None
            progress.update(task, total=total, completed=current.rows, detail=detail)
    return current


def _report(result: ContactImport) -> None:
    reason = f" ({result.status_reason})" if result.status_reason else ""
    console.print(
        f"import {result.id}: {result.status}{reason}: {result.rows} rows, {result.created} created, "
        f"{result.updated} updated, {result.invalid} invalid"
    )
    for error in result.errors[:SHOWN_ERRORS]:
        column = f" {error.column}" if error.column else ""
        console.print(f"  line {error.line}{column}: {error.reason}")
    if result.invalid > SHOWN_ERRORS:
        console.print(
            f"  ... {result.invalid - SHOWN_ERRORS} more (the first 1,000: GET /v1/contacts/imports/{result.id})"
        )
    if result.ignored_columns:
        console.print(f"columns ignored (no text can name them as @field): {', '.join(result.ignored_columns)}")
