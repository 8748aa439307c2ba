"""`WORKERS=2` on one SQLite file, as `ia-comercial run` starts it: a burst of 300 signed
WhatsApp webhooks (240 messages, 60 of them delivered twice) and 300 web chats on the one
port, kill -9 of one worker mid-burst, the parent restarts it, Meta redelivers everything.
After recovery every acknowledged message is answered exactly once (a second send only for
a send cut by the kill, counted), every web request that got a 200 has its reply stored,
and the dead process holds no lease 10 s after the kill."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import trio

from store import heartbeats
from store.backends import Store, open_store
from store.db import utc_now
from tests.cluster.test_workers import START, started, worker_pids
from tests.conftest import KNOWN_SECRET
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import EchoLast, FakeOpenAI
from tests.meta import channel_env, post_signed, whatsapp_text

SENDERS = 60
MESSAGES_PER_SENDER = 4  # 240 messages, so one person's order matters
DUPLICATES = 60
VISITORS = 300
LEASES_LAPSE = 10.0
NOTIFIER_CONCURRENCY = 8  # sends in flight at most, per process


async def test_kill_9_of_one_of_two_workers_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path, fake_llm: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    fake_llm.default = EchoLast(delay=0.2)
    rng = random.Random(20261203)
    texts = [
        (f"569{30_000_000 + u}", f"wamid.w{u}-m{m}", f"persona {u} mensaje {m}")
        for u in range(SENDERS)
        for m in range(MESSAGES_PER_SENDER)
    ]
    first = [
        whatsapp_text(sender, mid, text, ts=1764750000 + i)
        for i, (sender, mid, text) in enumerate(texts)
    ]
    deliveries = first + rng.sample(first, DUPLICATES)
    rng.shuffle(deliveries)
    suite = SuiteProcess(
        tmp_path,
        WORKERS="2",
        NODE_NAME="nodo",
        **{
            **channel_env(fake_graph.url),
            "OPENAI_API_KEY": KNOWN_SECRET,
            "OPENAI_BASE_URL": fake_llm.url,
            "DEBOUNCE_SECONDS": "0.3",
        },
    )
    await started(suite)
    victim = worker_pids(suite)["worker-2"][0]
    acknowledged = 0
    answered_web: list[tuple[str, str]] = []
    killed_at: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=suite.url, timeout=60) as client:

            async def webhook(raw: bytes) -> None:
                nonlocal acknowledged
                try:
                    r = await post_signed(client, "whatsapp", raw)
                except httpx.TransportError:
                    return  # cut by the kill: Meta redelivers
                acknowledged += r.status_code == 200
                if acknowledged == len(deliveries) // 2 and not killed_at:
                    os.kill(victim, signal.SIGKILL)
                    killed_at.append(time.monotonic())

            async def visitor(n: int) -> None:
                for attempt in range(3):
                    # Cut by the kill, the visitor writes again, in other words (the same
                    # words twice would be two messages: the chat has no idempotency key).
                    text = f"Hola, soy la visita {n}" + " ¿sigues ahí?" * attempt
                    try:
                        r = await client.post(
                            "/api/chat", json={"message": text, "sessionId": f"web-{n}"}
                        )
                    except httpx.TransportError:
                        continue
                    if r.status_code == 200:
                        answered_web.append((f"web-{n}", text))
                    return

            hooks, chats = trio.CapacityLimiter(20), trio.CapacityLimiter(30)

            async def limited(limiter: trio.CapacityLimiter, work: object, arg: object) -> None:
                async with limiter:
                    await work(arg)  # type: ignore[operator]

            async with trio.open_nursery() as nursery:
                for i in range(max(len(deliveries), VISITORS)):
                    if i < len(deliveries):
                        nursery.start_soon(limited, hooks, webhook, deliveries[i])
                    if i < VISITORS:
                        nursery.start_soon(limited, chats, visitor, i)
                    await trio.sleep(0.003)
            assert killed_at, "the burst ended before the kill"
            for raw in deliveries:  # Meta redelivers everything
                with trio.fail_after(START):
                    while True:
                        try:
                            r = await post_signed(client, "whatsapp", raw)
                        except httpx.TransportError:
                            await trio.sleep(0.1)
                            continue
                        assert r.status_code == 200
                        break

            store = open_store(tmp_path / "db" / "leads.db", None)
            try:
                # The killed process's leases are gone within 10 s (its successor under the
                # same name released them; the other worker may hold what it took since).
                with trio.fail_after(LEASES_LAPSE + 5):
                    while True:
                        restarted = worker_pids(suite)["worker-2"]
                        with store.connection() as db:
                            beat = heartbeats.of(db, "nodo/2")
                            stale = db.scalar(
                                "SELECT count(*) FROM leases WHERE owner = 'nodo/2'"
                                " AND expires_at > ? AND acquired_at < ?",
                                (utc_now(), beat.started_at if beat else utc_now()),
                            )
                        if restarted[0] != victim and restarted[1] == "running" and not stale:
                            break
                        await trio.sleep(0.1)
                lapsed = time.monotonic() - killed_at[0]
                assert lapsed <= LEASES_LAPSE
                with trio.fail_after(120):
                    while pending(store) != (0, 0):
                        await trio.sleep(0.2)
                await trio.sleep(1.0)  # nothing more leaves once the outbox is empty
                counted = await resent_after_crash(client)
                with store.connection() as db:
                    assert sorted(h.worker for h in heartbeats.live(db)) == ["nodo/1", "nodo/2"]
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
                    doubled_replies = db.scalar(
                        "SELECT count(*) FROM (SELECT reply_to FROM messages"
                        " WHERE role = 'assistant' AND reply_to IS NOT NULL"
                        " GROUP BY reply_to HAVING count(*) > 1) AS d"
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
    finally:
        assert await suite.stop(timeout=90) == 0

    # Nothing lost: every WhatsApp message stored once and handled.
    assert sorted(str(mid) for mid, _ in users) == sorted(mid for _, mid, _ in texts)
    assert {status for _, status in users} == {"handled"}
    assert doubled_replies == 0
    # One outbox text per reply, all sent; each sent once but for sends cut by the kill.
    assert len(replies) == reply_count and {s for _, _, s in replies} == {"sent"}
    delivered = Counter(fake_graph.texts())
    assert set(delivered) == {(str(to), str(body)) for to, body, _ in replies}
    doubled = sum(n - 1 for n in delivered.values())
    assert doubled <= counted <= NOTIFIER_CONCURRENCY
    # Every web request that got a 200 has its reply stored, exactly one.
    assert len(answered_web) >= VISITORS // 2, len(answered_web)
    assert all(web.get(sent) == 1 for sent in answered_web), answered_web
    # And a message whose request the kill cut, once stored, is answered too, once.
    assert set(web.values()) == {1}, [k for k, n in web.items() if n != 1]
    print(
        f"\n[WORKERS=2, SQLite] {len(texts)} WhatsApp messages in {len(deliveries)} deliveries,"
        f" {acknowledged} acknowledged in the burst; {reply_count} replies; doubled by the"
        f" kill: {doubled}, counted: {counted}; {len(answered_web)}/{VISITORS} web 200s;"
        f" the dead worker's leases gone and worker 2 back {lapsed:.1f} s after the kill"
    )


def pending(store: Store) -> tuple[int, int]:
    with store.connection() as db:
        inbound = db.scalar("SELECT count(*) FROM messages WHERE status = 'pending'")
        sends = db.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
    return int(inbound), int(sends)


async def resent_after_crash(client: httpx.AsyncClient) -> int:
    """ia_resent_after_crash_total{kind="messaging"} summed over the workers (any worker's
    /metrics carries both)."""
    page = (await client.get("/metrics")).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in page.splitlines()
            if line.startswith("ia_resent_after_crash_total{") and 'kind="messaging"' in line
        )
    )
