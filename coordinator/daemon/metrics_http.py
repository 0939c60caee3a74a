"""`/metrics` for Prometheus (prometheus-client): read from the live coordinator at each
scrape, so nothing is kept twice. Off unless `metrics_listen` is set (e.g. 127.0.0.1:9464).

Per node: state (one series per state, 1 for the current), CPU and GPU utilisation, power,
energy; GPUs that are not healthy, drains, and health changes by kind. Ingest: messages
received by kind, dropped by reason, samples stored and buffered, lag, resends asked, retried
and given up, duplicates. Queue: jobs by state.
Power: actions by kind (sleep, wake, failed, ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.core.lag import LagStats
from coordinator.core.nodestate import NodeState
from coordinator.core.registry import NodeView, gpu_health

if TYPE_CHECKING:
    from coordinator.daemon.coordinator import Coordinator

NODE_FIGURES = (
    ("cpu_util_pct", "dormouse_node_cpu_utilisation_percent", "CPU utilisation"),
    ("gpu_util_pct", "dormouse_node_gpu_utilisation_percent", "mean GPU utilisation"),
    ("power_w", "dormouse_node_power_watts", "node power (RAPL + GPUs)"),
    (
        "spool_memory_samples",
        "dormouse_node_spool_memory_samples",
        "samples the agent holds in memory: its spool file takes no writes",
    ),
)

RESEND_FIGURES = (
    ("resends_sent", "dormouse_resends_sent", "resend requests sent to agents"),
    ("resend_retries", "dormouse_resend_retries", "requests for a gap asked before"),
    ("gaps_given_up", "dormouse_gaps_given_up", "gaps given up after the last attempt"),
    ("seqs_lost", "dormouse_seqs_lost", "samples given up: their agent did not resend them"),
    ("duplicates", "dormouse_samples_duplicate", "samples received that were stored already"),
)


def lag_summary(lag: LagStats) -> Metric:
    """A real summary (quantiles, _sum, _count): prometheus_client's SummaryMetricFamily
    has no quantiles, so the samples are added by hand."""
    name = "dormouse_ingest_lag_seconds"
    summary = Metric(name, "sample timestamp to store commit", "summary")
    for q, value in lag.quantiles().items():
        summary.add_sample(name, {"quantile": str(q)}, value)
    summary.add_sample(f"{name}_sum", {}, lag.sum_s)
    summary.add_sample(f"{name}_count", {}, float(lag.count))
    return summary


class CoordinatorCollector(Collector):
    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    def collect(self) -> Iterator[Metric]:
        yield from self._nodes()
        yield from self._ingest()
        yield from self._queue()
        yield from self._power()
        yield from self._costs()

    def _nodes(self) -> Iterator[Metric]:
        views = list(self._coordinator.parts.ingest.registry.nodes.values())
        state = GaugeMetricFamily(
            "dormouse_node_state", "1 for the node's state", labels=["node", "state"]
        )
        for view in views:
            for name in NodeState:
                state.add_metric([view.name, name.value], 1.0 if view.state is name else 0.0)
        yield state
        for key, metric, doc in NODE_FIGURES:
            family = GaugeMetricFamily(metric, doc, labels=["node"])
            for view in views:
                value = view.latest.get(key)
                if value is not None:
                    family.add_metric([view.name], float(value))
            yield family
        energy = CounterMetricFamily(
            "dormouse_node_energy_joules",
            "energy measured since the coordinator started",
            labels=["node"],
        )
        for node, joules in sorted(self._coordinator.parts.energy.joules.items()):
            energy.add_metric([node], joules)
        yield energy
        yield from self._gpu_health(views)

    def _gpu_health(self, views: list[NodeView]) -> Iterator[Metric]:
        unwell = GaugeMetricFamily(
            "dormouse_gpu_unhealthy",
            "1 for each GPU the agent judges degraded or failed",
            labels=["node", "gpu", "health"],
        )
        drained = GaugeMetricFamily(
            "dormouse_drained", "1 for each drained node (gpu -1) or GPU", labels=["node", "gpu"]
        )
        for view in views:
            for index, (health, _) in sorted(gpu_health(view).items()):
                unwell.add_metric([view.name, str(index), health], 1.0)
            for index in sorted(view.drains):
                drained.add_metric([view.name, str(index)], 1.0)
        yield unwell
        yield drained
        changes = CounterMetricFamily(
            "dormouse_gpu_health_changes",
            "GPU health changes seen, by the new health",
            labels=["health"],
        )
        for health, count in sorted(self._coordinator.parts.ingest.registry.health_counts.items()):
            changes.add_metric([health], count)
        yield changes

    def _ingest(self) -> Iterator[Metric]:
        ingest, writer = self._coordinator.parts.ingest, self._coordinator.parts.writer
        received = CounterMetricFamily(
            "dormouse_messages_received", "messages by kind", labels=["kind"]
        )
        for kind, count in sorted(ingest.received.items()):
            received.add_metric([kind], count)
        yield received
        dropped = CounterMetricFamily(
            "dormouse_messages_dropped", "messages dropped by reason", labels=["reason"]
        )
        for reason, count in sorted(ingest.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily(
            "dormouse_samples_stored", "samples written to the store", value=writer.stored
        )
        yield GaugeMetricFamily(
            "dormouse_samples_buffered", "samples waiting for the store", value=writer.buffered
        )
        yield lag_summary(writer.lag)
        yield from self._resends()

    def _resends(self) -> Iterator[Metric]:
        figures = self._coordinator.stats()
        for key, name, doc in RESEND_FIGURES:
            yield CounterMetricFamily(name, doc, value=figures.get(key, 0.0))

    def _queue(self) -> Iterator[Metric]:
        states = Counter(job.state.value for job in self._coordinator.parts.dispatcher.last.active)
        jobs = GaugeMetricFamily("dormouse_jobs", "active jobs by state", labels=["state"])
        for state in ("pending", "placed", "running"):
            jobs.add_metric([state], states.get(state, 0))
        yield jobs
        yield CounterMetricFamily(
            "dormouse_jobs_placed",
            "placements made",
            value=self._coordinator.parts.dispatcher.placed,
        )

    def _power(self) -> Iterator[Metric]:
        actions = CounterMetricFamily(
            "dormouse_power_events", "sleeps, wakes, failures and transitions", labels=["kind"]
        )
        for kind, count in sorted(self._coordinator.parts.power.counts.items()):
            actions.add_metric([kind], count)
        yield actions

    def _costs(self) -> Iterator[Metric]:
        """Budgets and waste per account (the fleet's own budget: account "")."""
        costs = self._coordinator.parts.dispatcher.costs
        if costs is None:
            return
        spent = GaugeMetricFamily(
            "dormouse_account_spent", "spent this budget period", labels=["account"]
        )
        limit = GaugeMetricFamily(
            "dormouse_account_budget", "budget per budget period", labels=["account"]
        )
        for standing in costs.standings:
            spent.add_metric([standing.account], standing.spent)
            limit.add_metric([standing.account], standing.budget)
        yield spent
        yield limit
        wasted = GaugeMetricFamily(
            "dormouse_wasted_gpus",
            "GPUs held by running jobs that leave them idle past waste_after",
            labels=["account"],
        )
        for account, gpus in sorted(costs.wasted.items()):
            wasted.add_metric([account], gpus)
        yield wasted
