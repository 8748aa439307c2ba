"""The owner's read connections (store/readers.py) on both backends: they see what was
committed, refuse to write, run at most READS_AT_ONCE at once in worker threads, and a
connection found lost is replaced by a new one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from store import lead_reports
from store.backends import Store
from store.db import Database
from store.errors import StoreError, StoreUnavailable
from store.readers import READS_AT_ONCE, Readers, readers_for
from tests.conftest import BACKENDS, fresh_store_and_env


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reads_see_commits_refuse_writes_and_are_bounded(
    backend: str, tmp_path: Path
) -> None:
    with fresh_store_and_env(backend, tmp_path) as (store, env):
        readers = readers_for(tmp_path / "db" / "leads.db", env.get("DATABASE_URL"))
        try:
            await _check(store, readers)
        finally:
            readers.close()


async def _check(store: Store, readers: Readers) -> None:
    with store.connection() as db:
        db.execute(
            "INSERT INTO leads (channel, created_at, updated_at, last_interaction_at)"
            " VALUES ('web', 'x', 'x', 'x')"
        )
    assert (await readers.call(lead_reports.statistics))["total"] == 1
    with pytest.raises(StoreError):
        await readers.call(lambda db: db.execute("DELETE FROM leads"))
    assert (await readers.call(lead_reports.statistics))["total"] == 1

    running, most = 0, 0
    lock = threading.Lock()

    def slow(db: Database) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return int(db.scalar("SELECT count(*) FROM leads"))
        finally:
            threading.Event().wait(0.05)
            with lock:
                running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(readers.call, slow)
    assert most == READS_AT_ONCE


async def test_a_lost_connection_is_replaced(tmp_path: Path) -> None:
    with fresh_store_and_env("postgresql", tmp_path) as (store, env):
        readers = readers_for(tmp_path, env["DATABASE_URL"])
        try:
            pid = await readers.call(lambda db: db.scalar("SELECT pg_backend_pid()"))
            with store.connection() as db:
                assert db.scalar("SELECT pg_terminate_backend(?)", (pid,)) is True
            with pytest.raises(StoreUnavailable):
                await readers.call(lambda db: db.scalar("SELECT 1"))
            assert await readers.call(lambda db: db.scalar("SELECT pg_backend_pid()")) != pid
        finally:
            readers.close()


async def test_postgresql_reads_plan_each_search_for_its_own_pattern(tmp_path: Path) -> None:
    """The generic plan of `LIKE ?` ignores the trigram index (store/readers.py)."""
    with fresh_store_and_env("postgresql", tmp_path) as (_store, env):
        readers = readers_for(tmp_path, env["DATABASE_URL"])
        try:
            mode = await readers.call(lambda db: db.scalar("SHOW plan_cache_mode"))
            assert mode == "force_custom_plan"
        finally:
            readers.close()
