"""The model gate: how many calls go to the model at once, learned from its answers.

AIMD, as TCP's congestion window and Netflix's concurrency-limits: the limit starts small and
grows by one with each answer back within the latency target while the limit was in use
(so it doubles with each round of calls); a 429, a 5xx or a timeout halves it, an answer
slower than the target takes a tenth off. One cut per round: a call that went out before
the last cut does not cut again for the same trouble. A `Retry-After` closes the gate until
it passes: no call goes out meanwhile, and the waiting calls keep their place. The limit
stays between 1 and the ceiling (`LLM_MAX_CONCURRENCY`).

The brain takes a slot for each attempt, so waiting here is not an attempt: a visitor queued
behind a burst spends the turn's time, none of the model's retries."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from math import inf

import trio

SECONDS = 1.0
INITIAL_LIMIT = 8  # the fixed limit this gate replaced: safe for any model server
FLOOR = 1
OVERLOAD_BACKOFF = 0.5  # the limit's factor on a 429, a 5xx or a timeout
SLOW_BACKOFF = 0.9  # on an answer slower than the latency target
LATENCY_TOLERANCE = 2.0  # on time: within twice the fastest recent answer,
LATENCY_SLACK = 1 * SECONDS  # or within a second more than it, whichever is longer
BASELINE_ANSWERS = 100  # the fastest of these recent answers is the baseline
MAX_PAUSE = 60 * SECONDS  # a longer Retry-After is read as this (the turn ends sooner anyway)


@dataclass(frozen=True)
class Backoff:
    reason: str  # "429", "503", "timeout", "slow"
    at: float  # trio.current_time()
    limit: int  # after the cut
    pause: float  # seconds of Retry-After honoured (0: none)


@dataclass(frozen=True)
class ModelGateStatistics:
    limit: int
    ceiling: int
    in_flight: int  # calls at the model
    waiting: int  # calls queued for a slot, or for a Retry-After to pass
    paused_for: float  # seconds until calls may go out again (0: open)
    latency_target: float | None  # None until an answer came back
    backoffs: int
    last_backoff: Backoff | None
    waited_out: int  # callers cancelled (their turn's time out) before their call went out


@dataclass
class ModelCall:
    """One call through the gate. The caller says when the model answered that it is
    overloaded; an answer is a normal exit from the slot."""

    epoch: int
    started: float = field(init=False, default=-inf)  # when it went out, after any pause
    overload: tuple[str, float | None] | None = field(init=False, default=None)

    def overloaded(self, reason: str, retry_after: float | None = None) -> None:
        self.overload = (reason, retry_after)


class ModelGate:
    def __init__(self, ceiling: int, initial: int = INITIAL_LIMIT) -> None:
        if ceiling < FLOOR:
            raise ValueError(f"the ceiling must be at least {FLOOR}, got {ceiling}")
        self.ceiling = ceiling
        self._limit = float(max(FLOOR, min(initial, ceiling)))
        self._taken = 0  # slots handed out: calling, or waiting for a pause to pass
        self._calling = 0
        self._pausing = 0
        self._lot = trio.lowlevel.ParkingLot()  # FIFO: first come, first called
        self._paused_until = -inf
        self._epoch = 0  # bumped by each cut
        self._answers: deque[float] = deque(maxlen=BASELINE_ANSWERS)
        self._backoffs = 0
        self._last_backoff: Backoff | None = None
        self._waited_out = 0

    @property
    def limit(self) -> int:
        return max(FLOOR, int(self._limit))

    def latency_target(self) -> float | None:
        if not self._answers:
            return None
        fastest = min(self._answers)
        return max(fastest * LATENCY_TOLERANCE, fastest + LATENCY_SLACK)

    def statistics(self) -> ModelGateStatistics:
        return ModelGateStatistics(
            limit=self.limit,
            ceiling=self.ceiling,
            in_flight=self._calling,
            waiting=len(self._lot) + self._pausing,
            paused_for=max(0.0, self._paused_until - trio.current_time()),
            latency_target=self.latency_target(),
            backoffs=self._backoffs,
            last_backoff=self._last_backoff,
            waited_out=self._waited_out,
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[ModelCall]:
        """Wait for room (and for any Retry-After to pass), then make one call."""
        await self._acquire()
        call = ModelCall(self._epoch)
        answered = False
        try:
            await self._wait_out_pause()
            call.epoch, call.started = self._epoch, trio.current_time()
            self._calling += 1
            try:
                yield call
                answered = True
            finally:
                self._calling -= 1
        finally:
            self._taken -= 1
            self._settle(call, answered)
            self._wake()

    async def _acquire(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._taken < self.limit and not self._lot:
            self._taken += 1
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        try:
            await self._lot.park()  # `_wake` hands the slot over, already counted
        except trio.Cancelled:
            self._waited_out += 1
            raise

    async def _wait_out_pause(self) -> None:
        while trio.current_time() < self._paused_until:  # a new 429 may extend it meanwhile
            self._pausing += 1
            try:
                await trio.sleep_until(self._paused_until)
            except trio.Cancelled:
                self._waited_out += 1
                raise
            finally:
                self._pausing -= 1

    def _wake(self) -> None:
        room = self.limit - self._taken
        if room > 0 and self._lot:
            self._taken += len(self._lot.unpark(count=room))

    def _settle(self, call: ModelCall, answered: bool) -> None:
        """Learn from one call that went out: grow on an answer on time, cut on trouble."""
        if call.started == -inf:
            return  # it never went out
        now = trio.current_time()
        elapsed = now - call.started
        if call.overload is not None:
            reason, retry_after = call.overload
            pause = min(retry_after or 0.0, MAX_PAUSE)
            self._paused_until = max(self._paused_until, now + pause)
            self._cut(call, OVERLOAD_BACKOFF, reason, pause)
            return
        target = self.latency_target()
        on_time = target is None or elapsed <= target
        if answered:
            self._answers.append(elapsed)
            if on_time:
                self._grow()
                return
        if not on_time:  # slow, or cut off (the turn's deadline) after running past the target
            self._cut(call, SLOW_BACKOFF, "slow", 0.0)

    def _grow(self) -> None:
        # Only while the limit is used: an idle gate learns nothing about a higher one.
        in_use = 2 * (self._taken + 1) >= self.limit or len(self._lot) > 0
        if in_use and self._limit < self.ceiling:
            self._limit = min(float(self.ceiling), self._limit + 1)

    def _cut(self, call: ModelCall, factor: float, reason: str, pause: float) -> None:
        if call.epoch < self._epoch:
            return  # it went out before the last cut, which answered this trouble already
        self._epoch += 1
        self._limit = max(float(FLOOR), self._limit * factor)
        self._backoffs += 1
        self._last_backoff = Backoff(reason, trio.current_time(), self.limit, pause)
