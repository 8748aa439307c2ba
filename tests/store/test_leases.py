"""Leases, heartbeats and login failures on both backends: one holder at a time, renewed
while held, taken over once expired, released on a clean stop; several connections (as
several processes) see the same ones."""

from __future__ import annotations

import threading
import time

import pytest

from store import heartbeats, leases, login_failures
from store.backends import Store
from store.db import Database

A, B = "node-a/1", "node-b/1"


def test_a_lease_has_one_holder_until_it_expires(db: Database) -> None:
    assert leases.holder(db, "leader") is None
    assert leases.take(db, "leader", A, ttl=0.5)
    assert leases.holder(db, "leader") == A
    assert not leases.take(db, "leader", B)  # held: refused, and A keeps it
    assert leases.holder(db, "leader") == A
    first = leases.held(db, A)[0]
    assert leases.take(db, "leader", A, ttl=0.5)  # the holder renews it
    again = leases.held(db, A)[0]
    assert again.acquired_at == first.acquired_at and again.expires_at >= first.expires_at
    time.sleep(0.6)
    assert leases.holder(db, "leader") is None  # A died: nobody holds it now
    assert leases.take(db, "leader", B)  # and another takes it over
    assert leases.holder(db, "leader") == B
    assert leases.held(db, A) == []


def test_renewing_keeps_every_lease_of_its_owner_and_only_those(db: Database) -> None:
    for n in (1, 2):
        assert leases.take(db, leases.conversation(n), A, ttl=0.4)
    assert leases.take(db, leases.conversation(3), B, ttl=0.4)
    for _ in range(3):
        time.sleep(0.2)
        assert leases.renew_all(db, A, ttl=0.4) == 2
    assert leases.counts(db) == {A: 2}  # B's lapsed, A's were renewed
    assert leases.take(db, leases.conversation(3), A)


def test_release_gives_up_only_what_the_owner_holds(db: Database) -> None:
    assert leases.take(db, "leader", A)
    assert leases.take(db, leases.conversation(7), A)
    assert not leases.release(db, "leader", B)
    assert leases.holder(db, "leader") == A
    assert leases.release(db, leases.conversation(7), A)
    assert leases.take(db, leases.conversation(7), B)  # free at once, no wait for expiry
    assert leases.release_all(db, A) == 1
    assert leases.counts(db) == {B: 1}


def test_a_lease_needs_a_name_an_owner_and_a_time(db: Database) -> None:
    for name, owner, ttl in (("", A, 1.0), ("leader", "", 1.0), ("leader", A, 0.0)):
        with pytest.raises(ValueError):
            leases.take(db, name, owner, ttl)
    assert leases.counts(db) == {}


def test_processes_racing_for_a_lease_have_exactly_one_winner(store: Store) -> None:
    """Eight threads, each on a connection of its own (on SQLite the one connection, taken
    in turn), race for the same leases many times: each has one holder."""
    owners = [f"node/{n}" for n in range(8)]
    winners: dict[str, list[str]] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(owners))

    def race(owner: str) -> None:
        start.wait()
        for round_ in range(20):
            if store.backend == "sqlite":
                with lock, store.connection() as db:
                    won = leases.take(db, f"race:{round_}", owner)
            else:
                with store.connection() as db:
                    won = leases.take(db, f"race:{round_}", owner)
            if won:
                with lock:
                    winners.setdefault(f"race:{round_}", []).append(owner)

    threads = [threading.Thread(target=race, args=(o,)) for o in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(winners) == sorted(f"race:{r}" for r in range(20))
    assert all(len(w) == 1 for w in winners.values()), winners
    with store.connection() as db:
        assert sum(leases.counts(db).values()) == 20


def test_heartbeats_show_the_live_processes_with_their_actors(db: Database) -> None:
    heartbeats.beat(db, A, "node-a", 101, "2026-01-01T00:00:00.000Z", {"notifier": "running"})
    heartbeats.beat(db, B, "node-b", 202, "2026-01-01T00:00:00.000Z", {})
    heartbeats.beat(db, A, "node-a", 101, "2026-01-01T00:00:00.000Z", {"notifier": "restarting"})
    live = heartbeats.live(db)
    assert [h.worker for h in live] == [A, B]
    assert live[0].pid == 101 and live[0].actors == {"notifier": "restarting"}
    heartbeats.end(db, B)
    assert [h.worker for h in heartbeats.live(db)] == [A]
    time.sleep(0.3)
    assert heartbeats.live(db, within=0.2) == []  # silent too long: taken for dead


def test_login_failures_are_counted_across_connections(store: Store) -> None:
    with store.connection() as first:
        for _ in range(3):
            assert login_failures.attempt(first, "10.0.0.1", 3, 60.0) == 0.0
    with store.connection() as second:  # another process sees the same count
        wait = login_failures.attempt(second, "10.0.0.1", 3, 60.0)
        assert 59.0 < wait <= 60.0
        assert login_failures.attempt(second, "10.0.0.2", 3, 60.0) == 0.0  # others unhurt
        login_failures.succeeded(second, "10.0.0.1")
        assert login_failures.attempt(second, "10.0.0.1", 3, 60.0) == 0.0


def test_login_failures_age_out_of_the_window(db: Database) -> None:
    for _ in range(2):
        assert login_failures.attempt(db, "10.0.0.1", 2, 0.3) == 0.0
    assert login_failures.attempt(db, "10.0.0.1", 2, 0.3) > 0.0
    time.sleep(0.35)
    assert login_failures.attempt(db, "10.0.0.1", 2, 0.3) == 0.0
    assert len(login_failures.recent(db, "10.0.0.1", 60.0)) == 1  # old ones were pruned


def test_due_sends_skip_the_conversations_another_process_is_draining(db: Database) -> None:
    """As FOR UPDATE SKIP LOCKED skips locked rows: a conversation whose outbox lease
    another process holds is not offered; this process's own, a lapsed one and a free one
    are."""
    from store import conversations, outbox
    from store.db import utc_now

    ids = []
    for n in range(4):
        conv = conversations.open_conversation(db, "whatsapp", f"5691000000{n}")
        outbox.enqueue(db, conv.id, "whatsapp", f"5691000000{n}", "text", [f"hola {n}"])
        ids.append(conv.id)
    free, mine, theirs, lapsed = ids
    assert leases.take(db, leases.outbox(mine), "nodo-a/1", ttl=60)
    assert leases.take(db, leases.outbox(theirs), "nodo-b/1", ttl=60)
    assert leases.take(db, leases.outbox(lapsed), "nodo-c/1", ttl=0.05)
    time.sleep(0.1)
    now = utc_now()
    assert sorted(outbox.due_conversations(db, now, owner="nodo-a/1")) == sorted(
        [free, mine, lapsed]
    )
    assert sorted(outbox.due_conversations(db, now)) == sorted(ids)  # alone: every one
