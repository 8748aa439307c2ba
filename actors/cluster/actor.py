"""The cluster actor: how this process takes part in a cluster through the store.

Every BEAT_INTERVAL it writes its heartbeat (identity, pid, its actors' states), renews every
lease it holds (conversations it is answering, its claims) and takes or keeps the `leader`
lease. The backup, the daily summary and the follow-up planner run only while this process
is the leader (`ClusterState.is_leader`). Leases last LEASE_TTL (6 s), so those of a process
killed with -9 lapse within 10 s and another takes its work; a clean stop releases them and
ends its heartbeat at once. Alone on its store, a process is its own leader within one beat.

Leadership is believed locally only until a little before the lease would expire counted
from the moment it was asked for: a process cut off from its store stops acting as leader
before another can take the lease."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import trio

from sales.identity import Identity
from store import heartbeats, leases
from store.db import Database, utc_now
from store.errors import StoreUnavailable

log = logging.getLogger("cluster")

SECONDS = 1.0
BEAT_INTERVAL = 2 * SECONDS
LEADER_SHARE = 5 / 6  # of the lease's time believed leader: 5 s of a 6 s lease


@dataclass(frozen=True)
class ClusterStatistics:
    worker: str
    node: str
    leader: bool
    beats: int
    failed_beats: int
    leaderships: int  # times this process became the leader
    last_error: str | None


@dataclass
class ClusterState:
    """What this process knows of its place in the cluster; it outlives actor restarts."""

    identity: Identity
    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=utc_now)
    _leader_until: float = field(default=-math.inf, init=False)
    _beats: int = field(default=0, init=False)
    _failed_beats: int = field(default=0, init=False)
    _leaderships: int = field(default=0, init=False)
    _last_error: str | None = field(default=None, init=False)
    _joined: bool = field(default=False, init=False)  # the first beat has been written

    @property
    def owner(self) -> str:
        return self.identity.name

    def is_leader(self) -> bool:
        return trio.current_time() < self._leader_until

    def statistics(self) -> ClusterStatistics:
        return ClusterStatistics(
            self.owner,
            self.identity.node,
            self.is_leader(),
            self._beats,
            self._failed_beats,
            self._leaderships,
            self._last_error,
        )


@dataclass
class ClusterContext:
    db: Database
    state: ClusterState
    actors: Callable[[], Mapping[str, object]]  # actor name → its state, for the heartbeat
    ttl: float = leases.LEASE_TTL
    interval: float = BEAT_INTERVAL


def beat(ctx: ClusterContext) -> None:
    """One heartbeat: this process's row, its leases renewed, the leader lease contended."""
    state = ctx.state
    asked_at = trio.current_time()
    try:
        with ctx.db.transaction():
            stale = 0 if state._joined else _forget_previous_process(ctx)
            heartbeats.beat(
                ctx.db,
                state.owner,
                state.identity.node,
                state.pid,
                state.started_at,
                dict(ctx.actors()),
            )
            leases.renew_all(ctx.db, state.owner, ctx.ttl)
            leader = leases.take(ctx.db, leases.LEADER, state.owner, ctx.ttl)
    except StoreUnavailable as exc:  # the store is away: try again next beat
        state._failed_beats += 1
        state._last_error = f"{exc.kind}: {exc}"
        log.warning("heartbeat failed (%s); leases lapse unless renewed in time", exc.kind)
        return
    state._beats += 1
    state._last_error = None
    if not state._joined:
        state._joined = True
        if stale:
            log.warning(
                "%s: %d lease(s) of its previous process (dead: this one has its name)"
                " released for the cluster to take",
                state.owner,
                stale,
            )
    if leader and not state.is_leader():
        state._leaderships += 1
        log.info("%s is the leader (backup, daily summary, follow-ups)", state.owner)
    elif not leader and state.is_leader():
        log.warning("%s is no longer the leader", state.owner)
    state._leader_until = asked_at + ctx.ttl * LEADER_SHARE if leader else -math.inf


def _forget_previous_process(ctx: ClusterContext) -> int:
    """A process that starts under a name (node/worker) that an earlier process beat under
    (a worker restarted by its parent, a suite restarted by systemd) succeeds a dead one:
    only one process runs under a name (the file claim per worker on SQLite, NODE_NAME
    per server). Its leases name the work that process held in memory, which this one does
    not: released, not renewed, so whoever gets those messages can take them at once."""
    state = ctx.state
    previous = heartbeats.of(ctx.db, state.owner)
    if previous is None or (previous.pid, previous.started_at) == (state.pid, state.started_at):
        return 0
    return leases.release_all(ctx.db, state.owner)


def leave(ctx: ClusterContext) -> None:
    """A clean stop: this process's leases released and its heartbeat ended."""
    state = ctx.state
    state._leader_until = -math.inf
    try:
        with ctx.db.transaction():
            released = leases.release_all(ctx.db, state.owner)
            heartbeats.end(ctx.db, state.owner)
    except StoreUnavailable as exc:
        log.warning("could not release this process's leases (%s); they lapse", exc.kind)
        return
    log.info("%s left the cluster (%d lease(s) released)", state.owner, released)


async def run(
    ctx: ClusterContext,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    beat(ctx)  # before `started`: the actors after this one know whether they lead
    task_status.started()
    try:
        while True:
            with trio.move_on_after(ctx.interval):
                await stop.wait()
            if stop.is_set():
                return
            beat(ctx)
    finally:
        if stop.is_set():  # a crash keeps them: the next incarnation renews them in time
            leave(ctx)


def report(db: Database, state: ClusterState) -> dict[str, object]:
    """The cluster as this process sees it in the store (`/health/detailed`, `status`):
    itself, every live worker with its actors and lease count, the nodes, the leader."""
    mine = asdict(state.statistics())
    try:
        live = heartbeats.live(db)
        counts = leases.counts(db)
        leader = leases.holder(db, leases.LEADER)
    except StoreUnavailable as exc:
        return {"this": mine, "error": f"{exc.kind}: {exc}"}
    nodes: dict[str, int] = {}
    for h in live:
        nodes[h.node] = nodes.get(h.node, 0) + 1
    return {
        "this": mine,
        "leader": leader,
        "workers": [
            {
                "worker": h.worker,
                "node": h.node,
                "pid": h.pid,
                "startedAt": h.started_at,
                "beatAt": h.beat_at,
                "leader": h.worker == leader,
                "leases": counts.get(h.worker, 0),
                "actors": h.actors,
            }
            for h in live
        ],
        "nodes": [{"node": node, "workers": n} for node, n in sorted(nodes.items())],
        # Every holder, the dead ones included until their leases lapse.
        "leases": counts,
    }
