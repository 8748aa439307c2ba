"""Acknowledgements before answers: the gate that answering work passes while webhooks
arrive (actors/ack_first.py), on trio's autojump clock, and its wiring in a running suite."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import trio
import trio.lowlevel
import trio.testing

from actors.ack_first import MAX_DEFER, PACE, QUIET, AckFirst, Work
from tests.conftest import DATA, make_settings, running_suite, wait_for
from tests.fakes.graph_server import FakeGraph
from tests.meta import META_ENV, channel_env, post_signed, whatsapp_text


async def passes_at(gate: AckFirst, times: list[float]) -> None:
    await gate.turn(Work.TURN)
    times.append(trio.current_time())


async def test_without_webhooks_work_goes_at_once(autojump_clock: trio.testing.MockClock) -> None:
    gate = AckFirst()
    times: list[float] = []
    for _ in range(100):
        await passes_at(gate, times)
    assert times[-1] == times[0]
    assert gate.statistics().deferred == 0


async def test_work_waits_for_the_acknowledgement_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = AckFirst()
    gate.arrived()
    times: list[float] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(passes_at, gate, times)
        await trio.sleep(MAX_DEFER / 4)
        assert times == []  # still waiting: the webhook is being acknowledged
        gate.answered()
    assert times[0] - start == MAX_DEFER / 4
    assert gate.statistics().deferred == 1 and gate.statistics().waited_out == 0


async def test_a_flood_never_stops_the_answering(autojump_clock: trio.testing.MockClock) -> None:
    gate = AckFirst()
    gate.arrived()  # and never answered: the ingress stays busy
    times: list[float] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(passes_at, gate, times)
    # One unit at a time, each after MAX_DEFER (and PACE after the one before): the floor.
    assert len(times) == 10
    assert abs(times[-1] - start - (10 * MAX_DEFER + 9 * PACE)) < 1e-6
    assert all(b - a >= MAX_DEFER + PACE - 1e-9 for a, b in itertools.pairwise(times))
    assert gate.statistics().waited_out == 10


async def test_work_under_way_goes_before_new_turns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = AckFirst()
    gate.arrived()  # a flood: every pass waits MAX_DEFER
    passed: list[tuple[float, str]] = []

    async def unit(name: str, work: Work) -> None:
        await gate.turn(work)
        passed.append((trio.current_time(), name))

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(unit, f"turn-{i}", Work.TURN)
        await trio.sleep(MAX_DEFER / 2)  # the first pass is under way
        nursery.start_soon(unit, "send", Work.SEND)
        nursery.start_soon(unit, "classify", Work.CLASSIFY)
    # The pass under way lets through the most urgent waiter at its end: the send.
    order = [name for _at, name in sorted(passed)]
    assert len({at for at, _name in passed}) == 6  # one a pass
    assert order[:2] == ["send", "classify"]
    assert sorted(order[2:]) == ["turn-0", "turn-1", "turn-2", "turn-3"]


async def test_while_webhooks_arrive_units_are_paced_then_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = AckFirst()
    gate.arrived()
    gate.answered()  # nothing in flight, but webhooks are arriving
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(passes_at, gate, times)
    assert all(b - a >= PACE - 1e-9 for a, b in itertools.pairwise(times))
    await trio.sleep(QUIET)  # the burst is over
    quiet: list[float] = []
    for _ in range(5):
        await passes_at(gate, quiet)
    assert quiet[-1] == quiet[0]


async def test_the_ingress_counts_webhooks_only(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path, **META_ENV)) as (suite, client):
        raw = (DATA / "webhooks" / "whatsapp_text.json").read_bytes()
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        r = await client.post("/api/chat", json={"message": "Hola"})
        assert r.status_code == 200
        stats = suite.ack_first.statistics()
        assert (stats.arrivals, stats.in_flight) == (1, 0)
        detailed = (await client.get("/health/detailed")).json()
        assert detailed["work"]["ackFirst"]["arrivals"] == 1
        json.dumps(detailed)


async def test_whatsapp_answering_passes_the_gate_while_a_webhook_is_in_flight(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, client):
        gate = suite.ack_first
        gate.arrived()  # a webhook that takes its time: the answering yields to it
        try:
            raw = whatsapp_text("56911112222", "wamid.gate-1", "Hola, ¿horario?")
            assert (await post_signed(client, "whatsapp", raw)).status_code == 200
            await wait_for(lambda: fake_graph.texts())  # answered all the same
        finally:
            gate.answered()
        # The turn (its classification inside it), the read receipt and the reply each waited.
        assert gate.statistics().deferred >= 3
        assert gate.statistics().waited_out >= 3
        # The web chat never waits at the gate.
        before = gate.statistics().deferred
        gate.arrived()
        try:
            r = await client.post("/api/chat", json={"message": "Hola"})
            assert r.status_code == 200
        finally:
            gate.answered()
        assert gate.statistics().deferred == before


async def test_a_flood_waits_in_the_store_with_lanes_bounded_and_order_kept(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (suite, client):
        ctx = suite.conversation_ctx
        assert ctx is not None and ctx.router is not None
        ctx.router.limits = replace(ctx.router.limits, max_lanes=2)
        most = 0

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, len(ctx.router.lanes) if ctx.router else 0)
                await trio.lowlevel.checkpoint()

        senders = [f"5699000000{i}" for i in range(6)]
        assert suite.db is not None
        db = suite.db

        def pending() -> list[dict[str, object]]:
            return db.all("SELECT id FROM messages WHERE role = 'user' AND status = 'pending'")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            # Two people answered first: their lanes wait idle, taking both places.
            for i in range(2):
                raw = whatsapp_text(f"5698000000{i}", f"wamid.before-{i}", "hola")
                assert (await post_signed(client, "whatsapp", raw)).status_code == 200
            await wait_for(lambda: not pending())
            assert len(ctx.router.lanes) == 2
            for n in range(2):
                for i, sender in enumerate(senders):
                    raw = whatsapp_text(
                        sender, f"wamid.flood-{i}-{n}", f"mensaje {n}", 1764230000 + n
                    )
                    assert (await post_signed(client, "whatsapp", raw)).status_code == 200
            # Liveness: the idle lanes make room (they would otherwise stay 120 s).
            await wait_for(lambda: not pending(), seconds=30)
            nursery.cancel_scope.cancel()
        assert most <= 2
        answered = db.all(
            "SELECT u.conversation_id, u.content, r.id AS reply FROM messages u"
            " JOIN messages r ON r.reply_to = u.id ORDER BY u.conversation_id, u.id"
        )
        # Each message answered once (or with the one before it, as a batch), in order.
        replies = db.all("SELECT reply_to FROM messages WHERE role = 'assistant'")
        assert len(replies) == len({r["reply_to"] for r in replies})
        by_conversation: dict[int, list[int]] = {}
        for row in answered:
            by_conversation.setdefault(row["conversation_id"], []).append(row["reply"])
        assert len(by_conversation) == 8
        assert all(ids == sorted(ids) for ids in by_conversation.values())


async def test_web_visitors_beyond_the_bound_end_idle_lanes_first(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (suite, client):
        ctx = suite.conversation_ctx
        assert ctx is not None and ctx.router is not None
        ctx.router.limits = replace(ctx.router.limits, max_lanes=2)
        for i in range(5):
            r = await client.post("/api/chat", json={"message": "Hola", "sessionId": f"web-{i}"})
            assert r.status_code == 200  # a web visitor is never held back
            assert len(ctx.router.lanes) <= 2  # idle lanes made room (they hold memory)
