"""Counters that outlive actor incarnations: the suite holds one of each, the actors count
into them, health and metrics read them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TypedDict

import trio

from store.db import utc_now

from .latency import Latencies

RECENT_ANSWERS = 100  # outcomes kept for health's "most calls failed lately"


class LLMError(TypedDict):
    message: str
    at: str  # UTC, as the store writes time


@dataclass
class LLMStatistics:
    """`calls` counts attempts; `errors` counts answers given up (after retries and repair,
    a timeout or a cancellation included), `timeouts` those of them that ran out of time;
    `waited_out` turns whose time ran out in the model gate's queue, before any call went
    out (the model did not fail them: it was busy with the turns before)."""

    calls: int = 0
    answers: int = 0  # turns the model answered
    errors: int = 0
    timeouts: int = 0
    waited_out: int = 0
    retries: int = 0
    repairs: int = 0
    last_error: LLMError | None = None
    failures_in_a_row: int = 0
    # (trio.current_time(), answered) of the newest answers, for health.
    recent: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=RECENT_ANSWERS))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: Latencies = field(default_factory=Latencies)

    def answered(self) -> None:
        self.answers += 1
        self.failures_in_a_row = 0
        self.recent.append((trio.current_time(), True))

    def failed(self, message: str, *, timeout: bool = False) -> None:
        self.errors += 1
        self.timeouts += timeout
        self.failures_in_a_row += 1
        self.last_error = {"message": message, "at": utc_now()}
        self.recent.append((trio.current_time(), False))


@dataclass
class NotifierStatistics:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    owner_sent: int = 0
    owner_retried: int = 0
    owner_failed: int = 0
    owner_resent_after_crash: int = 0
    sends_resent_after_crash: int = 0  # WhatsApp/Instagram sends cut mid-request by a crash
    follow_up_runs: int = 0
    # For health: attempts at Graph (sends and receipts) and at the owner that failed since
    # the last one that went through, and when each last went through or failed (UTC).
    send_failures_in_a_row: int = 0
    last_send_ok_at: str | None = None
    last_send_failure_at: str | None = None
    owner_failures_in_a_row: int = 0
    owner_last_ok_at: str | None = None
    owner_last_failure_at: str | None = None

    def send_went_through(self) -> None:
        self.send_failures_in_a_row = 0
        self.last_send_ok_at = utc_now()

    def send_failed(self) -> None:
        self.send_failures_in_a_row += 1
        self.last_send_failure_at = utc_now()

    def owner_went_through(self) -> None:
        self.owner_failures_in_a_row = 0
        self.owner_last_ok_at = utc_now()

    def owner_failed_once(self) -> None:
        self.owner_failures_in_a_row += 1
        self.owner_last_failure_at = utc_now()
