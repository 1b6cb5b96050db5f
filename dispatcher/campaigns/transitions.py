"""Campaign status changes as conditional updates: each wins only from the status it expects.

A campaign's status is written by the API (pause, resume, cancel), by workers (a run finishing, the
error budget) and by beat (a missed one-off). Writing an ORM object read earlier would let a late
writer overwrite a decision taken in between (a pause landing after the campaign was SENT, a finish
overwriting a cancel); `UPDATE ... WHERE status IN (expected)` makes the first writer win.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from dispatcher.db.models import Campaign


def move(
    session: Session,
    campaign: Campaign,
    expected: Iterable[str],
    status: str,
    reason: str | None,
    **values: Any,
) -> bool:
    """Set `status` (and `values`) if the campaign is still in one of `expected`; True if this call did.

    Does not commit. `campaign` is refreshed from the row either way, so callers see what won.
    """
    won = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status.in_(list(expected)))
        .values(status=status, status_reason=reason, updated_at=datetime.now(UTC), **values)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(campaign)
    return bool(won)
