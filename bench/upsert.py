"""`contacts.upsert_many` alone: N rows in batches of 5,000 (as an import's worker), straight to the database.

Three passes over the same phones: `create` (all new), `same` (every row again: nothing changes, nothing is
written) and `change` (a new first name and field on each: every row rewritten, fields merged). Each batch
is committed, and its contacts added to a group, as an import does. `python -m bench upsert --messages
100000 [--db postgresql]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.report import Summary, rate, say
from bench.stack import ci_phone, database, make_tenant

BATCH = 5_000


@dataclass(frozen=True, slots=True)
class Options:
    rows: int = 100_000
    db: str = "sqlite"


def run(opts: Options) -> Summary:
    import tempfile
    from pathlib import Path

    from dispatcher.audience.contacts import ContactRow, add_members, upsert_many
    from dispatcher.db.models import Group
    from dispatcher.db.session import session_factory

    n = opts.rows
    say(f"--- upsert: {n:,} rows in batches of {BATCH:,}, {opts.db}")
    passes = {
        "create": [ContactRow("+" + ci_phone(i), name=f"N{i}", fields={"ville": "Abidjan"}) for i in range(n)],
        "change": [ContactRow("+" + ci_phone(i), first_name=f"F{i}", fields={"code": f"C{i}"}) for i in range(n)],
    }
    figures: dict[str, float] = {}
    with database(opts.db, Path(tempfile.mkdtemp(prefix="bench-upsert-"))) as url:
        tenant = make_tenant(url, "upsert")
        with session_factory(url)() as session:
            group = Group(account_id=tenant.account_id, name="Bench")
            session.add(group)
            session.commit()
            for label, rows in (("create", passes["create"]), ("same", passes["create"]), ("change", passes["change"])):
                start = time.perf_counter()
                for i in range(0, n, BATCH):
                    result = upsert_many(session, tenant.account_id, rows[i : i + BATCH])
                    add_members(session, group.id, (c for c in result.ids if c is not None))
                    session.commit()
                figures[label] = rate(n, time.perf_counter() - start)
                say(f"upsert ({label}): {figures[label]:,.0f} rows/s")
    line = ", ".join(f"{label} {value:,.0f} rows/s" for label, value in figures.items()) + f" ({opts.db}, {n:,} rows)"
    return Summary("upsert", line, True)
