"""Three nodes on one PostgreSQL database behind a real nginx (deploy/nginx, rendered for
three upstreams), as issue 15 deploys several servers. Through nginx, the burst of
tests/e2e/burst.py: 300 signed WhatsApp webhooks (240 messages, each sender's one after the
other, and 60 duplicates) and 300 web chats (each visitor its own conversation, from its own
loopback address: nginx limits the chat per client), and kill -9 of node-1 half-way. Meta
redelivers what got no 200, then all of it again. After recovery: node-1 holds no lease
within 10 s of the kill and a survivor leads; nothing stays pending; every WhatsApp message
is stored once and has exactly one reply, in the order each sender wrote them; each reply is
sent once but for sends cut by the kill (the survivors count them in /metrics); every web
chat that got a 200 has exactly one stored reply to it."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import trio

from store import heartbeats, leases
from store.backends import open_store
from tests.conftest import KNOWN_SECRET, postgres_schema
from tests.deploy.test_nginx import nginx_in_front
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

NODES = 3


@contextmanager
def three_nodes(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[list[SuiteProcess], str]]:
    """node-1..3, each in a folder of its own (its logs, its backups), on one database."""
    with postgres_schema() as url:
        nodes = []
        for n in range(1, NODES + 1):
            folder = tmp_path / f"node-{n}"
            folder.mkdir()
            nodes.append(
                SuiteProcess(
                    folder,
                    **env,
                    DATABASE_URL=url,
                    NODE_NAME=f"node-{n}",
                    BACKUP_DIR=str(folder / "backups"),
                )
            )
        yield nodes, url


def visitor_address(n: int) -> str:
    """A loopback address of its own per visitor: nginx limits /api/chat per client."""
    return f"127.0.{2 + n // 200}.{1 + n % 200}"


async def test_kill_9_of_one_of_three_nodes_behind_nginx_mid_burst(
    tmp_path: Path, fake_llm: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    fake_llm.default = EchoLast(delay=0.2)
    deliveries = Deliveries.make(random.Random(20261204), "pg")
    env = {
        **channel_env(fake_graph.url),
        "OPENAI_API_KEY": KNOWN_SECRET,
        "OPENAI_BASE_URL": fake_llm.url,
        "DEBOUNCE_SECONDS": "0",  # one reply per message: each is checked on its own
        "TRUSTED_PROXIES": "127.0.0.1",
        "DAILY_SUMMARY_AT": "off",
    }
    with three_nodes(tmp_path, env) as (nodes, url):
        async with trio.open_nursery() as starting:
            for node in nodes:
                starting.start_soon(node.start)
        dead, survivors = nodes[0], nodes[1:]
        upstreams = [node.url.removeprefix("http://") for node in nodes]
        store = open_store(tmp_path / "unused.db", url)
        try:
            async with (
                nginx_in_front(tmp_path, upstreams) as (_http_url, https_url),
                httpx.AsyncClient(base_url=https_url, verify=False, timeout=60) as meta,
            ):

                async def post_webhook(raw: bytes) -> httpx.Response:
                    return await post_signed(meta, "whatsapp", raw)

                @asynccontextmanager
                async def browser(
                    n: int,
                ) -> AsyncIterator[tuple[httpx.AsyncClient, Callable[[int], str]]]:
                    transport = httpx.AsyncHTTPTransport(
                        local_address=visitor_address(n), verify=False
                    )
                    async with httpx.AsyncClient(
                        base_url=https_url, transport=transport, timeout=60
                    ) as client:
                        yield client, lambda _turn: "/api/chat"

                burst = Burst(deliveries, post_webhook, browser)
                kill = lambda: dead.send_signal(signal.SIGKILL)  # noqa: E731
                async with burst.killing(dead, store, kill) as ledger:
                    assert await dead.wait() == -signal.SIGKILL
                    await burst.redeliver(post_webhook)
            # node-1's leases lapsed within 10 s of the kill, and a survivor leads.
            assert ledger.lapsed is not None and ledger.lapsed <= LEASES_LAPSE, ledger.lapsed
            with trio.fail_after(30):
                while True:
                    with store.connection() as db:
                        leader = leases.holder(db, leases.LEADER)
                    if leader in {owner(node) for node in survivors}:
                        break
                    await trio.sleep(0.2)
            with trio.fail_after(120):
                while pending(store) != (0, 0):
                    await trio.sleep(0.2)
            await trio.sleep(1.0)  # nothing more leaves once the outbox is empty
            counted = sum([await resent_after_crash(node) for node in survivors])
            with trio.fail_after(30):  # node-1's heartbeat ages out
                while True:
                    with store.connection() as db:
                        beating = {h.worker for h in heartbeats.live(db)}
                    if beating == {owner(node) for node in survivors}:
                        break
                    await trio.sleep(0.2)
            rows = stored(store)
        finally:
            store.close()
        for node in survivors:
            assert await node.stop() == 0, node.log_text()[-3000:]

    doubled = check_answers(rows, deliveries, ledger, fake_graph, counted)
    print(f"\n[3 nodes behind nginx] {summary(ledger, doubled, counted, leader)}")
