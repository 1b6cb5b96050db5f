"""Beat's one static schedule. Campaign schedules live in the database; beat only ticks.

Entries expire before the next one is due, so a late or backed-up beat never piles up ticks.
"""

from __future__ import annotations

from typing import Any

from dispatcher import contracts

TICK_SECONDS = 15.0
RECONCILE_SECONDS = 60.0

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "tick": {
        "task": contracts.TICK,
        "schedule": TICK_SECONDS,
        "options": {"expires": TICK_SECONDS - 1, "queue": contracts.QUEUE_CAMPAIGNS},
    },
    "reconcile": {
        "task": contracts.RECONCILE,
        "schedule": RECONCILE_SECONDS,
        "options": {"expires": RECONCILE_SECONDS - 5, "queue": contracts.QUEUE_CAMPAIGNS},
    },
}
