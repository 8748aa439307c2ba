"""Incarnations on a virtual clock: crashes before ready, whole exception groups, stopping
what ignores its stop event, and no task left behind."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

from supervisor.errors import SupervisorGaveUp
from supervisor.supervisor import (
    ActorState,
    ActorStatistics,
    ChildSpec,
    Intensity,
    Restart,
    Supervisor,
)


class Boom(Exception):
    pass


class Actor:
    """An actor with a helper task of its own, told by the test how to misbehave."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        crashes_before_ready: int = 0,
        deaf: bool = False,
        start_takes: float = 0,
    ) -> None:
        self.name = name
        self.journal = journal
        self.crashes_before_ready = crashes_before_ready
        self.deaf = deaf  # ignores its stop event: only a cancel ends it
        self.start_takes = start_takes
        self.crash_now = trio.Event()
        self.starts: list[float] = []
        self.cancelled_at: list[float] = []

    async def run(self, stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        self.starts.append(trio.current_time())
        self.journal.append(f"start {self.name}")
        await trio.sleep(self.start_takes)
        if self.crashes_before_ready:
            self.crashes_before_ready -= 1
            raise Boom(f"{self.name} failed to start")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._crash_on_demand)
            task_status.started()
            try:
                if self.deaf:
                    await trio.sleep_forever()
                await stop.wait()
            except trio.Cancelled:
                self.cancelled_at.append(trio.current_time())
                raise
            self.journal.append(f"stop {self.name}")
            nursery.cancel_scope.cancel()

    async def _crash_on_demand(self) -> None:
        await self.crash_now.wait()
        self.crash_now = trio.Event()
        raise Boom(f"{self.name} exploded")


def spec(actor: Actor, restart: Restart = Restart.PERMANENT, **kwargs: float) -> ChildSpec:
    return ChildSpec(actor.name, actor.run, restart, **kwargs)


@asynccontextmanager
async def running(sup: Supervisor) -> AsyncIterator[None]:
    """`sup` run until ready, shut down on leaving. On the virtual clock a hang fails the
    test (TooSlowError) instead of blocking the run."""
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            yield
            sup.shutdown()


def stats_of(sup: Supervisor, name: str) -> ActorStatistics:
    return {s.name: s for s in sup.statistics()}[name]


def task_count() -> int:
    """Every task alive in this trio run."""

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return count(root)


def test_a_shutdown_timeout_must_be_positive() -> None:
    async def actor(stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="shutdown_timeout"):
            ChildSpec("a", actor, shutdown_timeout=bad)


async def test_a_crash_is_logged_as_the_whole_exception_group(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    both_fail = trio.Event()
    crashes = [1]

    async def fail(error: Exception) -> None:
        await both_fail.wait()
        raise error

    async def twin(stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            if crashes[0]:
                crashes[0] -= 1
                nursery.start_soon(fail, ValueError("x"))
                nursery.start_soon(fail, KeyError("y"))
            task_status.started()
            await stop.wait()

    sup = Supervisor([ChildSpec("twin", twin)])
    caplog.set_level(logging.ERROR, logger="supervisor")
    async with running(sup):
        both_fail.set()
        await trio.sleep(1)
        error = stats_of(sup, "twin").last_error

    (record,) = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert record.exc_info is not None
    logged = record.exc_info[1]
    assert isinstance(logged, ExceptionGroup)
    assert {type(e) for e in logged.exceptions} == {ValueError, KeyError}
    assert "ValueError: x" in caplog.text and "KeyError: 'y'" in caplog.text  # both tracebacks
    assert error is not None
    assert error.type == "ExceptionGroup"
    assert sorted(error.message.split("; ")) == ["KeyError: 'y'", "ValueError: x"]


async def test_a_group_of_one_error_reads_as_that_error(autojump_clock: object) -> None:
    journal: list[str] = []
    actor = Actor("one", journal)  # its helper task crashes inside the actor's nursery
    sup = Supervisor([spec(actor)])
    async with running(sup):
        actor.crash_now.set()
        await trio.sleep(1)
        error = stats_of(sup, "one").last_error
    assert error is not None
    assert (error.type, error.message) == ("Boom", "one exploded")


async def test_a_crash_before_ready_is_restarted_and_holds_back_the_next(
    autojump_clock: object,
) -> None:
    journal: list[str] = []
    first = Actor("first", journal, crashes_before_ready=2)
    second = Actor("second", journal)
    sup = Supervisor([spec(first), spec(second)])
    async with running(sup):
        assert trio.current_time() == pytest.approx(0.1 + 0.15)  # two backoffs
        assert journal == ["start first"] * 3 + ["start second"]
        stats = stats_of(sup, "first")
        assert (stats.state, stats.restarts, stats.recent_restarts) == (ActorState.RUNNING, 2, 2)
        error = stats.last_error
        assert error is not None
        assert (error.type, error.message) == ("Boom", "first failed to start")


async def test_crashing_at_start_past_the_intensity_gives_up_before_ready(
    autojump_clock: object,
) -> None:
    journal: list[str] = []
    steady = Actor("steady", journal)
    doomed = Actor("doomed", journal, crashes_before_ready=100)
    never = Actor("never", journal)
    sup = Supervisor([spec(steady), spec(doomed), spec(never)], intensity=Intensity(3, 30))
    reported: list[bool] = []
    with trio.fail_after(60), pytest.RaisesGroup(SupervisorGaveUp):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            reported.append(True)
    assert reported == []
    assert len(doomed.starts) == 4
    assert never.starts == []
    assert journal[-1] == "stop steady"
    assert stats_of(sup, "doomed").state == ActorState.FAILED


async def test_a_temporary_child_failing_at_start_is_left_down(autojump_clock: object) -> None:
    journal: list[str] = []
    once = Actor("once", journal, crashes_before_ready=1)
    after = Actor("after", journal)
    sup = Supervisor([spec(once, Restart.TEMPORARY), spec(after)])
    async with running(sup):
        await trio.sleep(10)
        assert (stats_of(sup, "once").state, len(once.starts)) == (ActorState.FAILED, 1)
        assert stats_of(sup, "after").state == ActorState.RUNNING


async def test_an_operator_restart_is_immediate_and_not_counted(autojump_clock: object) -> None:
    journal: list[str] = []
    actor = Actor("a", journal)
    sup = Supervisor([spec(actor)], intensity=Intensity(2, 30))
    async with running(sup):
        for _ in range(5):
            before = trio.current_time()
            await sup.restart("a")
            assert trio.current_time() == before
        stats = stats_of(sup, "a")
        assert (stats.state, stats.restarts, stats.recent_restarts) == (ActorState.RUNNING, 5, 0)
        assert journal.count("stop a") == 5
        with pytest.raises(KeyError):
            await sup.restart("nobody")


async def test_an_operator_restart_cancels_a_deaf_actor_after_its_shutdown_timeout(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []
    deaf = Actor("deaf", journal, deaf=True)
    sup = Supervisor([spec(deaf, shutdown_timeout=3)])
    async with running(sup):
        await trio.sleep(1)
        await sup.restart("deaf")
        assert deaf.cancelled_at == [pytest.approx(4)]
        assert deaf.starts == [0, pytest.approx(4)]
        stats = stats_of(sup, "deaf")
        assert (stats.state, stats.restarts, stats.last_error) == (ActorState.RUNNING, 1, None)
    assert deaf.cancelled_at == [pytest.approx(4), pytest.approx(7)]
    assert "actor deaf did not stop in 3s; cancelled" in caplog.text


async def test_an_operator_restart_finishes_when_its_caller_stops_waiting(
    autojump_clock: object,
) -> None:
    journal: list[str] = []
    deaf = Actor("deaf", journal, deaf=True)
    sup = Supervisor([spec(deaf, shutdown_timeout=3)])
    async with running(sup):
        with trio.move_on_after(1):  # say the dashboard's request was dropped
            await sup.restart("deaf")
        await trio.sleep(5)
        assert deaf.starts == [0, pytest.approx(3)]
        assert stats_of(sup, "deaf").state == ActorState.RUNNING


async def test_a_shutdown_during_a_restart_waits_for_it_then_stops_in_reverse(
    autojump_clock: object,
) -> None:
    journal: list[str] = []
    base = Actor("base", journal)
    slow = Actor("slow", journal)
    sup = Supervisor([spec(base), spec(slow)])
    async with running(sup):
        slow.start_takes = 10
        slow.crash_now.set()
        await trio.sleep(5)  # its next start is under way
        assert stats_of(sup, "slow").state == ActorState.STARTING
    assert trio.current_time() == pytest.approx(0.1 + 10)  # the start was not cut short
    assert journal == ["start base", "start slow", "start slow", "stop slow", "stop base"]
    assert all(s.state == ActorState.STOPPED for s in sup.statistics())


async def test_a_shutdown_during_a_backoff_starts_nothing(autojump_clock: object) -> None:
    journal: list[str] = []
    actor = Actor("a", journal)
    sup = Supervisor([spec(actor)])
    async with running(sup):
        actor.crash_now.set()
        await trio.sleep(0.05)  # inside its 0.1 s backoff
        assert stats_of(sup, "a").state == ActorState.BACKING_OFF
    assert len(actor.starts) == 1
    assert stats_of(sup, "a").state == ActorState.STOPPED


async def test_no_task_outlives_its_incarnation(autojump_clock: object) -> None:
    journal: list[str] = []
    crashy = Actor("crashy", journal)
    deaf = Actor("deaf", journal, deaf=True)
    sup = Supervisor([spec(crashy), spec(deaf, shutdown_timeout=1)])
    before = task_count()
    async with running(sup):
        steady = task_count()
        for _ in range(10):
            crashy.crash_now.set()
            await trio.sleep(20)  # a crash restart, outside the intensity's 5 in 30 s
            await sup.restart("crashy")
            await sup.restart("deaf")
        assert (stats_of(sup, "crashy").restarts, stats_of(sup, "deaf").restarts) == (20, 10)
        assert task_count() == steady
    assert task_count() == before
