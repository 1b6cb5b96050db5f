"""Prometheus metrics for the whole deployment, served by the API at `GET /metrics`.

Sends happen in worker processes on many hosts, so per-process client metrics would show one worker
each. Workers instead add to a few Redis hashes (in the same round trip as the run's counters), and
the API turns them into Prometheus families at scrape time, together with queue lengths from the
broker and run counts from the database. The numbers are cluster-wide totals.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from dispatcher import contracts, keys
from dispatcher.db.models import Run
from dispatcher.db.session import session_factory

LATENCY_BUCKETS: Sequence[float] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SEP = "|"


def latency_bucket(seconds: float) -> str:
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            return str(bound)
    return "+Inf"


def send_fields(
    channel: str, provider: str, outcome: str, code: str | None, latency: float | None
) -> tuple[str, str | None, str | None]:
    """The hash fields one provider call adds to: its outcome in `messages`, and (with a latency) its
    bucket and sum in `latency`."""
    outcome_field = SEP.join((channel, provider, outcome, code or ""))
    if latency is None:
        return outcome_field, None, None
    label = SEP.join((channel, provider))
    return outcome_field, f"{label}{SEP}{latency_bucket(latency)}", f"{label}{SEP}sum"


def record_wait(r: redis.Redis, sender_id: int, kind: str, seconds: float, count: int = 1) -> None:
    """Limiter waits (`reserved`, `deferred`) or provider-ordered pauses (`throttled`): `count` of them,
    `seconds` in all."""
    pipe = r.pipeline(transaction=False)
    pipe.hincrby(keys.metrics("waits"), f"{sender_id}{SEP}{kind}", count)
    pipe.hincrbyfloat(keys.metrics("wait_seconds"), f"{sender_id}{SEP}{kind}", seconds)
    pipe.execute()


def record_batch(r: redis.Redis, channel: str, size: int) -> None:
    """One batch of sends consumed: how many batches and how many messages, per channel."""
    pipe = r.pipeline(transaction=False)
    pipe.hincrby(keys.metrics("batches"), f"{channel}{SEP}count", 1)
    pipe.hincrby(keys.metrics("batches"), f"{channel}{SEP}messages", size)
    pipe.execute()


class DispatcherCollector(Collector):
    """Reads the shared counters at scrape time."""

    def __init__(self, r: redis.Redis, broker: redis.Redis, database_url: str | None = None) -> None:
        self.r = r
        self.broker = broker
        self.database_url = database_url

    def _hash(self, name: str) -> dict[str, str]:
        raw: dict[object, object] = self.r.hgetall(keys.metrics(name))  # type: ignore[assignment]
        return {_text(k): _text(v) for k, v in raw.items()}

    def collect(self) -> Iterator[Metric]:
        yield from self._messages()
        yield from self._latency()
        yield from self._waits()
        yield from self._batches()
        yield self._queues()
        yield self._runs()

    def _messages(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "dispatcher_messages", "Provider calls by outcome", labels=["channel", "provider", "outcome", "code"]
        )
        for field, value in self._hash("messages").items():
            family.add_metric(field.split(SEP), float(value))
        yield family

    def _latency(self) -> Iterator[Metric]:
        raw = self._hash("latency")
        series: dict[tuple[str, str], dict[str, float]] = {}
        for field, value in raw.items():
            channel, provider, le = field.split(SEP)
            series.setdefault((channel, provider), {})[le] = float(value)
        family = HistogramMetricFamily(
            "dispatcher_send_latency_seconds", "Provider call latency", labels=["channel", "provider"]
        )
        for labels, counts in series.items():
            cumulative, buckets = 0.0, []
            for bound in [*map(str, LATENCY_BUCKETS), "+Inf"]:
                cumulative += counts.get(bound, 0.0)
                buckets.append((bound, cumulative))
            family.add_metric(list(labels), buckets, counts.get("sum", 0.0))
        yield family

    def _waits(self) -> Iterator[Metric]:
        waits = CounterMetricFamily(
            "dispatcher_limiter_waits",
            "Sends that waited for the sender's limit or a provider pause",
            labels=["sender", "kind"],
        )
        for field, value in self._hash("waits").items():
            waits.add_metric(field.split(SEP), float(value))
        yield waits
        seconds = CounterMetricFamily(
            "dispatcher_limiter_wait_seconds", "Seconds waited, by kind", labels=["sender", "kind"]
        )
        for field, value in self._hash("wait_seconds").items():
            seconds.add_metric(field.split(SEP), float(value))
        yield seconds

    def _batches(self) -> Iterator[Metric]:
        """Workers consume sends in batches (Flower shows those, not one task per recipient)."""
        count = CounterMetricFamily("dispatcher_send_batches", "Send batches consumed", labels=["channel"])
        size = CounterMetricFamily(
            "dispatcher_send_batch_messages", "Messages consumed in send batches", labels=["channel"]
        )
        for field, value in self._hash("batches").items():
            channel, kind = field.split(SEP)
            (count if kind == "count" else size).add_metric([channel], float(value))
        yield count
        yield size

    def _queues(self) -> Metric:
        family = GaugeMetricFamily("dispatcher_queue_length", "Messages waiting in each broker queue", labels=["queue"])
        pipe = self.broker.pipeline(transaction=False)
        for queue in contracts.ALL_QUEUES:
            # kombu keeps one list per priority step: "queue" and "queue\x06\x16<p>" (as Flower counts them).
            for name in (queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))):
                pipe.llen(name)
        lengths = pipe.execute()
        for i, queue in enumerate(contracts.ALL_QUEUES):
            family.add_metric([queue], float(sum(lengths[i * 4 : i * 4 + 4])))
        return family

    def _runs(self) -> Metric:
        family = GaugeMetricFamily("dispatcher_runs", "Campaign runs by status", labels=["status"])
        with session_factory(self.database_url)() as session:
            for status, count in session.execute(select(Run.status, func.count()).group_by(Run.status)):
                family.add_metric([str(status)], float(count))
        return family


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
