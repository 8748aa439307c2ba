"""An OTP-style supervisor for trio actors.

Children start in order, each awaited until it reports ready (`task_status.started()`), and
stop in reverse order. Each run of a child, an incarnation, is started with `nursery.start`,
which hands back its stop event and cancel scope (`Incarnation`) once the actor is ready;
stopping it sets the event and cancels the scope past the spec's shutdown timeout. A child
that ends, or crashes before it is ready, is restarted according to its spec:

- permanent: always restarted;
- transient: restarted only when it crashed;
- temporary: never restarted.

Between restarts the supervisor backs off exponentially (PM2's exp-backoff-restart-delay:
100 ms growing by 1.5x to a 15 s cap, reset once a child has run healthily for 30 s). More
than `max_restarts` restarts inside `period` seconds means something is deeply wrong: every
child is stopped and `run` raises `SupervisorGaveUp`, so the process exits non-zero and
systemd, the level above, decides. An operator's restart stops a child as a shutdown does and
starts it again at once: no backoff, and it does not count towards the intensity. Children
start one at a time, as in OTP: a shutdown waits for a start under way.

An actor is `async def run(stop: trio.Event, *, task_status)`: it calls `task_status.started()`
when really ready and returns soon after `stop` is set. A crash is logged whole (an exception
group with every error in it) and summarised in the child's `ErrorInfo`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from store.db import utc_now

from .errors import SupervisorGaveUp
from .specs import (
    ActorMain,
    ActorState,
    ActorStatistics,
    Backoff,
    ChildSpec,
    ErrorInfo,
    Intensity,
    Restart,
)

__all__ = [
    "ActorMain",
    "ActorState",
    "ActorStatistics",
    "Backoff",
    "ChildSpec",
    "ErrorInfo",
    "Intensity",
    "Restart",
    "Supervisor",
]

log = logging.getLogger("supervisor")

DEFAULT_INTENSITY = Intensity()  # 5 restarts in 30 s
DEFAULT_BACKOFF = Backoff()  # PM2's: 100 ms x 1.5 up to 15 s


@dataclass(frozen=True)
class Incarnation:
    """One run of a child, handed back by `nursery.start` once its actor is ready."""

    stop: trio.Event = field(default_factory=trio.Event)  # asks the actor to return
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # around the actor
    ended: trio.Event = field(default_factory=trio.Event)  # returned, crashed or cancelled

    async def halt(self, grace: float) -> bool:
        """Ask it to stop, cancel it `grace` seconds on, wait for its end. True if cancelled."""
        self.stop.set()
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + grace)
        await self.ended.wait()
        return self.scope.cancelled_caught


class _Ready:
    """The `task_status` an actor gets: its `started()` hands the incarnation up to the
    supervisor's `nursery.start`. The actor runs in the incarnation's own task, with no
    nursery of ours around it, so its errors arrive exactly as it raised them."""

    def __init__(self, up: trio.TaskStatus[Incarnation], incarnation: Incarnation) -> None:
        self._up = up
        self._incarnation = incarnation
        self.called = False

    def started(self, value: object = None) -> None:
        self.called = True
        self._up.started(self._incarnation)


@dataclass
class _Child:
    """A child's mutable state; `statistics()` takes a frozen snapshot of it."""

    spec: ChildSpec
    state: ActorState = ActorState.STARTING
    restarts: int = 0
    consecutive: int = 0  # crash restarts since it last ran healthily: the backoff's exponent
    restart_times: deque[float] = field(default_factory=deque)  # crash restarts, trio clock
    backoff_seconds: float | None = None
    last_error: ErrorInfo | None = None
    started_at: str | None = None
    started_clock: float | None = None
    incarnation: Incarnation | None = None  # the latest one to have become ready

    def statistics(self, now: float, period: float) -> ActorStatistics:
        running = self.state == ActorState.RUNNING
        return ActorStatistics(
            name=self.spec.name,
            state=self.state,
            restart=self.spec.restart,
            restarts=self.restarts,
            last_error=self.last_error,
            started_at=self.started_at if running else None,
            uptime_seconds=(
                now - self.started_clock if running and self.started_clock is not None else None
            ),
            recent_restarts=sum(now - at <= period for at in self.restart_times),
            backoff_seconds=(
                self.backoff_seconds if self.state == ActorState.BACKING_OFF else None
            ),
        )


class Supervisor:
    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        intensity: Intensity = DEFAULT_INTENSITY,
        backoff: Backoff = DEFAULT_BACKOFF,
        on_status: Callable[[str], None] = lambda _line: None,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self._children = [_Child(spec) for spec in specs]
        self._by_name = {c.spec.name: c for c in self._children}
        self.intensity = intensity
        self.backoff = backoff
        self._restart_times: deque[float] = deque()  # every child's crash restarts
        self._stop_requested = trio.Event()
        self._gave_up: str | None = None
        self._on_status = on_status
        self._nursery: trio.Nursery | None = None  # where incarnations run, while `run` does
        # As in OTP, where the supervisor starts a child synchronously: a shutdown waits for a
        # start under way, then stops every child in reverse order.
        self._one_start_at_a_time = trio.Lock()

    # -- what others read ------------------------------------------------------------------

    def statistics(self) -> tuple[ActorStatistics, ...]:
        now = trio.current_time()
        return tuple(c.statistics(now, self.intensity.period) for c in self._children)

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
        backoff, and it does not count towards the restart intensity. As in OTP the
        supervisor does the work and the caller waits for it: running again (or, should it
        crash while starting, its policy has had its say). Cancelling the wait leaves the
        restart to finish."""
        child = self._by_name.get(name)
        if child is None:
            raise KeyError(f"no actor named {name!r}; actors: {', '.join(self._by_name)}")
        if child.state != ActorState.RUNNING or self._stop_requested.is_set():
            raise RuntimeError(f"actor {name} is {child.state}, not running")
        child.state = ActorState.STARTING  # so that a second request is refused meanwhile
        done = trio.Event()
        self._actors.start_soon(self._restart, child, done)
        await done.wait()

    async def _restart(self, child: _Child, done: trio.Event) -> None:
        try:
            await self._stop(child)
            child.restarts += 1
            log.warning("actor %s restarted by an operator", child.spec.name)
            self._on_status(f"{child.spec.name} reiniciado a pedido")
            await self._start(child)
        finally:
            done.set()

    # -- lifecycle -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Ask for an orderly stop: children stop in reverse order, then `run` returns."""
        self._stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order and report started; supervise them until `shutdown()`
        or until the restart intensity is exceeded, then stop them in reverse order."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for child in self._children:
                    if self._stop_requested.is_set():
                        break
                    await self._start(child)
                if not self._gave_up:
                    self._on_status(f"{len(self._children)} actors running")
                    task_status.started()
                await self._stop_requested.wait()
                async with self._one_start_at_a_time:
                    for child in reversed(self._children):
                        await self._stop(child)
        finally:
            self._nursery = None
        if self._gave_up:
            raise SupervisorGaveUp(
                f"actor {self._gave_up!r} restarted more than {self.intensity.max_restarts}"
                f" times in {self.intensity.period:g} s"
            )

    @property
    def _actors(self) -> trio.Nursery:
        assert self._nursery is not None, "only while `run` runs"
        return self._nursery

    async def _start(self, child: _Child, backoff: float | None = None) -> None:
        """Start `child`, after `backoff` seconds if given, and return once it is ready. A
        crash during start is handled as any other; returns with the child down when its
        policy, the intensity or a shutdown says so."""
        while True:
            if backoff is not None:
                with trio.move_on_after(backoff):
                    await self._stop_requested.wait()
            async with self._one_start_at_a_time:
                if self._stop_requested.is_set():
                    return
                if backoff is not None:
                    child.restarts += 1
                backoff = await self._attempt(child)
            if backoff is None:
                return

    async def _attempt(self, child: _Child) -> float | None:
        """Start `child` once. The backoff before the next attempt if it crashed before it
        was ready, else None (it is running, or down for good)."""
        child.state = ActorState.STARTING
        try:
            incarnation = await self._actors.start(self._incarnation, child)
        except Exception as crash:  # an actor's, never the supervisor's
            return self._ended(child, crash)
        self._running(child, incarnation)
        return None

    def _running(self, child: _Child, incarnation: Incarnation) -> None:
        if incarnation.ended.is_set():
            return  # it ended before we got here, and `_ended` has had its say
        child.incarnation = incarnation
        child.state = ActorState.RUNNING
        child.started_at = utc_now()
        child.started_clock = trio.current_time()
        log.info("actor %s running", child.spec.name)

    async def _incarnation(
        self, child: _Child, *, task_status: trio.TaskStatus[Incarnation]
    ) -> None:
        """One run of `child`'s actor, handed back once the actor is ready. A crash before
        that raises to `_attempt`; an end after it goes to `_ended` unless it was asked to stop
        (then whoever asked carries on)."""
        incarnation = Incarnation()
        ready = _Ready(task_status, incarnation)
        crash: Exception | None = None
        try:
            with incarnation.scope:
                await child.spec.start(incarnation.stop, task_status=ready)
        except Exception as exc:  # an actor's crash, never the supervisor's
            if not ready.called:
                raise
            crash = exc
        finally:
            incarnation.ended.set()
        if incarnation.stop.is_set():
            if crash is not None:
                self._crashed(child, crash)
            return
        backoff = self._ended(child, crash)
        if backoff is not None:
            self._actors.start_soon(self._start, child, backoff)

    async def _stop(self, child: _Child) -> None:
        """Stop the child's incarnation: its stop event, then cancelled past its timeout."""
        timeout = child.spec.shutdown_timeout
        if child.incarnation is not None and await child.incarnation.halt(timeout):
            log.warning("actor %s did not stop in %gs; cancelled", child.spec.name, timeout)
        if child.state != ActorState.FAILED:
            child.state = ActorState.STOPPED

    # -- policy ----------------------------------------------------------------------------

    def _ended(self, child: _Child, crash: Exception | None) -> float | None:
        """An incarnation ended on its own or failed to start. The backoff before the next
        start, or None when the child stays down (its state says why)."""
        if crash is not None:
            self._crashed(child, crash)
        crashed = crash is not None
        wanted = _should_restart(child.spec.restart, crashed=crashed)
        if self._stop_requested.is_set() or not wanted:
            child.state = ActorState.FAILED if crashed else ActorState.STOPPED
            log.info("actor %s ended (%s); not restarted", child.spec.name, child.state)
            return None
        if not self._count_restart():
            child.state = ActorState.FAILED
            self._give_up(child.spec.name)
            return None
        return self._back_off(child)

    def _crashed(self, child: _Child, crash: Exception) -> None:
        child.last_error = ErrorInfo.of(crash)
        error = child.last_error
        log.error(
            "actor %s crashed: %s: %s", child.spec.name, error.type, error.message, exc_info=crash
        )

    def _back_off(self, child: _Child) -> float:
        """Record a crash restart of `child` and the wait before it (PM2's exponential
        delay, from the start again once it had run healthily for `reset_after`)."""
        now = trio.current_time()
        child.restart_times.append(now)
        while now - child.restart_times[0] > self.intensity.period:
            child.restart_times.popleft()
        healthy_since = child.started_clock
        if healthy_since is not None and now - healthy_since >= self.backoff.reset_after:
            child.consecutive = 0
        delay = self.backoff.delay(child.consecutive)
        child.consecutive += 1
        child.started_clock = None
        child.backoff_seconds = delay
        child.state = ActorState.BACKING_OFF
        self._on_status(f"reiniciando {child.spec.name} en {delay:.1f} s")
        log.warning("actor %s restarting in %.2fs", child.spec.name, delay)
        return delay

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
        self._stop_requested.set()


def _should_restart(policy: Restart, *, crashed: bool) -> bool:
    if policy == Restart.PERMANENT:
        return True
    if policy == Restart.TRANSIENT:
        return crashed
    return False
