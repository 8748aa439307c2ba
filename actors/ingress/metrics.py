"""`/metrics` in Prometheus text format (prometheus-client), one registry per suite.

HTTP requests are counted and timed as they happen; everything else is read when scraped,
from the store (the truth) and the suite's counters: messages by channel and direction,
leads by class and channel, LLM calls/errors/tokens/latency, actor restarts, outbox and
owner-notification queues, backup age. With `METRICS_TOKEN` set, a scrape must send it as
a bearer token."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from quart import Blueprint, Quart, Response, g, request

from store import backups
from store.db import from_text
from supervisor.supervisor import ActorState

from .context import IngressContext
from .responses import error_response

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StoreCollector(Collector):
    """Families read at scrape time from the store and the suite's counters."""

    def __init__(self, ctx: IngressContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        yield from self._messages()
        yield from self._queues()
        yield from self._llm()
        yield from self._actors()
        yield from self._backup()

    def _messages(self) -> Iterator[Metric]:
        db = self.ctx.db
        messages = CounterMetricFamily(
            "ia_messages",
            "Messages stored, by channel and direction",
            labels=["channel", "direction"],
        )
        for channel, role, n in db.rows(
            # Not the sandbox's (store/sandbox.py: keys that start with `sim:`).
            "SELECT channel, role, count(*) FROM messages WHERE conversation_id NOT IN"
            " (SELECT id FROM conversations WHERE substr(external_key, 1, 4) = 'sim:')"
            " GROUP BY channel, role"
        ):
            direction = "in" if role == "user" else "out"
            messages.add_metric([str(channel), direction], float(str(n)))
        yield messages

        leads = GaugeMetricFamily(
            "ia_leads", "Leads by class and channel", labels=["classification", "channel"]
        )
        for klass, channel, n in db.rows(
            "SELECT classification, channel, count(*) FROM leads WHERE sandbox = 0"
            " GROUP BY classification, channel"
        ):
            leads.add_metric([str(klass), str(channel)], float(str(n)))
        yield leads

    def _queues(self) -> Iterator[Metric]:
        db, notifier = self.ctx.db, self.ctx.suite.notifier_stats
        outbox = GaugeMetricFamily(
            "ia_outbox", "Sends to WhatsApp/Instagram by state", labels=["channel", "status"]
        )
        for channel, status, n in db.rows(
            "SELECT channel, status, count(*) FROM outbox WHERE status IN ('pending', 'failed')"
            " GROUP BY channel, status"
        ):
            outbox.add_metric([str(channel), str(status)], float(str(n)))
        yield outbox

        owner = GaugeMetricFamily(
            "ia_owner_notifications",
            "E-mails and webhooks to the owner by state",
            labels=["status"],
        )
        for status, n in db.rows(
            "SELECT status, count(*) FROM owner_notifications GROUP BY status"
        ):
            owner.add_metric([str(status)], float(str(n)))
        yield owner

        resent = CounterMetricFamily(
            "ia_resent_after_crash",
            "Sends cut mid-request by a crash and sent again (each at most one duplicate)",
            labels=["kind"],
        )
        resent.add_metric(["messaging"], notifier.sends_resent_after_crash)
        resent.add_metric(["owner"], notifier.owner_resent_after_crash)
        yield resent

    def _llm(self) -> Iterator[Metric]:
        llm = self.ctx.suite.llm_stats
        yield CounterMetricFamily("ia_llm_calls", "LLM calls (attempts)", value=llm.calls)
        yield CounterMetricFamily("ia_llm_errors", "LLM answers given up", value=llm.errors)
        tokens = CounterMetricFamily("ia_llm_tokens", "LLM tokens used", labels=["kind"])
        tokens.add_metric(["prompt"], llm.prompt_tokens)
        tokens.add_metric(["completion"], llm.completion_tokens)
        yield tokens
        latency = HistogramMetricFamily("ia_llm_latency_seconds", "LLM call latency")
        latency.add_metric([], llm.latency.cumulative(), sum_value=llm.latency.total)
        yield latency

    def _actors(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "ia_actor_restarts", "Restarts of each actor", labels=["actor"]
        )
        up = GaugeMetricFamily("ia_actor_up", "1 when the actor is running", labels=["actor"])
        for actor in self.ctx.suite.actors():
            restarts.add_metric([actor.name], actor.restarts)
            up.add_metric([actor.name], 1.0 if actor.state == ActorState.RUNNING else 0.0)
        yield restarts
        yield up

    def _backup(self) -> Iterator[Metric]:
        last_good = backups.last_good_at(self.ctx.db)
        if last_good is not None:
            at = from_text(last_good)
            yield GaugeMetricFamily(
                "ia_backup_age_seconds",
                "Seconds since the last good backup",
                value=(datetime.now(UTC) - at).total_seconds(),
            )


class Metrics:
    def __init__(self, ctx: IngressContext) -> None:
        self.ctx = ctx
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "ia_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ia_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StoreCollector(ctx))

    def instrument(self, app: Quart) -> None:
        @app.before_request
        async def started() -> None:
            g.metrics_started = time.perf_counter()

        @app.after_request
        async def observed(response: Response) -> Response:
            # The route's pattern, never the raw path: ids would make endless series.
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            self.requests.labels(route, request.method, str(response.status_code)).inc()
            began = getattr(g, "metrics_started", None)
            if began is not None:
                self.latency.labels(route).observe(time.perf_counter() - began)
            return response

    def blueprint(self) -> Blueprint:
        bp = Blueprint("metrics", __name__)
        token = self.ctx.settings.metrics_token

        @bp.get("/metrics")
        async def metrics() -> Response:
            if token:
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return error_response(401, "Falta el token de métricas (METRICS_TOKEN)")
            return Response(generate_latest(self.registry), content_type=CONTENT_TYPE)

        return bp
