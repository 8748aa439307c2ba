"""The burst of the cluster fault tests (test_cluster_faults.py: two workers on one store;
test_pg_cluster.py: three nodes behind nginx), and what the store must hold after it.

300 signed WhatsApp deliveries (60 senders x 4 messages, each sender's delivered one after
the other, and 60 duplicates) and 300 web chats (100 visitors x 3 turns, each visitor its own
conversation), both at once with bounded concurrency; one process gets SIGKILL when half of
the 600 requests are done, and from then on the test watches for its leases to lapse."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from sales.identity import current
from store import leases
from store.backends import Store
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph
from tests.meta import whatsapp_text

SENDERS = 60
MESSAGES_PER_SENDER = 4  # 240 messages
DUPLICATES = 60  # deliveries sent twice within the burst: 300 in all
VISITORS = 100
TURNS_PER_VISITOR = 3  # 300 web chats
WEBHOOKS_AT_ONCE = 20  # Meta's deliveries in flight
VISITORS_AT_ONCE = 30  # web visitors writing at once
WEBHOOK_LEAD = 40  # deliveries sent ahead of the chats' progress, so the two overlap
LEASES_LAPSE = 10.0  # seconds: the bound for a dead process's leases
REDELIVERIES = 5  # Meta's attempts at a delivery after the burst, until it gets a 200


def owner(process: SuiteProcess) -> str:
    """The lease owner of a test process (sales/identity.py)."""
    return current(process.env).name


def pending(store: Store) -> tuple[int, int]:
    """Inbound messages and outbox sends still waiting."""
    with store.connection() as db:
        inbound = db.scalar("SELECT count(*) FROM messages WHERE status = 'pending'")
        sends = db.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
    return int(inbound), int(sends)


async def resent_after_crash(process: SuiteProcess) -> int:
    """ia_resent_after_crash_total{kind="messaging"} on this process's own /metrics."""
    async with httpx.AsyncClient(timeout=30) as client:
        page = (await client.get(f"{process.url}/metrics")).text
    return sum(
        int(s.value)
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "ia_resent_after_crash_total" and s.labels.get("kind") == "messaging"
    )


@dataclass
class Deliveries:
    """Each sender's messages in the order they wrote them; duplicates anywhere after."""

    texts: list[tuple[str, str, str]]  # (sender, message id, text)
    by_sender: dict[str, list[bytes]]
    message_id: dict[bytes, str]

    @property
    def all(self) -> list[bytes]:
        return [raw for queue in self.by_sender.values() for raw in queue]

    @classmethod
    def make(cls, rng: random.Random, prefix: str) -> Deliveries:
        texts = [
            (f"569{30_000_000 + s}", f"wamid.{prefix}{s}-m{m}", f"remitente {s} mensaje {m}")
            for s in range(SENDERS)
            for m in range(MESSAGES_PER_SENDER)
        ]
        by_sender: dict[str, list[bytes]] = defaultdict(list)
        message_id: dict[bytes, str] = {}
        for i, (sender, mid, text) in enumerate(texts):
            raw = whatsapp_text(sender, mid, text, ts=1764800000 + i)
            by_sender[sender].append(raw)
            message_id[raw] = mid
        for sender in rng.choices(sorted(by_sender), k=DUPLICATES):
            queue = by_sender[sender]
            raw = rng.choice(queue)
            queue.insert(rng.randrange(queue.index(raw) + 1, len(queue) + 1), raw)
        return cls(texts, dict(by_sender), message_id)


PostWebhook = Callable[[bytes], Awaitable[httpx.Response]]
# A visitor's browser: a client, and where its turn-th chat goes (the client's base or not).
Browser = Callable[
    [int], AbstractAsyncContextManager[tuple[httpx.AsyncClient, Callable[[int], str]]]
]


@dataclass
class Ledger:
    """What the burst got, as Meta and the visitors saw it."""

    acknowledged: int = 0
    unanswered: list[bytes] = field(default_factory=list)  # no 200: Meta sends them again
    first_delivery: dict[str, bool] = field(default_factory=dict)  # message id → got its 200
    web_200: list[tuple[str, str]] = field(default_factory=list)  # (session, text)
    refused: Counter[str] = field(default_factory=Counter)  # what came instead of a 200
    done: dict[str, int] = field(default_factory=lambda: {"webhooks": 0, "chats": 0})
    at_kill: dict[str, int] = field(default_factory=dict)
    killed_at: float = 0.0
    burst: float = 0.0  # seconds
    lapsed: float | None = None  # seconds from the kill to the dead one holding no lease


class Burst:
    def __init__(self, deliveries: Deliveries, post_webhook: PostWebhook, browser: Browser):
        self.deliveries = deliveries
        self.post_webhook = post_webhook
        self.browser = browser
        self.ledger = Ledger()
        self.killed = trio.Event()

    @asynccontextmanager
    async def killing(
        self, victim: SuiteProcess, store: Store, kill: Callable[[], None]
    ) -> AsyncIterator[Ledger]:
        """Run the burst, `kill` half-way, and watch from then on for the victim's leases
        to lapse (while the caller redelivers, inside the block)."""
        self.kill = kill
        async with trio.open_nursery() as watching:
            watching.start_soon(self._watch_leases, owner(victim), store)
            started = time.monotonic()
            chats_over = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._webhooks, chats_over)
                await self._visitors()
                chats_over.set()
            self.ledger.burst = time.monotonic() - started
            assert self.killed.is_set(), "the burst ended before the kill"
            total = len(self.deliveries.all), VISITORS * TURNS_PER_VISITOR
            at_kill = self.ledger.at_kill
            assert at_kill["webhooks"] < total[0] and at_kill["chats"] < total[1], at_kill
            yield self.ledger
        assert self.ledger.lapsed is not None

    def _progressed(self) -> None:
        done = self.ledger.done
        half = (len(self.deliveries.all) + VISITORS * TURNS_PER_VISITOR) // 2
        if sum(done.values()) >= half and not self.killed.is_set():
            self.kill()
            self.ledger.killed_at = time.monotonic()
            self.ledger.at_kill.update(done)
            self.killed.set()

    async def _watch_leases(self, victim: str, store: Store) -> None:
        await self.killed.wait()
        with trio.fail_after(LEASES_LAPSE + 20):
            while True:
                with store.connection() as db:
                    if victim not in leases.counts(db):
                        break
                await trio.sleep(0.1)
        self.ledger.lapsed = time.monotonic() - self.ledger.killed_at

    async def _webhook(self, raw: bytes) -> None:
        ledger, ok = self.ledger, False
        try:
            r = await self.post_webhook(raw)
        except httpx.TransportError as exc:
            ledger.refused[f"webhook {type(exc).__name__}"] += 1
        else:
            ok = r.status_code == 200
            if not ok:
                ledger.refused[f"webhook {r.status_code}"] += 1
        ledger.acknowledged += ok
        if not ok:
            ledger.unanswered.append(raw)
        ledger.first_delivery.setdefault(self.deliveries.message_id[raw], ok)
        ledger.done["webhooks"] += 1
        self._progressed()

    async def _webhooks(self, chats_over: trio.Event) -> None:
        limiter = trio.CapacityLimiter(WEBHOOKS_AT_ONCE)
        sent = 0

        async def sender(queue: list[bytes]) -> None:
            nonlocal sent
            for raw in queue:  # one after the other: the store has each before the next
                async with limiter:
                    # Paced by the chats, so the kill lands amid both.
                    while (
                        self.ledger.done["chats"] < sent - WEBHOOK_LEAD and not chats_over.is_set()
                    ):
                        await trio.sleep(0.01)
                    sent += 1
                    await self._webhook(raw)

        async with trio.open_nursery() as nursery:
            for queue in self.deliveries.by_sender.values():
                nursery.start_soon(sender, queue)

    async def _visitor(self, n: int) -> None:
        ledger, session = self.ledger, f"web-{n}"
        async with self.browser(n) as (client, chat_url):
            for turn in range(TURNS_PER_VISITOR):
                text = f"Hola, soy la visita {n}, mensaje {turn}"
                try:
                    r = await client.post(
                        chat_url(turn), json={"message": text, "sessionId": session}
                    )
                except httpx.TransportError as exc:
                    ledger.refused[f"chat {type(exc).__name__}"] += 1
                else:
                    if r.status_code == 200:
                        ledger.web_200.append((session, text))
                    else:  # cut by the kill (nginx's 502): the visitor writes on
                        ledger.refused[f"chat {r.status_code}"] += 1
                ledger.done["chats"] += 1
                self._progressed()

    async def _visitors(self) -> None:
        limiter = trio.CapacityLimiter(VISITORS_AT_ONCE)

        async def one(n: int) -> None:
            async with limiter:
                await self._visitor(n)

        async with trio.open_nursery() as nursery:
            for n in range(VISITORS):
                nursery.start_soon(one, n)

    async def redeliver(self, post_webhook: PostWebhook) -> None:
        """Meta sends again what got no 200, then (to be thorough) everything, each until
        it gets its 200."""
        for raw in self.ledger.unanswered + self.deliveries.all:
            for _attempt in range(REDELIVERIES):
                try:
                    if (await post_webhook(raw)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await trio.sleep(0.5)
            else:
                raise AssertionError("a redelivery never got its 200")


def stored(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """What the store ends with, for `check_answers`."""
    with store.connection() as db:
        return {
            # Each WhatsApp message with the replies to it.
            "whatsapp": db.rows(
                "SELECT u.external_id, u.status, count(r.id), min(r.id)"
                " FROM messages u LEFT JOIN messages r ON r.reply_to = u.id"
                " WHERE u.channel = 'whatsapp' AND u.role = 'user'"
                " GROUP BY u.external_id, u.status"
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


def check_answers(
    rows: dict[str, list[tuple[object, ...]]],
    deliveries: Deliveries,
    ledger: Ledger,
    fake_graph: FakeGraph,
    counted: int,
) -> int:
    """Everything acknowledged answered exactly once (with DEBOUNCE_SECONDS=0, one reply per
    message), in each sender's order; each reply sent, twice only where the kill cut a send
    (at most `counted`); each web 200 with exactly one stored reply. Returns the doubles."""
    whatsapp = rows["whatsapp"]
    # Every WhatsApp message stored once, handled, and answered by exactly one reply.
    assert sorted(str(r[0]) for r in whatsapp) == sorted(mid for _, mid, _ in deliveries.texts)
    assert {r[1] for r in whatsapp} == {"handled"}
    assert all(r[2] == 1 for r in whatsapp), [r for r in whatsapp if r[2] != 1]
    assert len(rows["replies"]) == len(deliveries.texts)
    # In the order each sender wrote them: a message whose first delivery got its 200 (so
    # the store had it before the next was sent) is answered before the sender's next.
    reply_of = {str(r[0]): int(str(r[3])) for r in whatsapp}
    for sender in deliveries.by_sender:
        mids = [mid for who, mid, _ in deliveries.texts if who == sender]
        answered = [reply_of[mid] for mid in mids if ledger.first_delivery[mid]]
        assert answered == sorted(answered), (mids, [reply_of[mid] for mid in mids])
    # Each reply queued once and sent; sent twice only where the kill cut a send, counted.
    assert {r[2] for r in rows["replies"]} == {"sent"}
    delivered = Counter(fake_graph.texts())
    assert set(delivered) == {(str(to), str(body)) for to, body, _ in rows["replies"]}
    doubled = sum(n - 1 for n in delivered.values())
    assert doubled <= counted
    # Every web chat that got a 200 has exactly one reply stored; none has two.
    web = {(str(key), str(content)): int(str(n)) for key, content, n in rows["web"]}
    assert ledger.web_200 and all(web.get(sent) == 1 for sent in ledger.web_200), ledger.web_200
    assert all(n <= 1 for n in web.values())
    return doubled


def summary(ledger: Ledger, doubled: int, counted: int, leader: str | None) -> str:
    return (
        f"burst of {SENDERS * MESSAGES_PER_SENDER + DUPLICATES} webhooks and"
        f" {VISITORS * TURNS_PER_VISITOR} web chats in {ledger.burst:.1f} s, killed after"
        f" {ledger.at_kill}; {ledger.acknowledged} webhooks acknowledged in it,"
        f" {len(ledger.web_200)} web 200s, refused: {dict(ledger.refused)};"
        f" {len(ledger.unanswered)} redelivered + all again; doubled sends: {doubled},"
        f" counted by the survivors: {counted}; the dead one's leases gone"
        f" {ledger.lapsed:.1f} s after the kill, {leader} leads"
    )
