"""Every Redis key the dispatcher uses, in one place. Nothing else builds key strings.

All keys share the `dsp:` prefix so an operator can find (and a test can delete) exactly ours.
"""

from __future__ import annotations

PREFIX = "dsp:"


def run_stats(run_id: int) -> str:
    """Hash of live counters for one run: total, sent, failed, skipped, unknown, delivered, read."""
    return f"{PREFIX}run:{run_id}:stats"


def sender_limiter(sender_id: int) -> str:
    """GCRA theoretical arrival time for one sender (shared by every worker)."""
    return f"{PREFIX}rl:{sender_id}"


def sender_pause(sender_id: int) -> str:
    """Set while the provider told us to slow down; its PTTL is the remaining pause."""
    return f"{PREFIX}rl:{sender_id}:pause"


def campaign_control(campaign_id: int) -> str:
    """Pause/cancel flag checked by every send task (value: 'paused' or 'cancelled')."""
    return f"{PREFIX}campaign:{campaign_id}:control"


def campaign_failures(campaign_id: int) -> str:
    """Consecutive permanent failures of a campaign (the error budget's counter)."""
    return f"{PREFIX}campaign:{campaign_id}:failstreak"


def message_pair_throttles(message_id: int) -> str:
    """How often the provider refused this message for its recipient's pair rate (WhatsApp 131056)."""
    return f"{PREFIX}message:{message_id}:pairthrottles"


def early_receipts() -> str:
    """Status events that arrived before their message's outcome was recorded (a sorted set by arrival)."""
    return f"{PREFIX}receipts:early"


def metrics(name: str) -> str:
    """Cluster-wide metric counters (hashes), turned into Prometheus families by `dispatcher.tracking.metrics`."""
    return f"{PREFIX}metrics:{name}"


def owned_patterns(queues: tuple[str, ...]) -> tuple[str, ...]:
    """Glob patterns of every key this project makes in its Redis database: ours, and the broker's for
    `queues` (kombu keeps a list per queue, with priority suffixes, its `_kombu.*` bindings, the unacked
    bookkeeping and `inspect` reply queues). Tests and benchmarks delete exactly these, never the whole
    database."""
    broker = ("_kombu.*", "unacked", "unacked_index", "unacked_mutex", "*.reply.celery.pidbox")
    return (f"{PREFIX}*", *broker, *(f"{queue}*" for queue in queues))
