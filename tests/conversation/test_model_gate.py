"""The model gate's policy, on trio's autojump clock: it grows while the model answers on
time, halves on overload, honours Retry-After, and recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import trio

from actors.conversation.llm import retry_after
from actors.conversation.model_gate import ModelGate

MODEL_SECONDS = 3.0


class Model:
    """Callers of a model that answers in `seconds`; records what the gate let through."""

    def __init__(self, gate: ModelGate, seconds: float = MODEL_SECONDS) -> None:
        self.gate = gate
        self.seconds = seconds
        self.calling = 0
        self.most_at_once = 0
        self.went_out: list[float] = []
        self.answered = 0

    async def call(self, overloaded: tuple[str, float | None] | None = None) -> None:
        async with self.gate.slot() as call:
            self.went_out.append(trio.current_time())
            self.calling += 1
            self.most_at_once = max(self.most_at_once, self.calling)
            assert self.calling <= self.gate.limit or overloaded is not None
            try:
                await trio.sleep(self.seconds)
            finally:
                self.calling -= 1
            if overloaded is not None:
                call.overloaded(*overloaded)
                return
        self.answered += 1


async def limits_at(gate: ModelGate, times: list[float]) -> list[int]:
    seen = []
    start = trio.current_time()
    for at in times:
        await trio.sleep_until(start + at)
        seen.append(gate.statistics().limit)
    return seen


async def test_a_burst_is_let_through_a_growing_limit_up_to_the_ceiling(
    autojump_clock: object,
) -> None:
    gate = ModelGate(ceiling=64, initial=4)
    model = Model(gate)
    async with trio.open_nursery() as nursery:
        for _ in range(300):
            nursery.start_soon(model.call)
        # One more per answer on time: the limit doubles with each round of 3 s calls.
        assert await limits_at(gate, [1, 4, 7, 10, 13, 16]) == [4, 8, 16, 32, 64, 64]
        stats = gate.statistics()
        assert stats.in_flight == 64 and stats.waiting > 0
    assert model.answered == 300
    assert model.most_at_once == 64
    assert gate.statistics().backoffs == 0
    assert gate.statistics().latency_target == 2 * MODEL_SECONDS


async def test_an_idle_gate_does_not_grow(autojump_clock: object) -> None:
    gate = ModelGate(ceiling=64, initial=4)
    model = Model(gate)
    for _ in range(20):
        await model.call()
    assert gate.statistics().limit == 4


async def test_overload_halves_the_limit_once_a_round_and_pauses_for_retry_after(
    autojump_clock: object,
) -> None:
    gate = ModelGate(ceiling=64, initial=16)
    model = Model(gate, seconds=1)
    async with trio.open_nursery() as nursery:
        for _ in range(16):  # a whole round answered 429, Retry-After: 10
            nursery.start_soon(model.call, ("429", 10.0))
        await trio.sleep(0.5)
        for _ in range(20):  # waiting behind them
            nursery.start_soon(model.call)
        await trio.sleep(1)  # the 429s are in
        stats = gate.statistics()
        assert stats.limit == 8  # one cut for the round, not sixteen
        assert stats.backoffs == 1
        assert stats.last_backoff is not None
        assert (stats.last_backoff.reason, stats.last_backoff.pause) == ("429", 10.0)
        assert stats.in_flight == 0 and stats.waiting == 20
        assert 9 < stats.paused_for <= 10
    first_429 = 1.0  # the 429s came back 1 s after the start
    assert all(at >= first_429 + 10 for at in model.went_out[16:])  # none went out paused
    assert model.answered == 20


async def test_retry_after_is_capped_and_absent_means_no_pause(autojump_clock: object) -> None:
    gate = ModelGate(ceiling=8, initial=8)
    model = Model(gate, seconds=0)
    await model.call(("503", None))
    assert gate.statistics().paused_for == 0
    await model.call(("429", 3600.0))
    assert gate.statistics().paused_for == 60  # MAX_PAUSE
    start = trio.current_time()
    await model.call()
    assert model.went_out[-1] - start == 60


async def test_the_limit_recovers_after_a_backoff(autojump_clock: object) -> None:
    gate = ModelGate(ceiling=64, initial=64)
    model = Model(gate)
    async with trio.open_nursery() as nursery:
        for _ in range(64):
            nursery.start_soon(model.call, ("429", 1.0))
        await trio.sleep(0.1)
        for _ in range(500):
            nursery.start_soon(model.call)
        # 64 -> 32 at 3 s, paused until 4 s, then one more per answer on time.
        assert await limits_at(gate, [3.5, 7.5, 10.5, 13.5]) == [32, 64, 64, 64]
    assert model.answered == 500
    assert gate.statistics().backoffs == 1


async def test_answers_slower_than_the_target_shrink_the_limit(autojump_clock: object) -> None:
    gate = ModelGate(ceiling=64, initial=10)
    model = Model(gate, seconds=1)
    for _ in range(3):
        await model.call()
    assert gate.statistics().latency_target == 2.0  # twice the fastest, at least 1 s more
    model.seconds = 5  # the model server queues: slower than the target
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(model.call)
    stats = gate.statistics()
    assert stats.limit == 9  # a tenth off, once for the round
    assert stats.last_backoff is not None and stats.last_backoff.reason == "slow"


async def test_a_call_cut_off_after_the_target_counts_as_slow(autojump_clock: object) -> None:
    gate = ModelGate(ceiling=64, initial=10)
    model = Model(gate, seconds=1)
    await model.call()
    model.seconds = 30
    with trio.move_on_after(5):  # the turn's deadline, with the model still thinking
        await model.call()
    assert gate.statistics().limit == 9
    with trio.move_on_after(1.5):  # cut off within the target: nothing learned
        await model.call()
    assert gate.statistics().limit == 9


async def test_a_caller_whose_time_runs_out_in_the_queue_leaves_no_trace(
    autojump_clock: object,
) -> None:
    gate = ModelGate(ceiling=1, initial=1)
    model = Model(gate, seconds=10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(model.call)
        await trio.sleep(1)
        with trio.move_on_after(2):
            await model.call()
        stats = gate.statistics()
        assert (stats.waiting, stats.waited_out, stats.in_flight) == (0, 1, 1)
    start = trio.current_time()
    await model.call()  # the slot it never got is not lost
    assert model.went_out[-1] == start
    assert gate.statistics().limit == 1


async def test_waiting_callers_go_out_first_come_first_served(autojump_clock: object) -> None:
    gate = ModelGate(ceiling=1, initial=1)
    order: list[int] = []

    async def visitor(n: int) -> None:
        async with gate.slot():
            order.append(n)
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(visitor, n)
            await trio.sleep(0.01)
    assert order == [0, 1, 2, 3, 4]


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after(httpx2.Headers({"Retry-After": "10"})) == 10
    assert retry_after(httpx2.Headers({"Retry-After": "1.5"})) == 1.5
    assert retry_after(httpx2.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after(httpx2.Headers({"Retry-After": later})) or 0) <= 30
    assert retry_after(httpx2.Headers({"Retry-After": "soon"})) is None
    assert retry_after(httpx2.Headers({})) is None
