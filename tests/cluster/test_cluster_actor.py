"""The cluster actor on both backends: one leader among the processes of a store, each
process's heartbeat and leases kept while it lives, released on a clean stop, and taken
over once a killed one's lapse (here with short times: a beat every 0.2 s, leases 0.6 s)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager

import trio

from actors import cluster
from actors.cluster import actor as cluster_actor
from sales.identity import Identity
from store import heartbeats, leases
from store.backends import Store
from store.db import Database

TTL, INTERVAL = 0.6, 0.2


class Process:
    """One process of the cluster: its own connection, state and cluster actor."""

    def __init__(self, db: Database, node: str) -> None:
        self.db = db
        self.state = cluster.ClusterState(Identity(node, 1))
        self.ctx = cluster.ClusterContext(
            db, self.state, lambda: {"notifier": {"state": "running"}}, TTL, INTERVAL
        )
        self.stop = trio.Event()
        self.scope = trio.CancelScope()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.scope:
            await cluster.run(self.ctx, self.stop, task_status=task_status)

    def kill(self) -> None:
        """As kill -9: nothing runs after it (no release, no goodbye)."""
        self.scope.cancel()
        self.state._leader_until = float("-inf")  # a dead process leads nothing


def connections(store: Store, stack: ExitStack, n: int) -> Iterator[Database]:
    for _ in range(n):
        yield stack.enter_context(store.connection())


@asynccontextmanager
async def cluster_of(store: Store, *nodes: str) -> AsyncIterator[list[Process]]:
    with ExitStack() as stack:
        processes = [
            Process(db, node)
            for db, node in zip(connections(store, stack, len(nodes)), nodes, strict=True)
        ]
        async with trio.open_nursery() as nursery:
            for p in processes:
                await nursery.start(p.run)
            yield processes
            for p in processes:
                p.stop.set()


def leaders(processes: list[Process]) -> list[str]:
    return [p.state.owner for p in processes if p.state.is_leader()]


async def test_one_leader_among_the_processes_and_the_next_when_it_stops(store: Store) -> None:
    async with cluster_of(store, "a", "b", "c") as processes:
        for _ in range(10):
            await trio.sleep(INTERVAL / 2)
            assert len(leaders(processes)) == 1
        first = next(p for p in processes if p.state.is_leader())
        with store.connection() as db:
            assert [h.worker for h in heartbeats.live(db)] == ["a/1", "b/1", "c/1"]
            assert heartbeats.live(db)[0].actors == {"notifier": {"state": "running"}}
            assert leases.holder(db, leases.LEADER) == first.state.owner
        first.stop.set()  # a clean stop hands leadership over within a beat
        with trio.fail_after(INTERVAL * 3):
            while len(leaders(processes)) != 1 or first.state.is_leader():
                await trio.sleep(0.02)
        with store.connection() as db:
            assert first.state.owner not in [h.worker for h in heartbeats.live(db)]
            assert first.state.owner not in leases.counts(db)


async def test_a_killed_process_leases_lapse_and_another_takes_its_work(store: Store) -> None:
    async with cluster_of(store, "a", "b") as (a, b):
        await trio.sleep(INTERVAL * 2)
        dead, alive = (a, b) if a.state.is_leader() else (b, a)
        assert leases.take(dead.db, leases.conversation(1), dead.state.owner, TTL)
        for _ in range(5):  # held while the process lives: renewed with every beat
            await trio.sleep(INTERVAL)
            assert leases.holder(alive.db, leases.conversation(1)) == dead.state.owner
        dead.kill()
        killed_at = trio.current_time()
        with trio.fail_after(TTL + INTERVAL * 3):
            while not alive.state.is_leader():
                await trio.sleep(0.02)
        assert trio.current_time() - killed_at >= TTL - INTERVAL  # not before it lapsed
        assert leases.holder(alive.db, leases.conversation(1)) is None
        assert leases.take(alive.db, leases.conversation(1), alive.state.owner, TTL)
        assert dead.state.owner not in leases.counts(alive.db)
        with store.connection() as db:  # its heartbeat stays, silent: it is taken for dead
            assert [h.worker for h in heartbeats.live(db, within=TTL)] == [alive.state.owner]


async def test_a_process_cut_from_its_store_stops_leading_before_its_lease_lapses(
    store: Store,
) -> None:
    async with cluster_of(store, "a") as (a,):
        assert a.state.is_leader()
        a.scope.cancel()  # it beats no more (as if the store stopped answering)
        with store.connection() as db:
            expires = leases.held(db, a.state.owner)[0].expires_at
        with trio.fail_after(TTL):
            while a.state.is_leader():
                await trio.sleep(0.02)
        with store.connection() as db:
            assert leases.holder(db, leases.LEADER) == a.state.owner  # still, until it lapses
            assert leases.held(db, a.state.owner)[0].expires_at == expires


async def test_a_process_restarted_under_a_dead_ones_name_frees_its_leases(store: Store) -> None:
    """A worker restarted by its parent (or a suite by systemd) comes back under the same
    name: the dead process's leases name work the new one does not hold, so its first beat
    releases them instead of renewing them for good; a restart of the cluster actor inside
    one process keeps them (its lanes still hold that work)."""
    with store.connection() as db, store.connection() as other:
        first = Process(db, "nodo-a")
        cluster_actor.beat(first.ctx)
        assert leases.take(db, leases.conversation(7), first.state.owner, TTL * 100)
        first.kill()
        again = Process(db, "nodo-a")
        again.state = cluster.ClusterState(first.state.identity, pid=first.state.pid + 1)
        again.ctx = cluster.ClusterContext(db, again.state, lambda: {}, TTL * 100, INTERVAL)
        cluster_actor.beat(again.ctx)  # its first beat, as its actor starts
        assert leases.holder(db, leases.conversation(7)) is None
        assert leases.take(other, leases.conversation(7), "nodo-b/1", TTL * 100)
        # The same process beating again (its actor restarted) keeps what it holds.
        assert leases.take(db, leases.conversation(8), again.state.owner, TTL * 100)
        cluster_actor.beat(again.ctx)
        assert leases.holder(db, leases.conversation(8)) == again.state.owner
