"""Three nodes on one PostgreSQL database behind a real nginx (deploy/nginx, rendered for
three upstreams), as issue 15 deploys several servers. A burst through nginx of 300 signed
WhatsApp webhooks (240 messages, several per sender, and 60 duplicates) and 300 web chats
(each visitor its own conversation, from its own loopback address as nginx limits the chat
per client), and kill -9 of node-1 half-way. Meta redelivers what got no 200, then all of it
again. After recovery: node-1 holds no lease within 10 s of the kill and a survivor leads;
nothing stays pending; every WhatsApp message is stored once and has exactly one reply, in
the order each sender wrote them (each sender's messages are delivered one after the other);
each reply is sent once but for sends cut by the kill (the survivors count them in
/metrics); every web chat that got a 200 has exactly one stored reply to it."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from store import heartbeats, leases
from store.backends import Store, open_store
from tests.conftest import KNOWN_SECRET, postgres_schema
from tests.deploy.test_nginx import nginx_in_front
from tests.e2e.process import SuiteProcess
from tests.e2e.test_cluster_faults import owner, pending
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import EchoLast, FakeOpenAI
from tests.meta import channel_env, post_signed, whatsapp_text

NODES = 3
SENDERS = 60
MESSAGES_PER_SENDER = 4  # 240 messages
DUPLICATES = 60  # deliveries sent twice within the burst: 300 in all
VISITORS = 100
TURNS_PER_VISITOR = 3  # 300 web chats
WEBHOOKS_AT_ONCE = 20  # Meta's deliveries in flight
VISITORS_AT_ONCE = 30  # web visitors writing at once
WEBHOOK_LEAD = 40  # deliveries sent ahead of the chats' progress, so the two overlap
LEASES_LAPSE = 10.0  # seconds: the bound for a dead node's leases
REDELIVERIES = 5  # Meta's attempts at a delivery after the burst, until it gets a 200


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


async def resent_after_crash(node: SuiteProcess) -> int:
    """ia_resent_after_crash_total{kind="messaging"} on this node's own /metrics."""
    async with httpx.AsyncClient(timeout=30) as client:
        page = (await client.get(f"{node.url}/metrics")).text
    return sum(
        int(s.value)
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "ia_resent_after_crash_total" and s.labels.get("kind") == "messaging"
    )


def stored(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """What the store ends with, for the assertions."""
    with store.connection() as db:
        return {
            # Each WhatsApp message with its conversation and the replies to it.
            "whatsapp": db.rows(
                "SELECT u.external_id, u.conversation_id, u.id, u.status, count(r.id), min(r.id)"
                " FROM messages u LEFT JOIN messages r ON r.reply_to = u.id"
                " WHERE u.channel = 'whatsapp' AND u.role = 'user'"
                " GROUP BY u.external_id, u.conversation_id, u.id, u.status"
            ),
            "replies": db.rows(
                "SELECT c.external_key, m.content, o.status FROM messages m"
                " JOIN conversations c ON c.id = m.conversation_id"
                " LEFT JOIN outbox o ON o.reply_id = m.id AND o.kind = 'text'"
                " WHERE m.role = 'assistant' AND m.channel = 'whatsapp'"
            ),
            "web": db.rows(
                "SELECT c.external_key, u.content, count(r.id) FROM messages u"
                " JOIN conversations c ON c.id = u.conversation_id"
                " LEFT JOIN messages r ON r.reply_to = u.id"
                " WHERE u.channel = 'web' AND u.role = 'user'"
                " GROUP BY c.external_key, u.content"
            ),
        }


async def test_kill_9_of_one_of_three_nodes_behind_nginx_mid_burst(
    tmp_path: Path, fake_llm: FakeOpenAI, fake_graph: FakeGraph
) -> None:
    fake_llm.default = EchoLast(delay=0.2)
    rng = random.Random(20261204)
    texts = [
        (f"569{30_000_000 + s}", f"wamid.pg{s}-m{m}", f"remitente {s} mensaje {m}")
        for s in range(SENDERS)
        for m in range(MESSAGES_PER_SENDER)
    ]
    # Each sender's messages in the order they wrote them, each delivered once the one
    # before got its answer (so the store has it first); duplicates anywhere after.
    by_sender: dict[str, list[bytes]] = defaultdict(list)
    mid_of: dict[bytes, str] = {}
    for i, (sender, mid, text) in enumerate(texts):
        raw = whatsapp_text(sender, mid, text, ts=1764800000 + i)
        by_sender[sender].append(raw)
        mid_of[raw] = mid
    for sender in rng.choices(sorted(by_sender), k=DUPLICATES):
        queue = by_sender[sender]
        raw = rng.choice(queue)
        queue.insert(rng.randrange(queue.index(raw) + 1, len(queue) + 1), raw)
    deliveries = [raw for queue in by_sender.values() for raw in queue]
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
        async with (
            nginx_in_front(tmp_path, upstreams) as (_http_url, https_url),
            httpx.AsyncClient(base_url=https_url, verify=False, timeout=60) as meta,
        ):
            acknowledged: list[bytes] = []
            unanswered: list[bytes] = []  # deliveries that got no 200: Meta sends them again
            first_delivery: dict[str, bool] = {}  # message id → its first delivery got a 200
            web_200: list[tuple[str, str]] = []  # (session, text) answered with a 200
            refused: Counter[str] = Counter()  # what the burst got instead of a 200
            done = {"webhooks": 0, "chats": 0}
            at_kill: dict[str, int] = {}
            killed_at: list[float] = []
            killed = trio.Event()
            lapsed: list[float] = []  # seconds from the kill to node-1 holding no lease

            def progressed() -> None:
                if sum(done.values()) >= (len(deliveries) + VISITORS * TURNS_PER_VISITOR) // 2:
                    if not killed.is_set():
                        dead.send_signal(signal.SIGKILL)
                        killed_at.append(time.monotonic())
                        at_kill.update(done)
                        killed.set()

            async def watch_leases() -> None:
                """From the kill on, until no unexpired lease is node-1's."""
                await killed.wait()
                with trio.fail_after(LEASES_LAPSE + 20):
                    while True:
                        with store.connection() as db:
                            if owner(dead) not in leases.counts(db):
                                break
                        await trio.sleep(0.1)
                lapsed.append(time.monotonic() - killed_at[0])

            async def webhook(raw: bytes) -> None:
                ok = False
                try:
                    r = await post_signed(meta, "whatsapp", raw)
                except httpx.TransportError as exc:
                    refused[f"webhook {type(exc).__name__}"] += 1
                else:
                    ok = r.status_code == 200
                    if ok:
                        acknowledged.append(raw)
                    else:
                        refused[f"webhook {r.status_code}"] += 1
                if not ok:
                    unanswered.append(raw)
                first_delivery.setdefault(mid_of[raw], ok)
                done["webhooks"] += 1
                progressed()

            async def visitor(n: int) -> None:
                transport = httpx.AsyncHTTPTransport(local_address=visitor_address(n), verify=False)
                async with httpx.AsyncClient(
                    base_url=https_url, transport=transport, timeout=60
                ) as browser:
                    for turn in range(TURNS_PER_VISITOR):
                        text = f"Hola, soy la visita {n}, mensaje {turn}"
                        session = f"web-{n}"
                        try:
                            r = await browser.post(
                                "/api/chat", json={"message": text, "sessionId": session}
                            )
                        except httpx.TransportError as exc:
                            refused[f"chat {type(exc).__name__}"] += 1
                        else:
                            if r.status_code == 200:
                                web_200.append((session, text))
                            else:  # cut by the kill (502): the visitor writes on
                                refused[f"chat {r.status_code}"] += 1
                        done["chats"] += 1
                        progressed()

            async def visitors() -> None:
                limiter = trio.CapacityLimiter(VISITORS_AT_ONCE)

                async def one(n: int) -> None:
                    async with limiter:
                        await visitor(n)

                async with trio.open_nursery() as nursery:
                    for n in range(VISITORS):
                        nursery.start_soon(one, n)

            async def webhooks() -> None:
                limiter = trio.CapacityLimiter(WEBHOOKS_AT_ONCE)
                sent = 0

                async def sender(queue: list[bytes]) -> None:
                    nonlocal sent
                    for raw in queue:
                        async with limiter:
                            # Paced by the chats, so the kill lands amid both.
                            while done["chats"] < sent - WEBHOOK_LEAD and not chats_over.is_set():
                                await trio.sleep(0.01)
                            sent += 1
                            await webhook(raw)

                async with trio.open_nursery() as nursery:
                    for queue in by_sender.values():
                        nursery.start_soon(sender, queue)

            async def redeliver() -> None:
                """Meta sends again what got no 200, then (to be thorough) everything,
                each until it gets its 200."""
                for raw in unanswered + deliveries:
                    for _attempt in range(REDELIVERIES):
                        try:
                            if (await post_signed(meta, "whatsapp", raw)).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await trio.sleep(0.5)
                    else:
                        raise AssertionError("a redelivery never got its 200")

            chats_over = trio.Event()
            try:
                async with trio.open_nursery() as watching:
                    watching.start_soon(watch_leases)
                    started = time.monotonic()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(webhooks)
                        await visitors()
                        chats_over.set()
                    burst = time.monotonic() - started
                    assert killed.is_set(), "the burst ended before the kill"
                    assert at_kill["webhooks"] < len(deliveries), at_kill
                    assert at_kill["chats"] < VISITORS * TURNS_PER_VISITOR, at_kill
                    assert await dead.wait() == -signal.SIGKILL
                    await redeliver()
                # node-1's leases lapse within 10 s of the kill, and a survivor leads.
                assert lapsed[0] <= LEASES_LAPSE, lapsed
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

    # Every WhatsApp message stored once, handled, and answered by exactly one reply.
    assert sorted(str(r[0]) for r in rows["whatsapp"]) == sorted(mid for _, mid, _ in texts)
    assert {r[3] for r in rows["whatsapp"]} == {"handled"}
    assert all(r[4] == 1 for r in rows["whatsapp"]), [r for r in rows["whatsapp"] if r[4] != 1]
    assert len(rows["replies"]) == len(texts)
    # In the order each sender wrote them: a message whose first delivery got its 200 (so
    # the store had it before the next was sent) is answered before the sender's next.
    reply_of = {str(r[0]): int(str(r[5])) for r in rows["whatsapp"]}
    for s in range(SENDERS):
        mids = [mid for _, mid, _ in texts if mid.startswith(f"wamid.pg{s}-")]
        answered = [reply_of[mid] for mid in mids if first_delivery[mid]]
        assert answered == sorted(answered), (mids, [reply_of[mid] for mid in mids])
    # Each reply queued once and sent; sent twice only where the kill cut a send, counted.
    assert {r[2] for r in rows["replies"]} == {"sent"}
    delivered = Counter(fake_graph.texts())
    assert set(delivered) == {(str(to), str(body)) for to, body, _ in rows["replies"]}
    doubled = sum(n - 1 for n in delivered.values())
    assert doubled <= counted
    # Every web chat that got a 200 has exactly one reply stored; none has two.
    web = {(str(key), str(content)): int(str(n)) for key, content, n in rows["web"]}
    assert web_200 and all(web.get(sent) == 1 for sent in web_200), web_200
    assert all(n <= 1 for n in web.values())
    print(
        f"\n[3 nodes behind nginx] burst of {len(deliveries)} webhooks and"
        f" {VISITORS * TURNS_PER_VISITOR} web chats in {burst:.1f} s; node-1 killed after"
        f" {at_kill}; {len(acknowledged)} webhooks acknowledged, {len(web_200)} web 200s,"
        f" refused: {dict(refused)}; {len(unanswered)} redelivered + all again;"
        f" doubled sends: {doubled}, counted by the survivors: {counted};"
        f" node-1's leases gone {lapsed[0]:.1f} s after the kill, {leader} leads"
    )
