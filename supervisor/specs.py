"""What the supervisor is told of each child (`ChildSpec` and its policies) and what it tells
of them (`ActorStatistics`, `ErrorInfo`)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import trio

from store.db import utc_now

SECONDS = 1.0
DEFAULT_SHUTDOWN_TIMEOUT = 5 * SECONDS
ERROR_MESSAGE_MAX_CHARS = 500


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
    """An actor's entry point: ready once it calls `task_status.started()`; it returns soon
    after `stop` is set."""

    def __call__(
        self, stop: trio.Event, /, *, task_status: trio.TaskStatus[None]
    ) -> Awaitable[None]: ...


@dataclass(frozen=True)
class ChildSpec:
    name: str
    start: ActorMain
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT

    def __post_init__(self) -> None:
        if not self.shutdown_timeout > 0:  # also refuses NaN
            raise ValueError(
                f"actor {self.name}: shutdown_timeout must be > 0, not {self.shutdown_timeout!r}"
            )


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
    """A crash, summarised. `type` is the error's type name; for an exception group holding
    several errors it is the group's (`ExceptionGroup`) and `message` lists every error as
    `Type: message`, joined by "; ". A group of one error reads as that error. `message` is
    cut to 500 characters."""

    type: str
    message: str
    at: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        errors = leaves(exc)
        if len(errors) == 1:
            kind, message = type(errors[0]).__name__, str(errors[0])
        else:
            kind = type(exc).__name__
            message = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in errors)
        return cls(kind, message[:ERROR_MESSAGE_MAX_CHARS], utc_now())


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


def leaves(exc: BaseException) -> list[BaseException]:
    """Every error inside (possibly nested) exception groups, in order."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
