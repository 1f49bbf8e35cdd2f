"""Prometheus metrics of a scheduler instance.

Gauges of tasks, replicates and live workers are read from the database when scraped, so
every instance sharing it reports the same pool; counters are this instance's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from decloud.scheduler.policy import Policy
from decloud.scheduler.state import REPLICATE_STATES, TASK_STATES
from decloud.scheduler.store import alive_workers, replicate_counts, task_counts
from decloud.service.db import Database


class _PoolCollector(Collector):
    def __init__(self, database: Database, policy: Policy) -> None:
        self._database = database
        self._policy = policy

    def collect(self) -> Iterator[Metric]:
        with self._database.transaction() as session:
            tasks = task_counts(session)
            replicates = replicate_counts(session)
            alive = alive_workers(session, time.time(), self._policy)
        task_gauge = GaugeMetricFamily(
            "decloud_scheduler_tasks", "Tasks by state", labels=["state"]
        )
        for state in sorted(TASK_STATES):
            task_gauge.add_metric([state], tasks.get(state, 0))
        yield task_gauge
        replicate_gauge = GaugeMetricFamily(
            "decloud_scheduler_replicates", "Replicates by state", labels=["state"]
        )
        for replicate_state in sorted(REPLICATE_STATES):
            replicate_gauge.add_metric([replicate_state], replicates.get(replicate_state, 0))
        yield replicate_gauge
        yield GaugeMetricFamily(
            "decloud_scheduler_workers_alive", "Workers that pinged recently", value=alive
        )


class SchedulerMetrics:
    """The registry `/metrics` serves, and the counters the instance updates."""

    def __init__(self, database: Database, policy: Policy) -> None:
        self.registry = CollectorRegistry()
        self.pulls = Counter(
            "decloud_scheduler_pulls",
            "Pulls by workers, by outcome (assigned, none)",
            ["outcome"],
            registry=self.registry,
        )
        self.reports = Counter(
            "decloud_scheduler_reports",
            "Worker reports, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.actions = Counter(
            "decloud_scheduler_actions",
            "Chain transactions sent, by action and outcome (mined, refused)",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(database, policy))

    def render(self) -> bytes:
        return generate_latest(self.registry)
