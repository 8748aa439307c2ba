"""Two workers on one store as real processes (two on one SQLite file; two nodes on one
PostgreSQL database), the burst of tests/e2e/burst.py spread over both (300 signed WhatsApp
webhooks with duplicates, 300 web chats), and kill -9 of one mid-burst. After recovery every
acknowledged message is answered exactly once, in each sender's order (a second send only
for a send in flight at the kill, counted), every web request that got a 200 has its reply
stored, and the dead one holds no lease after 10 s. Three nodes behind nginx:
test_pg_cluster.py."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from store import heartbeats, leases
from store.backends import open_store
from tests.conftest import BACKENDS, KNOWN_SECRET, postgres_schema
from tests.e2e.burst import (
    LEASES_LAPSE,
    Burst,
    Deliveries,
    check_answers,
    owner,
    pending,
    resent_after_crash,
    stored,
    summary,
)
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import EchoLast, FakeOpenAI
from tests.meta import channel_env, post_signed

NOTIFIER_CONCURRENCY = 8  # sends in flight at most, per process


@contextmanager
def two_workers(
    backend: str, tmp_path: Path, env: dict[str, str]
) -> Iterator[tuple[SuiteProcess, SuiteProcess, Path, str | None]]:
    """Worker 1 and 2 of one node on one SQLite file, or two nodes on one PostgreSQL
    database (each with its own folder)."""
    if backend == "sqlite":
        a = SuiteProcess(tmp_path, **env, IA_COMERCIAL_WORKER="1", LOG_DIR=str(tmp_path / "la"))
        b = SuiteProcess(tmp_path, **env, IA_COMERCIAL_WORKER="2", LOG_DIR=str(tmp_path / "lb"))
        yield a, b, tmp_path / "db" / "leads.db", None
        return
    with postgres_schema() as url:
        for folder in ("a", "b"):
            (tmp_path / folder).mkdir()
        a = SuiteProcess(tmp_path / "a", **env, DATABASE_URL=url, NODE_NAME="nodo-a")
        b = SuiteProcess(tmp_path / "b", **env, DATABASE_URL=url, NODE_NAME="nodo-b")
        yield a, b, tmp_path / "a" / "db" / "leads.db", url


@pytest.mark.parametrize("backend", BACKENDS)
async def test_kill_9_of_one_worker_mid_burst_loses_and_doubles_nothing(
    backend: str, tmp_path: Path, fake_llm: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    fake_llm.default = EchoLast(delay=0.2)
    deliveries = Deliveries.make(random.Random(20261203), "c")
    env = {
        **channel_env(fake_graph.url),
        "OPENAI_API_KEY": KNOWN_SECRET,
        "OPENAI_BASE_URL": fake_llm.url,
        "DEBOUNCE_SECONDS": "0",  # one reply per message: each is checked on its own
        "DAILY_SUMMARY_AT": "off",
    }
    with two_workers(backend, tmp_path, env) as (a, b, db_path, url):
        await a.start()
        await b.start()
        store = open_store(db_path, url)
        try:
            async with (
                httpx.AsyncClient(base_url=a.url, timeout=60) as to_a,
                httpx.AsyncClient(base_url=b.url, timeout=60) as to_b,
            ):
                burst: Burst
                sent = 0

                def alive() -> bool:
                    return not burst.killed.is_set()

                async def post_webhook(raw: bytes) -> httpx.Response:
                    """Meta's deliveries spread over both, then only to the one left."""
                    nonlocal sent
                    sent += 1
                    return await post_signed(
                        to_a if sent % 2 and alive() else to_b, "whatsapp", raw
                    )

                @asynccontextmanager
                async def browser(
                    n: int,
                ) -> AsyncIterator[tuple[httpx.AsyncClient, Callable[[int], str]]]:
                    def chat_url(turn: int) -> str:
                        worker = a if (n + turn) % 2 == 0 and alive() else b
                        return f"{worker.url}/api/chat"

                    async with httpx.AsyncClient(timeout=60) as client:
                        yield client, chat_url

                burst = Burst(deliveries, post_webhook, browser)
                kill = lambda: a.send_signal(signal.SIGKILL)  # noqa: E731
                async with burst.killing(a, store, kill) as ledger:
                    assert await a.wait() == -signal.SIGKILL
                    await burst.redeliver(lambda raw: post_signed(to_b, "whatsapp", raw))
                # The dead one's leases lapsed within 10 s, and the other leads.
                assert ledger.lapsed is not None and ledger.lapsed <= LEASES_LAPSE, ledger.lapsed
                with trio.fail_after(30):
                    while True:
                        with store.connection() as db:
                            leader = leases.holder(db, leases.LEADER)
                        if leader == owner(b):
                            break
                        await trio.sleep(0.2)
                with trio.fail_after(120):
                    while pending(store) != (0, 0):
                        await trio.sleep(0.2)
                await trio.sleep(1.0)  # nothing more leaves once the outbox is empty
                counted = await resent_after_crash(b)
                with trio.fail_after(30):  # the dead one's heartbeat ages out
                    while True:
                        with store.connection() as db:
                            beating = [h.worker for h in heartbeats.live(db)]
                        if beating == [owner(b)]:
                            break
                        await trio.sleep(0.2)
                health = (await to_b.get("/health/detailed")).json()
                assert [w["worker"] for w in health["cluster"]["workers"]] == [owner(b)]
                rows = stored(store)
        finally:
            store.close()
        assert await b.stop() == 0, b.log_text()[-3000:]

    doubled = check_answers(rows, deliveries, ledger, fake_graph, counted)
    assert counted <= NOTIFIER_CONCURRENCY
    print(f"\n[{backend}, two workers] {summary(ledger, doubled, counted, leader)}")
