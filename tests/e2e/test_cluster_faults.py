"""Two workers on one store as real processes (two on one SQLite file; two nodes on one
PostgreSQL database), a burst of signed WhatsApp webhooks with duplicates and web chats
spread over both, and kill -9 of one mid-burst. After recovery every acknowledged message
is answered exactly once (a second send only for a send in flight at the kill, counted),
every web request that got a 200 has its reply stored, and the dead one holds no lease
after 10 s."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from sales.identity import current
from store import heartbeats, leases
from store.backends import Store, open_store
from tests.conftest import BACKENDS, KNOWN_SECRET, postgres_schema
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import EchoLast, FakeOpenAI
from tests.meta import channel_env, post_signed, whatsapp_text

USERS = 40
MESSAGES_PER_USER = 3
VISITORS = 12
NOTIFIER_CONCURRENCY = 8  # sends in flight at most, per process
LEASES_LAPSE = 10.0  # seconds: the bound for a dead worker's leases


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


def pending(store: Store) -> tuple[int, int]:
    with store.connection() as db:
        inbound = db.scalar("SELECT count(*) FROM messages WHERE status = 'pending'")
        sends = db.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
    return int(inbound), int(sends)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_kill_9_of_one_worker_mid_burst_loses_and_doubles_nothing(
    backend: str, tmp_path: Path, fake_llm: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    fake_llm.default = EchoLast(delay=0.2)
    rng = random.Random(20261203)
    texts = [
        (f"569{20_000_000 + u}", f"wamid.c{u}-m{m}", f"usuario {u} mensaje {m}")
        for u in range(USERS)
        for m in range(MESSAGES_PER_USER)
    ]
    deliveries = [
        whatsapp_text(sender, mid, text, ts=1764740000 + i)
        for i, (sender, mid, text) in enumerate(texts)
    ] * 2
    rng.shuffle(deliveries)
    env = {
        **channel_env(fake_graph.url),
        "OPENAI_API_KEY": KNOWN_SECRET,
        "OPENAI_BASE_URL": fake_llm.url,
        "DEBOUNCE_SECONDS": "0.3",
    }
    with two_workers(backend, tmp_path, env) as (a, b, db_path, url):
        await a.start()
        await b.start()
        acknowledged = 0
        answered_web: list[tuple[str, str]] = []  # (session, text) that got a 200
        killed_at: list[float] = []
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as to_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as to_b,
        ):

            def alive() -> bool:
                return a.process is not None and a.process.returncode is None and not killed_at

            async def webhook(raw: bytes, client: httpx.AsyncClient) -> None:
                nonlocal acknowledged
                try:
                    r = await post_signed(client, "whatsapp", raw)
                except httpx.TransportError:
                    return  # the killed one: Meta redelivers
                acknowledged += r.status_code == 200
                if acknowledged == len(deliveries) // 2 and not killed_at:
                    a.send_signal(signal.SIGKILL)
                    killed_at.append(time.monotonic())

            async def visitor(n: int) -> None:
                for turn in range(3):
                    client = to_a if (n + turn) % 2 == 0 and alive() else to_b
                    text = f"Hola, soy la visita {n}, mensaje {turn}"
                    try:
                        r = await client.post(
                            "/api/chat", json={"message": text, "sessionId": f"web-{n}"}
                        )
                    except httpx.TransportError:
                        continue  # cut by the kill: the visitor writes again
                    if r.status_code == 200:
                        answered_web.append((f"web-{n}", text))

            limiter = trio.CapacityLimiter(20)

            async def limited(raw: bytes, i: int) -> None:
                async with limiter:
                    await webhook(raw, to_a if i % 2 == 0 and alive() else to_b)

            async with trio.open_nursery() as nursery:
                for n in range(VISITORS):
                    nursery.start_soon(visitor, n)
                for i, raw in enumerate(deliveries):
                    nursery.start_soon(limited, raw, i)
                    await trio.sleep(0.002)
            assert killed_at, "the burst ended before the kill"
            assert await a.wait() == -signal.SIGKILL
            for raw in deliveries:  # Meta redelivers everything to the worker left
                assert (await post_signed(to_b, "whatsapp", raw)).status_code == 200

            store = open_store(db_path, url)
            try:
                # The dead one's leases lapse within 10 s, and the other leads.
                with trio.fail_after(LEASES_LAPSE + 5):
                    while True:
                        with store.connection() as db:
                            held = leases.counts(db)
                            leader = leases.holder(db, leases.LEADER)
                        if owner(a) not in held and leader == owner(b):
                            break
                        await trio.sleep(0.1)
                lapsed = time.monotonic() - killed_at[0]
                assert lapsed <= LEASES_LAPSE
                with trio.fail_after(120):
                    while pending(store) != (0, 0):
                        await trio.sleep(0.2)
                await trio.sleep(1.0)  # nothing more leaves once the outbox is empty
                health = (await to_b.get("/health/detailed")).json()
                counted = health["work"]["notifier"]["sends_resent_after_crash"]
                assert [w["worker"] for w in health["cluster"]["workers"]] == [owner(b)]
                with store.connection() as db:
                    assert [h.worker for h in heartbeats.live(db)] == [owner(b)]
                    users = db.rows(
                        "SELECT external_id, status FROM messages"
                        " WHERE role = 'user' AND channel = 'whatsapp'"
                    )
                    replies = db.rows(
                        "SELECT c.external_key, m.content, o.status FROM messages m"
                        " JOIN conversations c ON c.id = m.conversation_id"
                        " JOIN outbox o ON o.reply_id = m.id AND o.kind = 'text'"
                        " WHERE m.role = 'assistant' AND m.channel = 'whatsapp'"
                    )
                    reply_count = db.scalar(
                        "SELECT count(*) FROM messages WHERE role = 'assistant'"
                        " AND channel = 'whatsapp'"
                    )
                    web = {
                        (str(key), str(content)): int(n)
                        for key, content, n in db.rows(
                            "SELECT c.external_key, u.content, count(r.id) FROM messages u"
                            " JOIN conversations c ON c.id = u.conversation_id"
                            " LEFT JOIN messages r ON r.reply_to = u.id"
                            " WHERE u.channel = 'web' AND u.role = 'user'"
                            " GROUP BY c.external_key, u.content"
                        )
                    }
            finally:
                store.close()
        assert await b.stop() == 0

    # Nothing lost: every WhatsApp message stored once and answered.
    assert sorted(str(mid) for mid, _ in users) == sorted(mid for _, mid, _ in texts)
    assert {status for _, status in users} == {"handled"}
    # One outbox text per reply, every one sent; each sent once but for sends cut by the kill.
    assert len(replies) == reply_count and {s for _, _, s in replies} == {"sent"}
    delivered = Counter(fake_graph.texts())
    assert set(delivered) == {(str(to), str(body)) for to, body, _ in replies}
    doubled = sum(n - 1 for n in delivered.values())
    assert doubled <= counted <= NOTIFIER_CONCURRENCY
    # Every web request that got a 200 has its reply stored, exactly one.
    assert answered_web and all(web.get(sent) == 1 for sent in answered_web), answered_web
    assert all(n <= 1 for n in web.values())
    print(
        f"\n[{backend}] {len(texts)} WhatsApp messages, {len(deliveries)} deliveries over two"
        f" workers, {acknowledged} acknowledged in the burst (half when one was killed);"
        f" {reply_count} replies;"
        f" doubled by the kill: {doubled}, counted: {counted}; {len(answered_web)} web 200s;"
        f" the dead one's leases gone and the other leading {lapsed:.1f} s after the kill"
    )


def owner(process: SuiteProcess) -> str:
    """The lease owner of a test process (sales/identity.py)."""
    return current(process.env).name
