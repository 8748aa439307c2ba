"""`/metrics` in Prometheus text format. With `METRICS_TOKEN` set, a scrape must send it as a
bearer token.

This process counts and times its HTTP requests as they happen (`HttpFigures`); at scrape
time its figures (HTTP, model, actors, the process, its disk) are taken as one
`ProcessFigures` snapshot, the store's as `ClusterFigures`, and metrics_render.py turns them
into the page."""

from __future__ import annotations

import bisect
import hmac
import os
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import psutil
import trio
from quart import Blueprint, Quart, Response, g, request

from sales import identity
from store import figures
from store.errors import StoreError
from supervisor import control, workers
from supervisor.supervisor import ActorState

from .context import IngressContext
from .health import StoreWrites, overall
from .metrics_render import (
    CONTENT_TYPE,
    ActorFigures,
    HistogramFigures,
    ProcessFigures,
    figures_from_json,
    figures_to_json,
    render,
)
from .responses import error_response

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MTOK = 1_000_000
CHAT_ROUTE = "/api/chat"
PEER_TIMEOUT = 2.0  # seconds a scrape waits for another worker's figures


def route_class(route: str) -> str:
    """A few classes for latency and errors: the chat, Meta's webhooks, the owner's API,
    health, metrics, pages; `unmatched` for paths no route knows."""
    if route == "unmatched":
        return "unmatched"
    if route.startswith("/api/chat"):
        return "chat"
    if route.startswith("/webhook"):
        return "webhook"
    if route.startswith("/api/"):
        return "api"
    if route.startswith("/health"):
        return "health"
    if route == "/metrics":
        return "metrics"
    return "page"


class Buckets:
    """A latency histogram with fixed bounds, cheap enough for every request."""

    def __init__(self, bounds: tuple[float, ...] = HTTP_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def snapshot(self) -> HistogramFigures:
        return cumulative(self.bounds, self.counts, self.total)


def cumulative(bounds: tuple[float, ...], counts: list[int], total: float) -> HistogramFigures:
    running, out = 0, []
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        running += count
        out.append((bound, running))
    return HistogramFigures(tuple(out), total)


class HttpFigures:
    """Requests by (route class, route, method, status), latency by route class, and the web
    chat's time beyond the model's."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.seconds: dict[str, Buckets] = {}
        self.chat_beyond_model = Buckets()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        klass = route_class(route)
        key = (klass, route, method, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        self.seconds.setdefault(klass, Buckets()).observe(seconds)

    def chat_answered(self, seconds: float, model_seconds: float) -> None:
        self.chat_beyond_model.observe(max(0.0, seconds - model_seconds))


class Metrics:
    def __init__(self, ctx: IngressContext) -> None:
        self.ctx = ctx
        self.http = HttpFigures()
        me = identity.current()
        self.worker, self.number = me.name, me.worker
        self.process = psutil.Process(os.getpid())
        self.writes = StoreWrites(ctx.db, ctx.settings.disk_min_free_mb)
        # What this worker's peers ask over its control socket for their /metrics.
        ctx.suite.figures = lambda: figures_to_json(self.snapshot())

    def instrument(self, app: Quart) -> None:
        @app.before_request
        async def started() -> None:
            g.metrics_started = time.perf_counter()

        @app.after_request
        async def observed(response: Response) -> Response:
            # The route's pattern, never the raw path: ids would make endless series.
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            began = getattr(g, "metrics_started", None)
            took = 0.0 if began is None else time.perf_counter() - began
            self.http.observe(route, request.method, response.status_code, took)
            model_seconds = getattr(g, "model_seconds", None)
            if model_seconds is not None and route == CHAT_ROUTE and response.status_code == 200:
                self.http.chat_answered(took, model_seconds)
            return response

    def snapshot(self) -> ProcessFigures:
        """This process's figures now."""
        ctx = self.ctx
        llm, notifier = ctx.suite.llm_stats, ctx.suite.notifier_stats
        settings = ctx.settings
        actors = ctx.suite.actors()
        try:
            status, _reasons = overall(ctx, self.writes, actors)
        except StoreError:
            status = "failing"  # the store does not answer; the process's figures still do
        with self.process.oneshot():
            cpu = self.process.cpu_times()
            rss = self.process.memory_info().rss
            fds = self.process.num_fds()
            start = self.process.create_time()
        memory = psutil.virtual_memory()
        free, size = _disk(settings.database_path if ctx.db.path else settings.log_dir)
        cost = (
            llm.prompt_tokens * settings.llm_price_input_per_mtok
            + llm.completion_tokens * settings.llm_price_output_per_mtok
        ) / MTOK
        return ProcessFigures(
            worker=self.worker,
            requests=dict(self.http.requests),
            request_seconds={k: b.snapshot() for k, b in self.http.seconds.items()},
            chat_beyond_model=self.http.chat_beyond_model.snapshot(),
            llm_calls=llm.calls,
            llm_answers=llm.answers,
            llm_errors=llm.errors,
            llm_timeouts=llm.timeouts,
            llm_retries=llm.retries,
            llm_failures_in_a_row=llm.failures_in_a_row,
            llm_tokens={"prompt": llm.prompt_tokens, "completion": llm.completion_tokens},
            llm_cost_usd=cost,
            llm_seconds=HistogramFigures(tuple(llm.latency.cumulative()), llm.latency.total),
            actors=tuple(
                ActorFigures(a.name, a.state == ActorState.RUNNING, a.restarts, a.recent_restarts)
                for a in actors
            ),
            resent_after_crash={
                "messaging": notifier.sends_resent_after_crash,
                "owner": notifier.owner_resent_after_crash,
            },
            owner_attempts={
                "sent": notifier.owner_sent,
                "failed": notifier.owner_retried + notifier.owner_failed,
            },
            health=status,
            cpu_seconds=cpu.user + cpu.system,
            resident_bytes=rss,
            open_fds=fds,
            start_time=start,
            disk_free_bytes=free,
            disk_size_bytes=size,
            memory={"total": memory.total, "available": memory.available},
            load1=os.getloadavg()[0],
        )

    async def page(self) -> bytes:
        """This worker's series, its peers' on this node (WORKERS=N) and the store's."""
        processes = [self.snapshot(), *await self.peers()]
        try:
            # On a read connection in a worker thread: never the loop's (store/readers.py).
            cluster: figures.ClusterFigures | None = await self.ctx.owner_reads().call(
                figures.read, datetime.now(UTC)
            )
        except StoreError:
            cluster = None  # no store-wide series rather than made-up zeros
        return render(sorted(processes, key=lambda p: p.worker), cluster)

    async def peers(self) -> list[ProcessFigures]:
        """The other workers' snapshots, asked side by side; one that does not answer (it
        is restarting) is left out of this scrape."""
        paths = workers.peers_sockets(self.ctx.settings.database_path, self.number)
        found: list[ProcessFigures] = []

        async def ask(path: Path) -> None:
            answer = await control.ask(path, {"command": "figures"}, PEER_TIMEOUT)
            if answer is not None and answer.get("ok"):
                with suppress(KeyError, TypeError, ValueError):
                    found.append(figures_from_json(answer["figures"]))

        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(ask, path)
        return found

    def blueprint(self) -> Blueprint:
        bp = Blueprint("metrics", __name__)
        token = self.ctx.settings.metrics_token

        @bp.get("/metrics")
        async def metrics() -> Response:
            if token:
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return error_response(401, "Falta el token de métricas (METRICS_TOKEN)")
            return Response(await self.page(), content_type=CONTENT_TYPE)

        return bp


def _disk(path: Path) -> tuple[int | None, int | None]:
    """Free and total bytes of the disk holding `path`'s folder: the SQLite store's, or on
    PostgreSQL the logs' (the database server watches its own)."""
    with suppress(OSError):
        usage = psutil.disk_usage(str(Path(path).resolve().parent))
        return usage.free, usage.total
    return None, None
