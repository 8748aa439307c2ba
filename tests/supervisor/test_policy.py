"""Supervisor policy on a virtual clock: restart types, backoff, intensity, ordering."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

from supervisor.errors import SupervisorGaveUp
from supervisor.supervisor import (
    ActorState,
    Backoff,
    ChildSpec,
    Intensity,
    Restart,
    Supervisor,
)


class Boom(Exception):
    pass


class ToyActor:
    """An actor that records its life and does what the test tells it to."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        crash_times: int = 0,
        exit_normally_after: float | None = None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.crash_times = crash_times
        self.exit_normally_after = exit_normally_after
        self.starts: list[float] = []
        self.crash_now = trio.Event()

    async def run(self, stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        self.starts.append(trio.current_time())
        self.journal.append(f"start {self.name}")
        task_status.started()
        if self.crash_times:
            self.crash_times -= 1
            await trio.lowlevel.checkpoint()
            raise Boom(f"{self.name} exploded")
        async with trio.open_nursery() as nursery:

            async def crash_on_demand() -> None:
                await self.crash_now.wait()
                self.crash_now = trio.Event()
                raise Boom("on demand")

            nursery.start_soon(crash_on_demand)
            if self.exit_normally_after is not None:
                with trio.move_on_after(self.exit_normally_after):
                    await stop.wait()
            else:
                await stop.wait()
            self.journal.append(f"stop {self.name}")
            nursery.cancel_scope.cancel()


def spec(actor: ToyActor, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(actor.name, actor.run, restart)


async def run_for(sup: Supervisor, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(seconds)
        sup.shutdown()


def state_of(sup: Supervisor, name: str) -> ActorState:
    return {s.name: s for s in sup.statistics()}[name].state


async def test_children_start_in_order_and_stop_in_reverse(autojump_clock: object) -> None:
    journal: list[str] = []
    actors = [ToyActor(n, journal) for n in ("store", "conversation", "ingress")]
    sup = Supervisor([spec(a) for a in actors])
    await run_for(sup, 1)
    assert journal == [
        "start store",
        "start conversation",
        "start ingress",
        "stop ingress",
        "stop conversation",
        "stop store",
    ]
    assert all(s.state == ActorState.STOPPED for s in sup.statistics())


async def test_permanent_restarts_after_crash_and_after_normal_exit(autojump_clock: object) -> None:
    journal: list[str] = []
    crasher = ToyActor("crasher", journal, crash_times=2)
    quitter = ToyActor("quitter", journal, exit_normally_after=100)
    sup = Supervisor([spec(crasher), spec(quitter)], intensity=Intensity(10, 30))
    await run_for(sup, 150)
    stats = {s.name: s for s in sup.statistics()}
    assert stats["crasher"].restarts == 2
    assert stats["crasher"].last_error is not None
    assert stats["crasher"].last_error.type == "Boom"
    assert stats["quitter"].restarts == 1  # exited normally at t=100, came back


async def test_transient_restarts_only_on_crash(autojump_clock: object) -> None:
    journal: list[str] = []
    crasher = ToyActor("crasher", journal, crash_times=1)
    quitter = ToyActor("quitter", journal, exit_normally_after=5)
    sup = Supervisor([spec(crasher, Restart.TRANSIENT), spec(quitter, Restart.TRANSIENT)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(20)
        assert state_of(sup, "crasher") == ActorState.RUNNING
        assert state_of(sup, "quitter") == ActorState.STOPPED
        assert len(quitter.starts) == 1
        assert len(crasher.starts) == 2
        sup.shutdown()


async def test_temporary_is_never_restarted(autojump_clock: object) -> None:
    journal: list[str] = []
    once = ToyActor("once", journal, crash_times=1)
    steady = ToyActor("steady", journal)
    sup = Supervisor([spec(once, Restart.TEMPORARY), spec(steady)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(60)
        assert state_of(sup, "once") == ActorState.FAILED
        assert len(once.starts) == 1
        assert state_of(sup, "steady") == ActorState.RUNNING
        sup.shutdown()


async def test_backoff_grows_to_cap_and_resets_after_healthy_run(autojump_clock: object) -> None:
    backoff = Backoff(initial=0.1, factor=1.5, cap=15, reset_after=30)
    assert [round(backoff.delay(n), 4) for n in range(4)] == [0.1, 0.15, 0.225, 0.3375]
    assert backoff.delay(50) == 15

    journal: list[str] = []
    actor = ToyActor("flaky", journal, crash_times=15)
    sup = Supervisor([spec(actor)], intensity=Intensity(100, 30), backoff=backoff)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(200)
        gaps = [b - a for a, b in zip(actor.starts, actor.starts[1:], strict=False)]
        assert gaps[0] == pytest.approx(0.1, abs=1e-6)
        assert gaps[1] == pytest.approx(0.15, abs=1e-6)
        assert all(g <= 15 + 1e-6 for g in gaps)
        assert gaps[-1] == pytest.approx(15, abs=1e-6)  # 15 crashes: capped by then
        # Now healthy for > 30 s: the next crash backs off from the start again.
        before = len(actor.starts)
        crashed = trio.current_time()
        actor.crash_now.set()
        await trio.sleep(1)
        assert len(actor.starts) == before + 1
        # The restart after the healthy run came 0.1 s after the crash, not 15 s.
        assert actor.starts[-1] - crashed == pytest.approx(0.1, abs=1e-6)
        assert state_of(sup, "flaky") == ActorState.RUNNING
        sup.shutdown()
    assert sup.statistics()[0].restarts == 16


async def test_intensity_exceeded_stops_everything_and_raises(autojump_clock: object) -> None:
    journal: list[str] = []
    steady_a = ToyActor("a", journal)
    doomed = ToyActor("doomed", journal, crash_times=100)
    steady_c = ToyActor("c", journal)
    sup = Supervisor([spec(steady_a), spec(doomed), spec(steady_c)], intensity=Intensity(5, 30))
    with pytest.RaisesGroup(SupervisorGaveUp, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.run)
    assert len(doomed.starts) == 6  # first run + 5 restarts, the 6th crash gives up
    assert state_of(sup, "doomed") == ActorState.FAILED
    assert state_of(sup, "a") == ActorState.STOPPED
    assert [e for e in journal if e.startswith("stop")] == ["stop c", "stop a"]


async def test_slow_restarts_stay_within_intensity(autojump_clock: object) -> None:
    """Five restarts in 30 s is the limit, not five restarts ever."""
    journal: list[str] = []
    actor = ToyActor("sometimes", journal)
    sup = Supervisor([spec(actor)], intensity=Intensity(5, 30))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for _ in range(12):
            actor.crash_now.set()
            await trio.sleep(10)
        assert state_of(sup, "sometimes") == ActorState.RUNNING
        assert sup.statistics()[0].restarts == 12
        sup.shutdown()


async def test_stuck_child_is_cancelled_after_its_shutdown_timeout(autojump_clock: object) -> None:
    stopped_at: list[float] = []

    async def deaf(stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()  # ignores stop
        finally:
            stopped_at.append(trio.current_time())

    sup = Supervisor([ChildSpec("deaf", deaf, shutdown_timeout=3)])
    start = trio.current_time()
    await run_for(sup, 1)
    assert stopped_at[0] - start == pytest.approx(4, abs=1e-6)


async def test_channels_survive_a_restart(autojump_clock: object) -> None:
    """The supervisor's channel ends are handed to every incarnation and never closed by a
    crash, so a neighbour keeps sending across the restart."""
    send, receive = trio.open_memory_channel[int](4)
    got: list[int] = []
    crashes = {"left": 1}

    def consumer_factory() -> Callable[..., object]:
        async def consumer(stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            async for item in receive:
                got.append(item)
                if item == 2 and crashes["left"]:
                    crashes["left"] -= 1
                    raise Boom("crash on 2")

        return consumer

    async def producer(stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        for i in range(1, 6):
            await send.send(i)
            await trio.sleep(1)
        await stop.wait()

    sup = Supervisor([ChildSpec("consumer", consumer_factory()), ChildSpec("producer", producer)])
    await run_for(sup, 10)
    assert got == [1, 2, 3, 4, 5]
    assert {s.name: s.restarts for s in sup.statistics()}["consumer"] == 1
