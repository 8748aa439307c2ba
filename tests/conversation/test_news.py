"""Notices between processes for a web request waiting on another's turn (news.py): on
PostgreSQL a NOTIFY wakes the waiter at once (the fallback here is far longer than any
bound of the test, so only the notice can wake it), a lost listening connection is
reopened and notices work again; on SQLite a waiter looks again after a short poll."""

from __future__ import annotations

from pathlib import Path

import psycopg
import trio

from actors.conversation import news
from actors.conversation.news import News
from store.backends import open_store
from tests.conftest import postgres_schema

NEVER = 300.0  # the waiters' fallback in these tests: longer than the test may run


async def wait_until(predicate: object, within: float = 15) -> None:
    with trio.fail_after(within):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.02)


async def test_a_notice_wakes_the_request_waiting_on_that_conversation_only() -> None:
    with postgres_schema() as url:
        store = open_store(Path("db/leads.db"), url)  # the URL wins
        try:
            listener = News(url, fallback=NEVER)
            woken: list[int] = []

            async def waiter(conversation_id: int) -> None:
                await listener.wait(conversation_id)
                woken.append(conversation_id)

            async with trio.open_nursery() as nursery:
                await nursery.start(listener.listen)
                await wait_until(lambda: listener.listening)
                nursery.start_soon(waiter, 5)
                nursery.start_soon(waiter, 6)
                await trio.sleep(0.2)
                with store.connection() as db:
                    news.tell(db, 5)  # another process stored conversation 5's reply
                await wait_until(lambda: woken == [5])
                await trio.sleep(0.3)
                assert woken == [5]  # 6 waits on
                with store.connection() as db:
                    news.tell(db, 6)
                await wait_until(lambda: woken == [5, 6])
                assert listener.heard >= 2
                nursery.cancel_scope.cancel()
        finally:
            store.close()


async def test_a_lost_listening_connection_is_reopened_and_notices_work_again() -> None:
    with postgres_schema() as url:
        store = open_store(Path("db/leads.db"), url)  # the URL wins
        try:
            listener = News(url, fallback=NEVER)
            async with trio.open_nursery() as nursery:
                await nursery.start(listener.listen)
                await wait_until(lambda: listener.listening)
                with psycopg.connect(url, autocommit=True) as admin:
                    cut = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE query = %s AND pid <> pg_backend_pid()",
                        (f"LISTEN {news.CHANNEL}",),
                    ).fetchall()
                assert cut, "the listening connection was found"
                await wait_until(lambda: not listener.listening)  # waiters poll meanwhile
                await wait_until(lambda: listener.listening)
                woken = trio.Event()

                async def waiter() -> None:
                    await listener.wait(9)
                    woken.set()

                nursery.start_soon(waiter)
                await trio.sleep(0.2)
                with store.connection() as db:
                    news.tell(db, 9)
                with trio.fail_after(15):
                    await woken.wait()
                nursery.cancel_scope.cancel()
        finally:
            store.close()


async def test_on_sqlite_a_waiter_looks_again_after_a_short_poll(tmp_path: object) -> None:
    alone = News(None, fallback=NEVER)
    async with trio.open_nursery() as nursery:
        await nursery.start(alone.listen)  # nothing to listen to: returns
        with trio.fail_after(5):
            await alone.wait(1)
    assert not alone.listening
