"""/metrics as a pure function of snapshots: one `ProcessFigures` per worker (labelled
`worker="node/N"`) and the store's `ClusterFigures` (no worker label). Nothing here reads a
clock, a process or the store, so the page can be rendered from any worker's snapshot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from store.figures import ClusterFigures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class HistogramFigures:
    buckets: tuple[tuple[str, int], ...]  # (upper bound, cumulative count), +Inf last
    total: float  # the sum of the observations, seconds

    @property
    def count(self) -> int:
        return self.buckets[-1][1] if self.buckets else 0


@dataclass(frozen=True)
class ActorFigures:
    name: str
    up: bool
    restarts: int
    recent_restarts: int


@dataclass(frozen=True)
class ProcessFigures:
    worker: str
    requests: dict[tuple[str, str, str, str], int]  # (route class, route, method, status)
    request_seconds: dict[str, HistogramFigures]  # by route class
    chat_beyond_model: HistogramFigures
    llm_calls: int
    llm_answers: int
    llm_errors: int
    llm_timeouts: int
    llm_retries: int
    llm_failures_in_a_row: int
    llm_tokens: dict[str, int]  # prompt | completion
    llm_cost_usd: float
    llm_seconds: HistogramFigures
    actors: tuple[ActorFigures, ...]
    resent_after_crash: dict[str, int]  # messaging | owner
    owner_attempts: dict[str, int]  # sent | failed: attempts at the owner's e-mail/webhook
    health: str  # ok | degraded | failing
    cpu_seconds: float
    resident_bytes: int
    open_fds: int
    start_time: float  # Unix time
    disk_free_bytes: int | None = None  # the store's disk (None: PostgreSQL's is elsewhere)
    disk_size_bytes: int | None = None
    memory: dict[str, int] = field(default_factory=dict)  # the server's: total | available
    load1: float = 0.0


K = TypeVar("K", str, tuple[str, str])
HEALTH_STATES = ("ok", "degraded", "failing")
# Known label values get a 0 when the store has none yet: a panel or alert sees 0, not
# "no data".
CHANNELS = ("web", "whatsapp", "instagram")
MESSAGING = ("whatsapp", "instagram")
CLASSES = ("frio", "tibio", "caliente")
OUTBOX_STATES = ("pending", "failed")
NOTICE_KINDS = ("owner", "ops")
NOTICE_STATES = ("pending", "sending", "sent", "failed")


def _filled(found: dict[K, int], keys: Sequence[K]) -> list[tuple[K, int]]:
    """`found` with every key of `keys` present (0 when missing), in a stable order."""
    return sorted({**dict.fromkeys(keys, 0), **found}.items())


def _pairs(first: Sequence[str], second: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in first for b in second]


def render(processes: Sequence[ProcessFigures], cluster: ClusterFigures | None) -> bytes:
    """The page; without `cluster` (the store did not answer) only the processes' series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(processes, cluster))
    return generate_latest(registry)


class _Snapshot(Collector):
    def __init__(self, processes: Sequence[ProcessFigures], cluster: ClusterFigures | None) -> None:
        self.processes = processes
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        yield from _http(self.processes)
        yield from _llm(self.processes)
        yield from _actors(self.processes)
        yield from _process(self.processes)
        yield from _delivery(self.processes, self.cluster)
        if self.cluster is not None:
            yield from _business(self.cluster)
            yield from _backups(self.cluster)


def _counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _histogram(family: HistogramMetricFamily, labels: list[str], h: HistogramFigures) -> None:
    family.add_metric(labels, list(h.buckets), sum_value=h.total)


def _http(processes: Sequence[ProcessFigures]) -> Iterator[Metric]:
    requests = _counter(
        "ia_http_requests",
        "HTTP requests by route class, route pattern, method and status",
        ["worker", "route_class", "route", "method", "status"],
    )
    latency = HistogramMetricFamily(
        "ia_http_request_duration_seconds",
        "HTTP request latency by route class, seconds",
        labels=["worker", "route_class"],
    )
    beyond = HistogramMetricFamily(
        "ia_chat_beyond_model_seconds",
        "Web chat answers: request time minus the model's time (the 500 ms budget), seconds",
        labels=["worker"],
    )
    for p in processes:
        for (klass, route, method, status), n in sorted(p.requests.items()):
            requests.add_metric([p.worker, klass, route, method, status], n)
        for klass, h in sorted(p.request_seconds.items()):
            _histogram(latency, [p.worker, klass], h)
        _histogram(beyond, [p.worker], p.chat_beyond_model)
    yield from (requests, latency, beyond)


def _llm(processes: Sequence[ProcessFigures]) -> Iterator[Metric]:
    w = ["worker"]
    calls = _counter("ia_llm_calls", "Calls to the model (attempts, retries included)", w)
    answers = _counter("ia_llm_answers", "Turns the model answered", w)
    errors = _counter("ia_llm_errors", "Turns the model failed after retries (a fallback)", w)
    timeouts = _counter("ia_llm_timeouts", "Failed turns that ran out of time", w)
    retries = _counter("ia_llm_retries", "Calls to the model repeated after a failure", w)
    in_a_row = _gauge("ia_llm_failures_in_a_row", "Turns the model failed since its last answer", w)
    tokens = _counter("ia_llm_tokens", "Tokens used by the model", ["worker", "kind"])
    cost = _counter("ia_llm_cost_usd", "Model cost at LLM_PRICE_*_PER_MTOK, US dollars", w)
    latency = HistogramMetricFamily(
        "ia_llm_latency_seconds", "Model call latency, seconds", labels=w
    )
    for p in processes:
        calls.add_metric([p.worker], p.llm_calls)
        answers.add_metric([p.worker], p.llm_answers)
        errors.add_metric([p.worker], p.llm_errors)
        timeouts.add_metric([p.worker], p.llm_timeouts)
        retries.add_metric([p.worker], p.llm_retries)
        in_a_row.add_metric([p.worker], p.llm_failures_in_a_row)
        for kind, n in sorted(p.llm_tokens.items()):
            tokens.add_metric([p.worker, kind], n)
        cost.add_metric([p.worker], p.llm_cost_usd)
        _histogram(latency, [p.worker], p.llm_seconds)
    yield from (calls, answers, errors, timeouts, retries, in_a_row, tokens, cost, latency)


def _actors(processes: Sequence[ProcessFigures]) -> Iterator[Metric]:
    labels = ["worker", "actor"]
    restarts = _counter("ia_actor_restarts", "Restarts of each actor", labels)
    recent = _gauge(
        "ia_actor_recent_restarts", "Restarts inside the supervisor's intensity period", labels
    )
    up = _gauge("ia_actor_up", "1 when the actor is running", labels)
    health = _gauge(
        "ia_health_status", "1 for the status /health/detailed reports", ["worker", "status"]
    )
    for p in processes:
        for a in p.actors:
            restarts.add_metric([p.worker, a.name], a.restarts)
            recent.add_metric([p.worker, a.name], a.recent_restarts)
            up.add_metric([p.worker, a.name], 1.0 if a.up else 0.0)
        for status in HEALTH_STATES:
            health.add_metric([p.worker, status], 1.0 if p.health == status else 0.0)
    yield from (restarts, recent, up, health)


def _process(processes: Sequence[ProcessFigures]) -> Iterator[Metric]:
    w = ["worker"]
    cpu = _counter("process_cpu_seconds", "CPU time of the process, seconds", w)
    rss = _gauge("process_resident_memory_bytes", "Resident memory of the process, bytes", w)
    fds = _gauge("process_open_fds", "Open file descriptors of the process", w)
    start = _gauge("process_start_time_seconds", "Start of the process, Unix time", w)
    free = _gauge("ia_disk_free_bytes", "Free space on the store's disk, bytes", w)
    size = _gauge("ia_disk_size_bytes", "Size of the store's disk, bytes", w)
    memory = _gauge("ia_system_memory_bytes", "The server's memory, bytes", ["worker", "kind"])
    load = _gauge("ia_system_load1", "The server's load average over 1 minute", w)
    for p in processes:
        cpu.add_metric([p.worker], p.cpu_seconds)
        rss.add_metric([p.worker], p.resident_bytes)
        fds.add_metric([p.worker], p.open_fds)
        start.add_metric([p.worker], p.start_time)
        if p.disk_free_bytes is not None and p.disk_size_bytes is not None:
            free.add_metric([p.worker], p.disk_free_bytes)
            size.add_metric([p.worker], p.disk_size_bytes)
        for kind, n in sorted(p.memory.items()):
            memory.add_metric([p.worker, kind], n)
        load.add_metric([p.worker], p.load1)
    yield from (cpu, rss, fds, start, free, size, memory, load)


def _business(c: ClusterFigures) -> Iterator[Metric]:
    messages = _counter(
        "ia_messages", "Messages stored, by channel and direction", ["channel", "direction"]
    )
    for (channel, direction), n in _filled(c.messages, _pairs(CHANNELS, ("in", "out"))):
        messages.add_metric([channel, direction], n)
    leads = _gauge("ia_leads", "Leads by class and channel", ["classification", "channel"])
    for (klass, channel), n in _filled(c.leads, _pairs(CLASSES, CHANNELS)):
        leads.add_metric([klass, channel], n)
    created = _counter("ia_leads_created", "Leads created, by channel", ["channel"])
    for channel, n in _filled(c.leads_created, CHANNELS):
        created.add_metric([channel], n)
    changes = _counter(
        "ia_lead_class_changes",
        "Changes of class of leads, by channel and the class reached",
        ["channel", "classification"],
    )
    for (channel, klass), n in _filled(c.class_changes, _pairs(CHANNELS, CLASSES)):
        changes.add_metric([channel, klass], n)
    conversions = _gauge(
        "ia_lead_conversions",
        "Leads contacted and won, by channel (as the owner marks them)",
        ["channel", "stage"],
    )
    for (channel, stage), n in _filled(c.conversions, _pairs(CHANNELS, ("contacted", "won"))):
        conversions.add_metric([channel, stage], n)
    yield from (messages, leads, created, changes, conversions)


def _delivery(processes: Sequence[ProcessFigures], c: ClusterFigures | None) -> Iterator[Metric]:
    attempts = _counter(
        "ia_owner_notification_attempts",
        "Attempts at e-mails and webhooks to the owner and operations, by outcome",
        ["worker", "outcome"],
    )
    resent = _counter(
        "ia_resent_after_crash",
        "Sends cut mid-request by a crash and sent again (each at most one duplicate)",
        ["worker", "kind"],
    )
    for p in processes:
        for outcome, n in sorted(p.owner_attempts.items()):
            attempts.add_metric([p.worker, outcome], n)
        for kind, n in sorted(p.resent_after_crash.items()):
            resent.add_metric([p.worker, kind], n)
    yield from (attempts, resent)
    if c is not None:
        yield from _queues(c)


def _queues(c: ClusterFigures) -> Iterator[Metric]:
    outbox = _gauge(
        "ia_outbox_messages",
        "Sends to WhatsApp/Instagram waiting or failed, by channel and state",
        ["channel", "status"],
    )
    for (channel, status), n in _filled(c.outbox, _pairs(MESSAGING, OUTBOX_STATES)):
        outbox.add_metric([channel, status], n)
    owner = _gauge(
        "ia_owner_notifications",
        "E-mails and webhooks to the owner (kind owner) and to operations (kind ops), by state",
        ["kind", "status"],
    )
    for (kind, status), n in _filled(c.owner_notifications, _pairs(NOTICE_KINDS, NOTICE_STATES)):
        owner.add_metric([kind, status], n)
    failing = _gauge(
        "ia_owner_notifications_failing",
        "Notifications whose last attempt failed (retrying, or failed for good in the last hour)",
        ["kind"],
    )
    for kind, n in _filled(c.owner_failing, NOTICE_KINDS):
        failing.add_metric([kind], n)
    yield from (outbox, owner, failing)


def _backups(c: ClusterFigures) -> Iterator[Metric]:
    backups = _counter("ia_backups", "Backups attempted, by outcome", ["outcome"])
    for outcome in ("ok", "failed"):
        backups.add_metric([outcome], c.backups.get(outcome, 0))
    yield backups
    # Declared even before the first backup (no sample: the alert sees it absent).
    last = _gauge(
        "ia_backup_last_success_timestamp_seconds",
        "When the newest good backup was taken, Unix time",
        [],
    )
    if c.backup_last_success is not None:
        last.add_metric([], c.backup_last_success)
    attempt = _gauge("ia_backup_last_attempt_ok", "1 when the newest backup attempt succeeded", [])
    if c.backup_last_attempt_ok is not None:
        attempt.add_metric([], 1.0 if c.backup_last_attempt_ok else 0.0)
    yield from (last, attempt)


def figures_to_json(p: ProcessFigures) -> dict[str, Any]:
    """One worker's snapshot as JSON, for its peers' /metrics (over the control socket)."""
    return {
        **{f.name: getattr(p, f.name) for f in fields(p)},
        "requests": [[*key, n] for key, n in p.requests.items()],
        "request_seconds": {k: _histogram_json(h) for k, h in p.request_seconds.items()},
        "chat_beyond_model": _histogram_json(p.chat_beyond_model),
        "llm_seconds": _histogram_json(p.llm_seconds),
        "actors": [asdict(a) for a in p.actors],
    }


def figures_from_json(data: dict[str, Any]) -> ProcessFigures:
    """The inverse of `figures_to_json` (raises KeyError/TypeError/ValueError on a bad one)."""
    known = {f.name for f in fields(ProcessFigures)}
    return ProcessFigures(
        **{
            **{k: v for k, v in data.items() if k in known},
            "requests": {
                (str(a), str(b), str(c), str(d)): int(n) for a, b, c, d, n in data["requests"]
            },
            "request_seconds": {
                str(k): _histogram_of(h) for k, h in data["request_seconds"].items()
            },
            "chat_beyond_model": _histogram_of(data["chat_beyond_model"]),
            "llm_seconds": _histogram_of(data["llm_seconds"]),
            "actors": tuple(ActorFigures(**a) for a in data["actors"]),
        }
    )


def _histogram_json(h: HistogramFigures) -> dict[str, Any]:
    return {"buckets": [list(b) for b in h.buckets], "total": h.total}


def _histogram_of(data: dict[str, Any]) -> HistogramFigures:
    buckets = tuple((str(le), int(n)) for le, n in data["buckets"])
    return HistogramFigures(buckets, float(data["total"]))
