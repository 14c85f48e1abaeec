"""Prometheus metrics. Counters live in the process that counts; queue gauges are read from the
database when ``/metrics`` is scraped, so any process's web endpoint reports the desk's backlog."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SMTP_ACCEPTED = Counter("abuse_desk_smtp_accepted", "Messages accepted with 250 after storing")
SMTP_REJECTED = Counter(
    "abuse_desk_smtp_rejected", "SMTP commands refused, by reason", ["reason"])
SMTP_BYTES = Counter("abuse_desk_smtp_bytes", "Bytes of accepted messages")
STORE_COMMIT_SECONDS = Histogram(
    "abuse_desk_store_commit_seconds", "Time of one group commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
STORE_BATCH_SIZE = Histogram(
    "abuse_desk_store_batch_messages", "Messages per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
ENQUEUE_FAILURES = Counter(
    "abuse_desk_enqueue_failures", "Broker sends that failed (the sweeper re-sends them)")
SWEEPER_RESENT = Counter(
    "abuse_desk_sweeper_resent", "Messages re-sent to the broker by the sweeper")
PROCESSED = Counter("abuse_desk_messages_processed", "Messages processed, by outcome", ["outcome"])
IMPORTED = Counter("abuse_desk_imported", "Messages stored by `abuse-desk import`")


class BacklogCollector(Collector):
    """Messages by state and the queue lag (age of the oldest unprocessed message)."""

    def __init__(self, read: Callable[[], tuple[dict[str, int], float]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts, lag = self._read()
        by_state = GaugeMetricFamily(
            "abuse_desk_messages", "Stored messages by state", labels=["state"])
        for state, n in sorted(counts.items()):
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily(
            "abuse_desk_queue_lag_seconds",
            "Age of the oldest message still waiting to be processed", value=lag)
