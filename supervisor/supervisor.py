"""An OTP-style supervisor for trio actors.

Children start in order, each awaited until it reports ready (`task_status.started()`), and
stop in reverse order. A child that ends is restarted according to its spec:

- permanent: always restarted;
- transient: restarted only when it crashed;
- temporary: never restarted.

Between restarts the supervisor backs off exponentially (PM2's exp-backoff-restart-delay:
100 ms growing by 1.5x to a 15 s cap, reset once a child has run healthily for 30 s). More
than `max_restarts` restarts inside `period` seconds means something is deeply wrong: every
child is stopped and `run` raises `SupervisorGaveUp`, so the process exits non-zero and
systemd, the level above, decides.

An actor is `async def run(stop: trio.Event, *, task_status)`: it calls `task_status.started()`
when really ready and returns soon after `stop` is set; past its spec's shutdown timeout it is
cancelled.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import trio

from store.db import utc_now

from .errors import SupervisorGaveUp

log = logging.getLogger("supervisor")

SECONDS = 1.0
DEFAULT_SHUTDOWN_TIMEOUT = 5 * SECONDS


class Restart(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ActorState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"
    FAILED = "failed"


class ActorMain(Protocol):
    def __call__(
        self, stop: trio.Event, *, task_status: trio.TaskStatus[None] = ...
    ) -> Awaitable[None]: ...


@dataclass(frozen=True)
class ChildSpec:
    name: str
    start: Callable[..., Awaitable[None]]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.1 * SECONDS
    factor: float = 1.5
    cap: float = 15 * SECONDS
    reset_after: float = 30 * SECONDS

    def delay(self, consecutive: int) -> float:
        return float(min(self.initial * self.factor**consecutive, self.cap))


@dataclass(frozen=True)
class Intensity:
    max_restarts: int = 5
    period: float = 30 * SECONDS


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    at: str


@dataclass(frozen=True)
class ActorStatistics:
    name: str
    state: ActorState
    restart: Restart
    restarts: int
    last_error: ErrorInfo | None
    started_at: str | None
    uptime_seconds: float | None
    # Crash restarts inside the intensity period (an operator's restarts do not count):
    # a crash loop shows here while the actor is up between crashes.
    recent_restarts: int = 0
    backoff_seconds: float | None = None  # the wait before the next start, while backing off


@dataclass
class _Child:
    spec: ChildSpec
    state: ActorState = ActorState.STARTING
    restarts: int = 0
    consecutive: int = 0
    restart_times: deque[float] = field(default_factory=deque)  # crash restarts, trio clock
    backoff_seconds: float | None = None
    last_error: ErrorInfo | None = None
    started_at: str | None = None
    started_clock: float | None = None
    stopping: bool = False
    restart_requested: bool = False  # by an operator (`ia-comercial restart`)
    came_back: trio.Event = field(default_factory=trio.Event)  # set when running again
    incarnation_stop: trio.Event = field(default_factory=trio.Event)
    incarnation_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    shutdown: trio.Event = field(default_factory=trio.Event)
    settled: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)
    runner_scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def is_stopping(self) -> bool:
        # A method, not the attribute: it changes while we await.
        return self.stopping


class Supervisor:
    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        intensity: Intensity = Intensity(),
        backoff: Backoff = Backoff(),
        on_status: Callable[[str], None] = lambda _line: None,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self._children = [_Child(spec) for spec in specs]
        self._by_name = {c.spec.name: c for c in self._children}
        self.intensity = intensity
        self.backoff = backoff
        self._restart_times: deque[float] = deque()
        self._stop_requested = trio.Event()
        self._gave_up: str | None = None
        self._on_status = on_status

    # -- what others read ------------------------------------------------------------------

    def statistics(self) -> tuple[ActorStatistics, ...]:
        now = trio.current_time()
        return tuple(
            ActorStatistics(
                name=c.spec.name,
                state=c.state,
                restart=c.spec.restart,
                restarts=c.restarts,
                last_error=c.last_error,
                started_at=c.started_at if c.state == ActorState.RUNNING else None,
                uptime_seconds=(
                    now - c.started_clock
                    if c.state == ActorState.RUNNING and c.started_clock is not None
                    else None
                ),
                recent_restarts=sum(now - at <= self.intensity.period for at in c.restart_times),
                backoff_seconds=c.backoff_seconds if c.state == ActorState.BACKING_OFF else None,
            )
            for c in self._children
        )

    def is_running(self, name: str) -> bool:
        return self._by_name[name].state == ActorState.RUNNING

    @property
    def ready(self) -> bool:
        """Every permanent child is running."""
        return all(
            c.state == ActorState.RUNNING
            for c in self._children
            if c.spec.restart == Restart.PERMANENT
        )

    # -- operator requests -----------------------------------------------------------------

    async def restart(self, name: str) -> None:
        """Restart one running actor as an operator asks (`pm2 restart`): it stops as in a
        shutdown (its timeout, then cancelled) and starts again at once. Not a crash: no
        backoff, and it does not count towards the restart intensity."""
        child = self._by_name.get(name)
        if child is None:
            raise KeyError(f"no actor named {name!r}; actors: {', '.join(self._by_name)}")
        if child.state != ActorState.RUNNING or child.is_stopping():
            raise RuntimeError(f"actor {name} is {child.state}, not running")
        came_back = child.came_back = trio.Event()
        child.restart_requested = True
        child.incarnation_stop.set()
        with trio.move_on_after(child.spec.shutdown_timeout):
            await came_back.wait()
            return
        child.incarnation_scope.cancel()
        with trio.fail_after(30):
            await came_back.wait()

    # -- lifecycle -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Ask for an orderly stop: children stop in reverse order, then `run` returns."""
        self._stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for child in self._children:
                nursery.start_soon(self._supervise, child)
                await child.settled.wait()
                if self._gave_up:
                    break
            if not self._gave_up:
                self._on_status(f"{len(self._children)} actors running")
                task_status.started()
            await self._stop_requested.wait()
            for child in reversed(self._children):
                await self._stop_child(child)
        if self._gave_up:
            raise SupervisorGaveUp(
                f"actor {self._gave_up!r} restarted more than {self.intensity.max_restarts}"
                f" times in {self.intensity.period:g} s"
            )

    async def _stop_child(self, child: _Child) -> None:
        child.stopping = True
        child.shutdown.set()
        child.incarnation_stop.set()
        with trio.move_on_after(child.spec.shutdown_timeout):
            await child.done.wait()
        if not child.done.is_set():
            log.warning(
                "actor %s did not stop in %gs; cancelling",
                child.spec.name,
                child.spec.shutdown_timeout,
            )
            child.runner_scope.cancel()
            await child.done.wait()

    async def _supervise(self, child: _Child) -> None:
        try:
            with child.runner_scope:
                await self._incarnations(child)
        finally:
            if child.stopping and child.state != ActorState.FAILED:
                child.state = ActorState.STOPPED
            child.settled.set()
            child.done.set()

    async def _incarnations(self, child: _Child) -> None:
        name = child.spec.name
        while not child.is_stopping():
            child.state = ActorState.STARTING
            child.incarnation_stop = trio.Event()
            child.incarnation_scope = trio.CancelScope()
            crash: BaseException | None = None
            try:
                with child.incarnation_scope:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(child.spec.start, child.incarnation_stop)
                        child.state = ActorState.RUNNING
                        child.started_at = utc_now()
                        child.started_clock = trio.current_time()
                        child.settled.set()
                        child.came_back.set()
                        log.info("actor %s running", name)
            except Exception as exc:  # an actor's crash, never the supervisor's
                crash = _first_leaf(exc)
                child.last_error = ErrorInfo(type(crash).__name__, str(crash)[:500], utc_now())
                log.error(
                    "actor %s crashed: %s: %s", name, type(crash).__name__, crash, exc_info=crash
                )
            if child.is_stopping():
                return
            if child.restart_requested:
                child.restart_requested = False
                child.restarts += 1
                log.warning("actor %s restarted by an operator", name)
                self._on_status(f"{name} reiniciado a pedido")
                continue
            if not _should_restart(child.spec.restart, crashed=crash is not None):
                child.state = ActorState.FAILED if crash else ActorState.STOPPED
                log.info("actor %s ended (%s); not restarted", name, child.state)
                child.settled.set()
                return
            if not self._count_restart():
                child.state = ActorState.FAILED
                self._give_up(name)
                return
            now = trio.current_time()
            child.restart_times.append(now)
            while now - child.restart_times[0] > self.intensity.period:
                child.restart_times.popleft()
            if (
                child.started_clock is not None
                and now - child.started_clock >= self.backoff.reset_after
            ):
                child.consecutive = 0
            delay = self.backoff.delay(child.consecutive)
            child.consecutive += 1
            child.started_clock = None
            child.backoff_seconds = delay
            child.state = ActorState.BACKING_OFF
            self._on_status(f"reiniciando {name} en {delay:.1f} s")
            log.warning("actor %s restarting in %.2fs", name, delay)
            with trio.move_on_after(delay):
                await child.shutdown.wait()
            if child.is_stopping():
                return
            child.restarts += 1

    def _count_restart(self) -> bool:
        """Record a restart; False when it would exceed the intensity."""
        now = trio.current_time()
        while self._restart_times and now - self._restart_times[0] > self.intensity.period:
            self._restart_times.popleft()
        if len(self._restart_times) >= self.intensity.max_restarts:
            return False
        self._restart_times.append(now)
        return True

    def _give_up(self, name: str) -> None:
        log.critical("restart intensity exceeded by %s: stopping every actor", name)
        self._on_status(f"demasiados reinicios de {name}; deteniendo")
        self._gave_up = name
        for child in self._children:
            child.settled.set()
        self._stop_requested.set()


def _should_restart(policy: Restart, *, crashed: bool) -> bool:
    if policy == Restart.PERMANENT:
        return True
    if policy == Restart.TRANSIENT:
        return crashed
    return False


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner: Any = exc.exceptions[0]
        exc = inner
    return exc
