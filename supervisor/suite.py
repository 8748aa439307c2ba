"""The suite: wires channels and actors under one supervisor.

The supervisor owns the memory channels: they are created here, once, and the same ends are
handed to every incarnation of an actor, so a restart never breaks a neighbour. Adding an
actor is one `ChildSpec` in `_children` (children start in list order, stop in reverse).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import asdict
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import apsw
import openai
import trio

from actors import backup, classifier, conversation, ingress, notifier
from actors.ack_first import AckFirst
from actors.conversation.brain import Brain
from actors.conversation.llm import LLMOptions, LLMStatistics, OpenAIBrain
from actors.conversation.model_gate import ModelGate
from actors.conversation.offline import OfflineBrain
from actors.conversation.prompt import system_prompt
from actors.conversation.strategy import Strategy
from actors.conversation.strategy import render as render_strategy
from actors.messages import InboundMessage, NotifierNotice, TurnToClassify
from store import backups, maintenance, prompts
from store.backups import BackupError
from store.db import Database, from_text, open_database, utc_now

from . import control
from .business import BusinessConfig, load_business
from .errors import ConfigProblem
from .failpoints import Failpoints
from .logs import Redactor
from .settings import Settings
from .supervisor import ActorStatistics, ChildSpec, Restart, Supervisor
from .systemd import SystemdNotifier

log = logging.getLogger("suite")

SECONDS = 1.0
INBOX_BUFFER = 64
CHANNELS = ("web", "whatsapp", "instagram")
# The actors that build something from the business config when they start (the brain and
# its prompts, the extractor and scorer, the follow-up schedule, the backup's time zone).
BUILT_FROM_BUSINESS = ("backup", "notifier", "classifier", "conversation")


def suite_version() -> str:
    try:
        return version("ia-comercial")
    except PackageNotFoundError:
        return "0+unknown"


def load_rules(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigProblem([(str(path), "(file)", "not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblem([(str(path), "(file)", f"cannot be read: {_why(exc)}")]) from None


def _why(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # the path is told beside it
    return str(exc)


def startup_problem(setting: str, path: Path, exc: BaseException) -> ConfigProblem:
    """A start-up failure as one line: the setting to change, its value, and why."""
    if isinstance(exc, FileExistsError):  # from mkdir: something else has the folder's name
        why = f"{exc.filename} exists and is not a folder"
    elif isinstance(exc, OSError) and exc.strerror:
        why = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        why = str(exc)
    return ConfigProblem([(setting, str(path), why)])


def _setting_to_change(setting: str, problem: ConfigProblem) -> list[tuple[str, str, str]]:
    """A config file that is missing or unreadable is told as the setting that names it."""
    told = []
    for file, where, reason in problem.problems:
        if where == "(file)":
            relative = "" if Path(file).is_absolute() else f" (relative to {Path.cwd()})"
            told.append((setting, file, f"{reason}{relative}; change {setting}"))
        else:
            told.append((file, where, reason))
    return told


def check_config(settings: Settings) -> tuple[BusinessConfig, str]:
    """Everything `run` needs from disk, validated; raises `ConfigProblem` listing it all."""
    problems: list[tuple[str, str, str]] = []
    business: BusinessConfig | None = None
    rules = ""
    try:
        business = load_business(settings.business_config)
    except ConfigProblem as exc:
        problems += _setting_to_change("BUSINESS_CONFIG", exc)
    try:
        rules = load_rules(settings.system_prompt_path)
    except ConfigProblem as exc:
        problems += _setting_to_change("SYSTEM_PROMPT_PATH", exc)
    try:
        Failpoints(settings.failpoints)
    except ConfigProblem as exc:
        problems += exc.problems
    if problems or business is None:
        raise ConfigProblem(problems)
    return business, rules


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
        # The supervisor's channels: created once, outliving every actor incarnation.
        self.inbox_send, self.inbox_receive = trio.open_memory_channel[InboundMessage](INBOX_BUFFER)
        self.notices_send, self.notices_receive = trio.open_memory_channel[NotifierNotice](
            INBOX_BUFFER
        )
        self.classify_send, self.classify_receive = trio.open_memory_channel[TurnToClassify](
            INBOX_BUFFER
        )
        self.supervisor: Supervisor | None = None
        # Counters live here, like the channels, so that they outlive actor restarts.
        self.notifier_stats = notifier.NotifierStatistics()
        self.checkpoints = maintenance.CheckpointStatistics()
        self.llm_stats = LLMStatistics()
        # What the gate learned of the model server outlives a restart of the conversation actor.
        self.model_gate = ModelGate(settings.llm_max_concurrency)
        self.classifier_stats = classifier.ClassifierStatistics()
        self.backup_stats = backup.BackupStatistics()
        self.ack_first = AckFirst()  # webhook acknowledgements before answering work
        self.clock = notifier.system_clock  # tests move time for follow-ups
        self.conversation_ctx: conversation.ConversationContext | None = None
        self.classifier_ctx: classifier.ClassifierContext | None = None
        self.business_holders: list[_HoldsBusiness] = []  # every context given `business`
        self.reconfiguring = trio.Lock()  # one change of rules or business at a time

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
            "store": asdict(self.checkpoints),
            "ackFirst": asdict(self.ack_first.statistics()),
        }

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

    def queues(self) -> dict[str, dict[str, int]]:
        """The supervisor's memory channels: what waits in each (for /health/detailed)."""
        report = {}
        for name, channel in (
            ("inbox", self.inbox_send),
            ("classify", self.classify_send),
            ("notifier", self.notices_send),
        ):
            stats = channel.statistics()
            report[name] = {
                "buffered": stats.current_buffer_used,
                "capacity": int(stats.max_buffer_size),
                "sendersWaiting": stats.tasks_waiting_send,
            }
        return report

    async def restart_actor(self, name: str) -> None:
        if self.supervisor is None:
            raise RuntimeError("the suite is not running")
        await self.supervisor.restart(name)

    async def use_rules(self, text: str | None = None, strategy: str | None = None) -> None:
        """New rules, or a new strategy (its stored JSON; "" for none), for the model: the
        conversation actor restarts to build its prompts again (turns in progress finish
        first, as in a shutdown)."""
        async with self.reconfiguring:
            if text is not None:
                self.rules = text
            if strategy is not None:
                self.strategy = _strategy_text(strategy)
            await self._rebuild(("conversation",))

    async def use_business(self, config: BusinessConfig) -> None:
        """A new business config (edited in the dashboard) in force without restarting the
        process: every context holding the old one gets it, and the actors that built
        something from it restart as an operator asks (not a crash; turns and sends in
        progress finish first, as in a shutdown). The ingress reads it per request, so
        requests in flight are not touched."""
        async with self.reconfiguring:
            self.business = config
            for ctx in self.business_holders:
                ctx.business = config
            # What these contexts derive from it (opt-out phrases, extractor, scorer).
            if self.conversation_ctx is not None:
                self.conversation_ctx.__post_init__()
            if self.classifier_ctx is not None:
                self.classifier_ctx.__post_init__()
            await self._rebuild(BUILT_FROM_BUSINESS)
            log.info("business config in force: %d service(s)", len(config.services))

    async def _rebuild(self, names: tuple[str, ...]) -> None:
        """Operator restarts of the running ones among `names`; one that is not running
        (backing off after a crash) reads the new config when it starts anyway."""
        for name in names:
            if self.supervisor is None or not self.supervisor.is_running(name):
                continue
            try:
                await self.supervisor.restart(name)
            except RuntimeError:
                log.warning(
                    "actor %s was not running to restart; it starts with the new config", name
                )

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
        path = self.settings.database_path
        with ExitStack() as claim:
            try:
                # One suite per database file: `restore` and a second instance see the claim.
                claim.enter_context(backups.held(path))
                self.db = open_database(path)
            except (OSError, apsw.Error, BackupError) as exc:
                raise startup_problem("DATABASE_PATH", path, exc) from None
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[Suite]) -> None:
        assert self.db is not None  # opened by `run`
        edited = prompts.current(self.db)
        if edited is not None:
            self.rules = str(edited["text"])
        strategy = prompts.current(self.db, "strategy")
        if strategy is not None:
            self.strategy = _strategy_text(str(strategy["text"]))
        try:
            self.supervisor = Supervisor(self._children(self.db), on_status=self.systemd.status)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.systemd.keep_watchdog_fed)
                socket = control.socket_path(self.settings.database_path)
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
        conversation_ctx = conversation.ConversationContext(
            db=db,
            business=self.business,
            brain=OfflineBrain(self.business),  # replaced per incarnation by _conversation
            turn_timeout=self.settings.openai_timeout,
            history_max_tokens=self.settings.history_max_tokens,
            failpoints=self.failpoints,
            debounce=self.settings.debounce_seconds,
            outbox_ready=self.notices_send,
            classify=self.classify_send,
            ack_first=self.ack_first,
        )
        notifier_ctx = notifier.NotifierContext(
            db=db,
            settings=self.settings,
            business=self.business,
            failpoints=self.failpoints,
            stats=self.notifier_stats,
            clock=lambda: self.clock(),
            ack_first=self.ack_first,
        )
        backup_ctx = backup.BackupContext(
            db=db,
            settings=self.settings,
            business=self.business,
            stats=self.backup_stats,
            clock=lambda: self.clock(),
        )
        classifier_ctx = classifier.ClassifierContext(
            db=db,
            business=self.business,
            settings=self.settings,
            notices=self.notices_send,
            failpoints=self.failpoints,
            stats=self.classifier_stats,
            ack_first=self.ack_first,
        )
        ingress_ctx = ingress.IngressContext(
            settings=self.settings,
            db=db,
            business=self.business,
            inbox=self.inbox_send,
            suite=self,
            notices=self.notices_send,
            ack_first=self.ack_first,
        )
        self.conversation_ctx = conversation_ctx
        self.classifier_ctx = classifier_ctx
        self.business_holders = [
            conversation_ctx,
            notifier_ctx,
            backup_ctx,
            classifier_ctx,
            ingress_ctx,
        ]
        return [
            ChildSpec(
                "store",
                partial(maintenance.run, self.settings.database_path, self.checkpoints),
                Restart.PERMANENT,
                # A checkpoint in a thread cannot be cancelled: give it time to end.
                shutdown_timeout=30 * SECONDS,
            ),
            ChildSpec(
                "backup",
                partial(backup.run, backup_ctx),
                Restart.PERMANENT,
                # A backup in a thread cannot be cancelled: give it time to end.
                shutdown_timeout=60 * SECONDS,
            ),
            ChildSpec(
                "notifier",
                partial(notifier.run, notifier_ctx, self.notices_receive),
                Restart.PERMANENT,
                shutdown_timeout=20 * SECONDS,
            ),
            ChildSpec(
                "classifier",
                partial(classifier.run, classifier_ctx, self.classify_receive),
                Restart.PERMANENT,
                shutdown_timeout=5 * SECONDS,
            ),
            ChildSpec(
                "conversation",
                partial(self._conversation, conversation_ctx),
                Restart.PERMANENT,
                shutdown_timeout=5 * SECONDS,
            ),
            ChildSpec(
                "ingress",
                partial(ingress.run, ingress_ctx, self.bound),
                Restart.PERMANENT,
                shutdown_timeout=12 * SECONDS,
            ),
        ]

    async def _conversation(
        self,
        ctx: conversation.ConversationContext,
        stop: trio.Event,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with self._brain() as brain:
            ctx.brain = brain
            await conversation.run(ctx, self.inbox_receive, stop, task_status=task_status)

    @asynccontextmanager
    async def _brain(self) -> AsyncIterator[Brain]:
        """The brain for one incarnation; an OpenAI client is always closed after use."""
        if self.settings.offline:
            yield OfflineBrain(self.business)
            return
        async with openai.AsyncOpenAI(
            api_key=self.settings.openai_api_key,
            base_url=self.settings.openai_base_url,
            timeout=self.settings.openai_timeout,
            max_retries=0,  # ours, with backoff and jitter, in the brain
        ) as client:
            yield OpenAIBrain(
                client,
                LLMOptions(
                    self.settings.openai_model,
                    self.settings.openai_temperature,
                    self.settings.openai_max_tokens,
                    self.settings.openai_max_retries,
                ),
                {
                    channel: system_prompt(
                        self.business,
                        "\n\n".join(filter(None, (self.rules, self.strategy))),
                        channel,
                    )
                    for channel in CHANNELS
                },
                self.llm_stats,
                self.model_gate,
            )


class _HoldsBusiness(Protocol):
    business: BusinessConfig


def _strategy_text(stored: str) -> str:
    """What the model is told of a stored strategy ("" when there is none)."""
    return render_strategy(Strategy.model_validate_json(stored)) if stored else ""
