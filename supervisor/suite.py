"""The suite: the actor graph, wired under one supervisor.

                          HTTP (hypercorn, in the ingress)
                                        │
       web chat, webhooks, dashboard    ▼
                                  ┌──────────┐ inbound_messages ┌──────────────┐
                                  │ ingress  │ ───────────────► │ conversation │ lanes: one
                                  └──────────┘  InboundMessage  │  turn path   │ task per
                       reply slot ▲  │                          └──────┬───────┘ conversation
                (web chat, in the │  │ notifier_notices                │ notifier_notices
                  InboundMessage) └──┼──────────────┐  OutboxReady,    │ (OutboxReady,
                                     ▼              ▼  LeadChanged     ▼  LeadChanged)
                              ┌────────────┐    ┌──────────┐
                              │ classifier │───►│ notifier │──► Graph API, SMTP, webhooks,
                              │  (sweeps)  │    └──────────┘    follow-ups
                              └────────────┘
       store: checkpoints (SQLite) or       backup: snapshots the store on a schedule
              reconnects (PostgreSQL)
                  store/ (apsw SQLite or PostgreSQL — the source of truth)

The supervisor owns the memory channels: `Channels` is created here, once, and the same
ends are handed to every incarnation of an actor, so a restart never breaks a neighbour.
Each actor's `run` takes its ends under the names used here. Adding an actor is one
`ChildSpec` in `_children` (children start in list order, stop in reverse). The rules a
turn follows are one frozen `TurnRules`, swapped in place when the owner edits the
business, the prompt or the strategy: nothing restarts for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import trio

from actors import backup, classifier, cluster, conversation, ingress, notifier
from actors.ack_first import AckFirst
from actors.conversation.model_gate import ModelGate
from actors.messages import InboundMessage, NotifierNotice
from actors.statistics import LLMStatistics, NotifierStatistics
from sales.business import BusinessConfig
from sales.classify import ClassifierStatistics
from sales.errors import ConfigProblem
from sales.failpoints import Failpoints
from sales.identity import current as current_identity
from sales.settings import Settings
from store import backups, maintenance, pg_loop, postgres, prompts
from store.backups import BackupError
from store.db import Database, from_text, open_database, utc_now
from store.errors import StoreError
from store.pg_loop import LoopDatabase

from . import control
from .logs import Redactor
from .rules import model_brain, strategy_text, turn_rules
from .specs import ActorMain
from .startup import startup_problem, suite_version
from .supervisor import ActorStatistics, ChildSpec, Supervisor
from .systemd import SystemdNotifier

log = logging.getLogger("suite")

SECONDS = 1.0
CHANNEL_BUFFER = 64  # small and bounded: a full channel only delays a notice; rows wait

T = TypeVar("T")


@dataclass(frozen=True)
class Pipe(Generic[T]):
    """Both ends of one memory channel."""

    send: trio.MemorySendChannel[T]
    receive: trio.MemoryReceiveChannel[T]


@dataclass(frozen=True)
class Channels:
    """Every channel of the actor graph, named after what it carries."""

    inbound_messages: Pipe[InboundMessage]  # ingress → conversation
    notifier_notices: Pipe[NotifierNotice]  # ingress, conversation, classifier → notifier

    @classmethod
    def open(cls, buffer: int = CHANNEL_BUFFER) -> Channels:
        inbound = trio.open_memory_channel[InboundMessage](buffer)
        notices = trio.open_memory_channel[NotifierNotice](buffer)
        return cls(Pipe(*inbound), Pipe(*notices))

    def statistics(self) -> dict[str, dict[str, int]]:
        """What waits in each (for /health/detailed)."""
        report = {}
        for name, pipe in (
            ("inbound_messages", self.inbound_messages),
            ("notifier_notices", self.notifier_notices),
        ):
            stats = pipe.send.statistics()
            report[name] = {
                "buffered": stats.current_buffer_used,
                "capacity": int(stats.max_buffer_size),
                "sendersWaiting": stats.tasks_waiting_send,
            }
        return report


class Suite:
    def __init__(
        self,
        settings: Settings,
        business: BusinessConfig,
        rules: str,
        systemd: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.business = business
        self.rules = rules
        self.file_rules = rules  # prompts/systemPrompt.txt; the dashboard's edits win
        self.strategy = ""  # the commercial strategy's text, told after the rules
        self.systemd = systemd or SystemdNotifier({})
        self.version = suite_version()
        self.started_at = utc_now()
        self.bound: list[str] = []
        self.db: Database | None = None
        self.failpoints = Failpoints(settings.failpoints)
        self.channels = Channels.open()  # outlive every actor incarnation
        self.supervisor: Supervisor | None = None
        # Counters live here, like the channels, so that they outlive actor restarts.
        self.notifier_stats = NotifierStatistics()
        self.checkpoints = maintenance.CheckpointStatistics()
        self.llm_stats = LLMStatistics()
        # What the gate learned of the model server outlives a restart of the conversation actor.
        self.model_gate = ModelGate(settings.llm_max_concurrency)
        self.classifier_stats = ClassifierStatistics()
        self.backup_stats = backup.BackupStatistics()
        self.ack_first = AckFirst()  # webhook acknowledgements before answering work
        self.clock = notifier.system_clock  # tests move time for follow-ups
        self.conversation_ctx: conversation.ConversationContext | None = None
        self.business_holders: list[_HoldsBusiness] = []  # every context given `business`
        self.reconfiguring = trio.Lock()  # one change of rules or business at a time
        self.cluster = cluster.ClusterState(current_identity())  # who this process is
        # This worker's /metrics figures as JSON (set by the ingress; peers ask for them).
        self.figures: Callable[[], dict[str, Any]] | None = None

    # -- the SuiteStatus the ingress reads -----------------------------------------------

    def is_running(self, name: str) -> bool:
        return self.supervisor is not None and self.supervisor.is_running(name)

    @property
    def ready(self) -> bool:
        return self.supervisor is not None and self.supervisor.ready

    def actors(self) -> tuple[ActorStatistics, ...]:
        return self.supervisor.statistics() if self.supervisor else ()

    def brain(self) -> str:
        if self.settings.offline:
            return "offline"
        return f"openai-compatible ({self.settings.openai_model})"

    def work(self) -> dict[str, object]:
        """What the actors have done since start: for /health/detailed."""
        return {
            "conversation": asdict(self.conversation_ctx.statistics())
            if self.conversation_ctx
            else None,
            "llm": self.llm_report(),
            "backup": asdict(self.backup_stats),
            "classifier": asdict(self.classifier_stats),
            "notifier": asdict(self.notifier_stats),
            "store": asdict(self.db.stats)
            if isinstance(self.db, LoopDatabase)
            else asdict(self.checkpoints),
            "ackFirst": asdict(self.ack_first.statistics()),
            "ingress": {"plainChatAnswers": self._plain_chat_answers()},
        }

    def _plain_chat_answers(self) -> int:
        """Chat turns the plain-ASGI path answered (the rest went through Quart)."""
        found = (h for h in self.business_holders if isinstance(h, ingress.IngressContext))
        return next((ctx.plain_chat_answers for ctx in found), 0)

    def llm_report(self) -> dict[str, object]:
        stats = self.llm_stats
        return {
            "configured": not self.settings.offline,
            "model": None if self.settings.offline else self.settings.openai_model,
            "calls": stats.calls,
            "errors": stats.errors,
            "retries": stats.retries,
            "repairs": stats.repairs,
            "promptTokens": stats.prompt_tokens,
            "completionTokens": stats.completion_tokens,
            **stats.latency.percentiles(),
            "lastError": stats.last_error,
            "waitedOut": stats.waited_out,
            "gate": self.gate_report(),
        }

    def gate_report(self) -> dict[str, object]:
        """The model gate: calls at once allowed and made, waiting, and its last backoff."""
        gate = self.model_gate.statistics()
        backoff = gate.last_backoff
        target = gate.latency_target
        return {
            "limit": gate.limit,
            "ceiling": gate.ceiling,
            "inFlight": gate.in_flight,
            "waiting": gate.waiting,
            "pausedForSeconds": round(gate.paused_for, 3),
            "latencyTargetMs": None if target is None else round(target * 1000),
            "backoffs": gate.backoffs,
            "lastBackoff": None
            if backoff is None
            else {
                "reason": backoff.reason,
                "secondsAgo": round(trio.current_time() - backoff.at, 3),
                "limit": backoff.limit,
                "pauseSeconds": backoff.pause,
            },
        }

    def cluster_report(self) -> dict[str, object]:
        """This worker and every live one of the cluster (heartbeats and leases in the store)."""
        if self.db is None:
            return {"this": asdict(self.cluster.statistics())}
        return cluster.report(self.db, self.cluster)

    def queues(self) -> dict[str, dict[str, int]]:
        return self.channels.statistics()

    async def restart_actor(self, name: str) -> None:
        if self.supervisor is None:
            raise RuntimeError("the suite is not running")
        await self.supervisor.restart(name)

    async def use_rules(self, text: str | None = None, strategy: str | None = None) -> None:
        """New rules, or a new strategy (its stored JSON; "" for none), for the model: the
        next turn follows them (turns in progress end on the version they began with)."""
        async with self.reconfiguring:
            if text is not None:
                self.rules = text
            if strategy is not None:
                self.strategy = strategy_text(strategy)
            self._publish_rules()

    async def use_business(self, config: BusinessConfig) -> None:
        """A new business config (edited in the dashboard) in force without restarting
        anything: every context holding the old one gets it, and the next turn follows the
        rules built from it. The ingress reads it per request."""
        async with self.reconfiguring:
            self.business = config
            for ctx in self.business_holders:
                ctx.business = config
            self._publish_rules()
            log.info("business config in force: %d service(s)", len(config.services))

    def _turn_rules(self) -> conversation.TurnRules:
        return turn_rules(
            self.business,
            self.settings,
            prompt=self.rules,
            strategy=self.strategy,
            stats=self.classifier_stats,
            failpoints=self.failpoints,
        )

    def _publish_rules(self) -> None:
        if self.conversation_ctx is not None:
            self.conversation_ctx.use_rules(self._turn_rules())

    def problems(self) -> list[str]:
        """What makes the suite `degraded` besides its actors (for /health/detailed)."""
        if self.db is None or self.settings.backup_time is None:
            return []
        started = from_text(self.started_at)
        return backup.backup_health(self.db, self.clock(), started)

    def last_backup(self) -> dict[str, object] | None:
        return backups.last(self.db) if self.db is not None else None

    @property
    def url(self) -> str:
        return self.bound[0] if self.bound else ""

    # -- lifecycle -----------------------------------------------------------------------

    def shutdown(self) -> None:
        self.systemd.notify("STOPPING=1", "STATUS=Stopping")
        if self.supervisor is not None:
            self.supervisor.shutdown()

    async def run(self, *, task_status: trio.TaskStatus[Suite] = trio.TASK_STATUS_IGNORED) -> None:
        path, url = self.settings.database_path, self.settings.database_url
        with ExitStack() as claim:
            if url:  # no file to claim: several suites may share one server (cluster mode)
                self.db = await open_postgres(url)
                await self._run(task_status)
                return
            try:
                # One suite per worker number on a database file: `restore` and a second
                # instance as the same worker see the claim (other workers share the file).
                claim.enter_context(backups.held(path, self.cluster.identity.worker))
                self.db = open_database(path)
            except (OSError, StoreError, BackupError) as exc:
                raise startup_problem("DATABASE_PATH", path, exc) from None
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[Suite]) -> None:
        assert self.db is not None  # opened by `run`
        edited = prompts.current(self.db)
        if edited is not None:
            self.rules = str(edited["text"])
        strategy = prompts.current(self.db, "strategy")
        if strategy is not None:
            self.strategy = strategy_text(str(strategy["text"]))
        try:
            self.supervisor = Supervisor(self._children(self.db), on_status=self.systemd.status)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.systemd.keep_watchdog_fed)
                socket = control.socket_path(
                    self.settings.database_path, self.cluster.identity.worker
                )
                try:
                    await nursery.start(
                        control.serve, socket, self, Redactor(self.settings.secrets())
                    )
                except OSError as exc:  # beside the database: a path too long, a full disk
                    raise startup_problem("DATABASE_PATH", socket, exc) from None
                await nursery.start(self._supervise, self.supervisor, nursery.cancel_scope)
                self.systemd.notify("READY=1", f"STATUS=Serving on {self.url}")
                log.info("suite ready on %s (brain: %s)", self.url, self.brain())
                task_status.started(self)
        finally:
            self.db.close()

    @staticmethod
    async def _supervise(
        supervisor: Supervisor, done: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        await supervisor.run(task_status=task_status)
        done.cancel()  # the supervisor has stopped every actor: end the watchdog too

    def _children(self, db: Database) -> list[ChildSpec]:
        notices = self.channels.notifier_notices
        conversation_ctx = self.conversation_ctx = conversation.ConversationContext(
            db=db,
            rules=self._turn_rules(),
            turn_timeout=self.settings.openai_timeout,
            history_max_tokens=self.settings.history_max_tokens,
            failpoints=self.failpoints,
            limits=conversation.LaneLimits(debounce=self.settings.debounce_seconds),
            ack_first=self.ack_first,
            owner=self.cluster.owner,
            news=conversation.News(self.settings.database_url),
        )
        classifier_ctx = classifier.ClassifierContext(
            db, lambda: conversation_ctx.rules.classifier, self.ack_first
        )
        notifier_ctx, backup_ctx, ingress_ctx = self._holders(db)
        self.business_holders = [notifier_ctx, backup_ctx, ingress_ctx]
        return self._outlasting_losses(
            db,
            [
                # A checkpoint or a backup in a thread cannot be cancelled: give it time to end.
                ChildSpec("store", self._store_keeper(db), shutdown_timeout=30 * SECONDS),
                # Before the backup and the notifier: they act only while this one leads.
                ChildSpec(
                    "cluster",
                    partial(cluster.run, cluster.ClusterContext(db, self.cluster, self._states)),
                    shutdown_timeout=5 * SECONDS,
                ),
                ChildSpec("backup", partial(backup.run, backup_ctx), shutdown_timeout=60 * SECONDS),
                ChildSpec(
                    "notifier",
                    partial(notifier.run, notifier_ctx, notifier_notices=notices.receive),
                    shutdown_timeout=20 * SECONDS,
                ),
                ChildSpec(
                    "classifier",
                    partial(classifier.run, classifier_ctx, notifier_notices=notices.send),
                    shutdown_timeout=5 * SECONDS,
                ),
                ChildSpec(
                    "conversation",
                    partial(self._conversation, conversation_ctx),
                    shutdown_timeout=5 * SECONDS,
                ),
                ChildSpec(
                    "ingress",
                    partial(ingress.run, ingress_ctx, self.bound),
                    shutdown_timeout=12 * SECONDS,
                ),
            ],
        )

    def _states(self) -> dict[str, object]:
        """Each actor's state, restarts and uptime: what the heartbeat carries."""
        return {
            a.name: {
                "state": str(a.state),
                "restarts": a.restarts,
                "uptimeSeconds": None if a.uptime_seconds is None else round(a.uptime_seconds),
            }
            for a in self.actors()
        }

    @staticmethod
    def _outlasting_losses(db: Database, children: list[ChildSpec]) -> list[ChildSpec]:
        """On PostgreSQL, an actor whose store connection was lost under it resumes in
        place once it is back, instead of crash-looping (store/pg_loop.py)."""
        if not isinstance(db, LoopDatabase):
            return children
        return [
            c
            if c.name == "store"
            else replace(c, start=pg_loop.outlasting_losses(db, c.name, c.start))
            for c in children
        ]

    def _store_keeper(self, db: Database) -> ActorMain:
        """SQLite: WAL checkpoints off the event loop; PostgreSQL: the suite's connection
        kept (found lost, reopened)."""
        if isinstance(db, LoopDatabase):
            return partial(pg_loop.keep_connected, db)
        return partial(maintenance.run, self.settings.database_path, self.checkpoints)

    def _holders(
        self, db: Database
    ) -> tuple[notifier.NotifierContext, backup.BackupContext, ingress.IngressContext]:
        """The contexts that read the business config in force (swapped on an edit)."""
        notifier_ctx = notifier.NotifierContext(
            db=db,
            settings=self.settings,
            business=self.business,
            failpoints=self.failpoints,
            stats=self.notifier_stats,
            clock=lambda: self.clock(),
            ack_first=self.ack_first,
            leader=self.cluster.is_leader,
            owner=self.cluster.owner,
        )
        backup_ctx = backup.BackupContext(
            db=db,
            settings=self.settings,
            business=self.business,
            stats=self.backup_stats,
            clock=lambda: self.clock(),
            leader=self.cluster.is_leader,
        )
        ingress_ctx = ingress.IngressContext(
            settings=self.settings,
            db=db,
            business=self.business,
            inbound_messages=self.channels.inbound_messages.send,
            suite=self,
            notifier_notices=self.channels.notifier_notices.send,
            ack_first=self.ack_first,
            failpoints=self.failpoints,
        )
        return notifier_ctx, backup_ctx, ingress_ctx

    async def _conversation(
        self,
        ctx: conversation.ConversationContext,
        stop: trio.Event,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with model_brain(self.settings, self.llm_stats, self.model_gate) as brain:
            ctx.brain = brain
            await conversation.run(
                ctx,
                stop,
                inbound_messages=self.channels.inbound_messages.receive,
                notifier_notices=self.channels.notifier_notices.send,
                task_status=task_status,
            )


async def open_postgres(url: str) -> LoopDatabase:
    """The suite's connection to DATABASE_URL, migrated; a server that does not answer is
    one start-up line naming DATABASE_URL (never its password)."""
    try:
        return await trio.to_thread.run_sync(LoopDatabase.open, url)
    except StoreError as exc:
        raise ConfigProblem([("DATABASE_URL", str(postgres.location(url)), str(exc))]) from None


class _HoldsBusiness(Protocol):
    business: BusinessConfig
