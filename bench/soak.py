"""Soak: the suite for --minutes under a steady mixed load, killed with SIGKILL twice.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 10,10,1] [--backup-minutes 5] [--keep]

`ia-comercial run` runs as a subprocess on SQLite in a temporary folder, with WhatsApp
configured and an admin password, against two fakes served by this process on 127.0.0.1
(tests/fakes): an OpenAI-compatible model that echoes the last message after 50-300 ms, and
Meta's Graph API, which records every send. --rate is chat turns, webhooks and admin reads a
second, each on a fixed schedule (open loop): chat turns over many sessions (one turn in
flight per session, as a browser sends them), signed WhatsApp webhooks (a fifth are
redeliveries of an earlier one; a delivery that gets no 200 is retried, as Meta does) and
admin reads with a logged-in session (leads, a lead, statistics, the CSV export).
`ia-comercial backup` runs every --backup-minutes (the suite's own backup is daily, BACKUP_TIME,
switched off here). At a third and at two thirds of the run the suite gets SIGKILL and starts
again on the same database and port, from a copy of the code taken at the start. RSS and
CPU (the suite's, this process's, the rest of the machine's) are sampled every 10 s.

When the load stops and the outbox has drained, the store and the fake Graph are checked.
Lost: a webhook acknowledged with 200 but not stored, or stored but its reply never delivered;
a chat turn answered 200 whose reply is not stored. Doubled: a reply's text delivered twice;
an inbound message stored twice. Exit status 1 when anything was lost."""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import httpx
import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.*
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph, serve_graph
from tests.fakes.openai_server import Behaviour, EchoLast, FakeOpenAI, serve_fake
from tests.meta import channel_env, sign, whatsapp_text

ROOT = Path(__file__).resolve().parent.parent
CODE = ("actors", "store", "supervisor", "config", "prompts", "public")
SECONDS = 1.0
MINUTES = 60 * SECONDS
MIB = 1024 * 1024
LLM_DELAY = (0.05 * SECONDS, 0.3 * SECONDS)
RSS_EVERY = 10 * SECONDS
BACKUP_TIMEOUT = 2 * MINUTES
WARM_UP = 2 * MINUTES  # after each start; at most a sixth of an incarnation
FLAT_WITHIN = 0.10
REDELIVERED_SHARE = 0.2
REDELIVERY_POOL = 2000  # a redelivery repeats one of the last webhooks sent
META_RETRY_EVERY = 5 * SECONDS
META_RETRIES = 24  # two minutes: longer than a restart
NEW_VISITOR_SHARE = 0.1  # of chat turns; the rest continue a recent session
RECENT_VISITORS = 300
SENDERS = 3000
IN_FLIGHT_CAP = 200  # a kind's requests in flight; past it the schedule skips
REQUEST_TIMEOUT = 30 * SECONDS
DRAIN_TIMEOUT = 5 * MINUTES
POLL_EVERY = 0.5 * SECONDS
ADMIN_PASSWORD = "soak-admin-password-0123"
ADMIN_READS = ("admin leads", "admin lead", "admin stats", "admin csv")
KINDS = ("chat", "webhook", "webhook redelivered", *ADMIN_READS)
SEED = 20261128


@dataclass(frozen=True)
class Exchange:
    kind: str
    at: float  # seconds into the soak, when it was sent
    ms: float | None  # None: no answer (refused, reset, timed out)
    status: int | None


@dataclass(frozen=True)
class ChatTurn:
    text: str
    reply: str


@dataclass(frozen=True)
class UsageSample:
    at: float
    incarnation: int
    rss: int
    cpu: float  # the suite's user + system seconds since the incarnation started
    bench_cpu: float  # this process's, since it started
    machine_cpu: float  # every core's busy seconds since boot: other work on the machine


@dataclass(frozen=True)
class BackupRun:
    at: float
    ok: bool
    seconds: float
    said: str


@dataclass
class Ledger:
    """Everything the load saw, for the checks and the report."""

    start: float
    wall_start: datetime = field(default_factory=lambda: datetime.now(UTC))
    exchanges: list[Exchange] = field(default_factory=list)
    chat_turns: list[ChatTurn] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)  # wamids answered 200 at least once
    given_up: set[str] = field(default_factory=set)  # wamids never answered 200
    meta_retries: int = 0
    relogins: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    usage: list[UsageSample] = field(default_factory=list)
    backups: list[BackupRun] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # each incarnation, seconds in
    down: list[tuple[float, float]] = field(default_factory=list)  # killed -> ready again
    resent_after_crash: list[int | None] = field(default_factory=list)  # per incarnation

    def now(self) -> float:
        return trio.current_time() - self.start

    async def timed(
        self, kind: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response | None:
        at = self.now()
        try:
            response = await send()
        except httpx.TransportError:
            self.exchanges.append(Exchange(kind, at, None, None))
            return None
        self.exchanges.append(Exchange(kind, at, (self.now() - at) * 1000, response.status_code))
        return response


class SlowModel(FakeOpenAI):
    """Echoes the last user message after 50-300 ms, as a small hosted model answers."""

    rng = random.Random(SEED)

    def next_behaviour(self) -> Behaviour:
        return EchoLast(delay=self.rng.uniform(*LLM_DELAY))


class SuiteUnderTest:
    """The suite's successive incarnations on one database and port."""

    def __init__(self, workdir: Path, env: dict[str, str], ledger: Ledger) -> None:
        self.workdir, self.env, self.ledger = workdir, env, ledger
        self.process = SuiteProcess(workdir, **env)
        self.url = self.process.url
        self.incarnation = 1

    async def start(self) -> None:
        self.ledger.started.append(self.ledger.now())
        await self.process.start()

    def usage(self) -> tuple[int, float] | None:
        """RSS in bytes and CPU seconds of the running incarnation."""
        p = self.process.process
        if p is None or p.returncode is not None:
            return None
        try:
            me = psutil.Process(p.pid)
            with me.oneshot():
                cpu = me.cpu_times()
                return int(me.memory_info().rss), cpu.user + cpu.system
        except psutil.NoSuchProcess:
            return None

    async def resent_after_crash(self) -> int | None:
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
                health = (await client.get("/health/detailed")).json()
            return int(health["work"]["notifier"]["sends_resent_after_crash"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def kill_and_restart(self) -> None:
        self.ledger.resent_after_crash.append(await self.resent_after_crash())
        killed_at = self.ledger.now()
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        successor = SuiteProcess(self.workdir, **self.env)
        successor.port, successor.url = self.process.port, self.process.url
        successor.env["PORT"] = self.process.env["PORT"]
        self.process = successor
        self.incarnation += 1
        await self.start()
        self.ledger.down.append((killed_at, self.ledger.now()))

    async def stop(self) -> int:
        self.ledger.resent_after_crash.append(await self.resent_after_crash())
        return await self.process.stop(timeout=60)

    def kill_if_running(self) -> None:
        p = self.process.process
        if p is not None and p.returncode is None:
            p.kill()


class Visitors:
    """Web chat sessions: some turns come from new visitors, the rest continue a recent
    conversation; a session has one turn in flight at most."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0
        self.idle: list[str] = []

    def take(self) -> str:
        if self.idle and self.rng.random() > NEW_VISITOR_SHARE:
            return self.idle.pop(self.rng.randrange(len(self.idle)))
        self.count += 1
        return f"soak-{self.count}"

    def give_back(self, session: str) -> None:
        self.idle.append(session)
        if len(self.idle) > RECENT_VISITORS:
            self.idle.pop(0)  # that visitor has left


class Deliveries:
    """Signed WhatsApp webhooks: new messages from a pool of senders, and redeliveries of
    recent ones byte for byte, as Meta repeats them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.recent: deque[tuple[str, bytes]] = deque(maxlen=REDELIVERY_POOL)

    def next(self, i: int) -> tuple[str, bytes, bool]:
        if self.recent and self.rng.random() < REDELIVERED_SHARE:
            wamid, raw = self.rng.choice(self.recent)
            return wamid, raw, True
        sender = f"569{self.rng.randrange(SENDERS):08d}"
        wamid = f"wamid.soak-{i}"
        text = f"Mensaje {i}: hola, ¿cuánto cuesta una mantención en Ñuñoa?"
        raw = whatsapp_text(sender, wamid, text, ts=int(time.time()))
        self.recent.append((wamid, raw))
        return wamid, raw, False


async def steady(rate: float, seconds: float, step: Callable[[int], Awaitable[None]]) -> int:
    """Start step(0), step(1), ... `rate` a second for `seconds`, whatever the suite does
    (open loop); with IN_FLIGHT_CAP steps in flight the next is skipped. Returns the skips."""
    skipped = in_flight = 0

    async def one(i: int) -> None:
        nonlocal in_flight
        try:
            await step(i)
        finally:
            in_flight -= 1

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(int(rate * seconds)):
            await trio.sleep_until(start + i / rate)
            if in_flight >= IN_FLIGHT_CAP:
                skipped += 1
                continue
            in_flight += 1
            nursery.start_soon(one, i)
    return skipped


async def chat_load(ledger: Ledger, url: str, rate: float, seconds: float) -> None:
    visitors = Visitors(random.Random(SEED + 1))
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:

        async def turn(i: int) -> None:
            session = visitors.take()
            text = f"Consulta {i}: ¿hacen mantención de aire acondicionado en Ñuñoa?"
            body = {"message": text, "sessionId": session}
            try:
                r = await ledger.timed("chat", lambda: client.post("/api/chat", json=body))
                if r is not None and r.status_code == 200:
                    ledger.chat_turns.append(ChatTurn(text, r.json()["data"]["respuesta"]))
            finally:
                visitors.give_back(session)

        ledger.skipped["chat"] += await steady(rate, seconds, turn)


async def webhook_load(ledger: Ledger, url: str, rate: float, seconds: float) -> None:
    deliveries = Deliveries(random.Random(SEED + 2))
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:

        async def deliver(i: int) -> None:
            wamid, raw, redelivered = deliveries.next(i)
            kind = "webhook redelivered" if redelivered else "webhook"
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw)}
            for attempt in range(META_RETRIES):
                if attempt:
                    ledger.meta_retries += 1
                    await trio.sleep(META_RETRY_EVERY)
                r = await ledger.timed(
                    kind,
                    lambda: client.post("/api/whatsapp/webhook", content=raw, headers=headers),
                )
                if r is not None and r.status_code == 200:
                    ledger.acknowledged.add(wamid)
                    return
            ledger.given_up.add(wamid)

        ledger.skipped["webhook"] += await steady(rate, seconds, deliver)


async def admin_load(ledger: Ledger, url: str, rate: float, seconds: float) -> None:
    rng = random.Random(SEED + 3)
    lead_ids: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:

        async def log_in() -> None:
            await client.post("/api/auth/login", json={"password": ADMIN_PASSWORD})

        async def read(i: int) -> None:
            kind = ADMIN_READS[i % len(ADMIN_READS)]
            path = {
                "admin leads": "/api/leads?porPagina=50",
                "admin lead": f"/api/leads/{rng.choice(lead_ids) if lead_ids else 1}",
                "admin stats": "/api/leads/estadisticas",
                "admin csv": "/api/leads/export.csv",
            }[kind]
            r = await ledger.timed(kind, lambda: client.get(path))
            if r is not None and r.status_code == 401:  # not expected: sessions are stored
                ledger.relogins += 1
                await log_in()
            elif r is not None and r.status_code == 200 and kind == "admin leads":
                lead_ids[:] = [row["id"] for row in r.json()["data"]]

        await log_in()
        ledger.skipped["admin"] += await steady(rate, seconds, read)


async def sample_usage(ledger: Ledger, suite: SuiteUnderTest, seconds: float) -> None:
    for i in range(int(seconds / RSS_EVERY) + 1):
        await trio.sleep_until(ledger.start + i * RSS_EVERY)
        usage = suite.usage()
        if usage is not None:
            rss, cpu = usage
            bench = psutil.Process().cpu_times()
            machine = psutil.cpu_times()
            ledger.usage.append(
                UsageSample(
                    ledger.now(),
                    suite.incarnation,
                    rss,
                    cpu,
                    bench.user + bench.system,
                    sum(machine) - machine.idle - machine.iowait,
                )
            )


async def take_backups(ledger: Ledger, suite: SuiteUnderTest, seconds: float, every: float) -> None:
    for i in range(1, int(seconds / every) + 1):
        await trio.sleep_until(ledger.start + i * every)
        at = ledger.now()
        with trio.move_on_after(BACKUP_TIMEOUT) as limit:
            done = await trio.run_process(
                [sys.executable, "-m", "supervisor.cli", "backup"],
                cwd=suite.workdir,
                env=suite.process.env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            said = (done.stdout + done.stderr).decode(errors="replace").strip()
            ledger.backups.append(BackupRun(at, done.returncode == 0, ledger.now() - at, said))
        if limit.cancelled_caught:
            ledger.backups.append(BackupRun(at, False, ledger.now() - at, "timed out"))


async def crash_twice(ledger: Ledger, suite: SuiteUnderTest, seconds: float) -> None:
    for third in (1, 2):
        await trio.sleep_until(ledger.start + third * seconds / 3)
        await suite.kill_and_restart()


async def drain(suite: SuiteUnderTest) -> bool:
    """Whether the suite answered and sent everything WhatsApp brought before DRAIN_TIMEOUT."""
    async with httpx.AsyncClient(base_url=suite.url, timeout=10) as client:
        for _ in range(int(DRAIN_TIMEOUT / POLL_EVERY)):
            whatsapp = (await client.get("/health/detailed")).json()["channels"]["whatsapp"]
            if whatsapp["inboundPending"] == 0 and whatsapp["outboxPending"] == 0:
                await trio.sleep(2 * SECONDS)  # nothing more leaves after the outbox is empty
                return True
            await trio.sleep(POLL_EVERY)
    return False


@dataclass(frozen=True)
class Verdict:
    not_stored: int  # webhooks acknowledged, not in the store
    not_answered: int  # stored, never answered
    not_delivered: int  # answered, the reply's text never reached the fake Graph
    chat_not_stored: int  # chat turns answered 200 whose reply is not stored
    chat_differs: int  # stored, but not the reply the client got
    texts_doubled: int  # a reply's text delivered more than once
    inbound_doubled: int
    web_left_pending: int  # chat messages whose request was cut by a kill
    examples: tuple[str, ...]

    @property
    def lost(self) -> int:
        return self.not_stored + self.not_answered + self.not_delivered + self.chat_not_stored


def check(db_path: Path, ledger: Ledger, graph: FakeGraph) -> Verdict:
    db = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return list(db.execute(sql).fetchall())

    try:
        inbound = {
            ext: (mid, conv, status)
            for ext, mid, conv, status in rows(
                "SELECT external_id, id, conversation_id, status FROM messages"
                " WHERE channel = 'whatsapp' AND role = 'user'"
            )
        }
        replies: dict[int, list[tuple[int, int]]] = {}  # conversation -> (reply_to, reply id)
        for conv, reply_to, rid in rows(
            "SELECT conversation_id, reply_to, id FROM messages WHERE channel = 'whatsapp'"
            " AND role = 'assistant' AND reply_to IS NOT NULL ORDER BY reply_to"
        ):
            replies.setdefault(conv, []).append((reply_to, rid))
        sends: dict[int, list[tuple[str, str, str]]] = {}
        for rid, status, recipient, body in rows(
            "SELECT reply_id, status, recipient, body FROM outbox"
            " WHERE channel = 'whatsapp' AND kind = 'text' AND reply_id IS NOT NULL"
        ):
            sends.setdefault(rid, []).append((status, recipient, body))
        web: dict[str, str | None] = dict(
            rows(
                "SELECT u.content, a.content FROM messages u LEFT JOIN messages a"
                " ON a.reply_to = u.id WHERE u.channel = 'web' AND u.role = 'user'"
            )
        )
        inbound_doubled = rows(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM messages"
            " WHERE role = 'user' GROUP BY channel, content HAVING n > 1)"
        )[0][0]
        web_pending = rows(
            "SELECT count(*) FROM messages WHERE channel = 'web' AND status = 'pending'"
        )
    finally:
        db.close()
    delivered = Counter(graph.texts())
    lost: Counter[str] = Counter()
    examples: list[str] = []
    for wamid in sorted(ledger.acknowledged):
        why = _why_lost(wamid, inbound, replies, sends, delivered)
        if why:
            lost[why] += 1
            examples.append(f"{wamid}: {why}")
    for turn in ledger.chat_turns:
        stored = web.get(turn.text)
        if stored is None:
            lost["chat not stored"] += 1
            examples.append(f"chat {turn.text[:20]!r}: reply not stored")
        elif stored != turn.reply:
            lost["chat differs"] += 1
    return Verdict(
        not_stored=lost["not stored"],
        not_answered=lost["not answered"],
        not_delivered=lost["not delivered"],
        chat_not_stored=lost["chat not stored"],
        chat_differs=lost["chat differs"],
        texts_doubled=sum(n - 1 for n in delivered.values()),
        inbound_doubled=int(inbound_doubled),
        web_left_pending=int(web_pending[0][0]),
        examples=tuple(examples[:5]),
    )


def _why_lost(
    wamid: str,
    inbound: dict[str, tuple[int, int, str]],
    replies: dict[int, list[tuple[int, int]]],
    sends: dict[int, list[tuple[str, str, str]]],
    delivered: Counter[tuple[str, str]],
) -> str | None:
    if wamid not in inbound:
        return "not stored"
    mid, conv, status = inbound[wamid]
    answers = replies.get(conv, [])
    first = bisect.bisect_left(answers, (mid, 0))  # a debounced batch's reply points at its last
    if status != "handled" or first == len(answers):
        return "not answered"
    parts = sends.get(answers[first][1], [])
    if not parts or any(s != "sent" or delivered[(to, body)] == 0 for s, to, body in parts):
        return "not delivered"
    return None


@dataclass(frozen=True)
class Ending:
    drained: bool
    exit_code: int | None  # on SIGTERM after the drain; None: it hung and got SIGKILL
    log_lines: tuple[str, ...]  # the suite's warnings and errors, counted by kind
    stored: str  # what the store holds at the end


def suite_log(workdir: Path, since: datetime) -> tuple[str, ...]:
    """Warnings and errors of every incarnation, grouped by message with digits masked;
    when (minutes into the soak) for the errors."""
    seen: Counter[str] = Counter()
    when: dict[str, list[str]] = {}
    for path in sorted((workdir / "logs").glob("combined.log*")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("level") in ("warning", "error", "critical"):
                message = "".join("#" if c.isdigit() else c for c in record["message"])
                what = f"{record['level']}: {message[:90]}"
                seen[what] += 1
                at = datetime.fromisoformat(record["time"]) - since
                when.setdefault(what, []).append(f"{at.total_seconds() / MINUTES:.1f}")
    return tuple(
        f"{n:6d} x {what}"
        + (f" (at {', '.join(when[what][:5])} min)" if what.startswith(("error", "crit")) else "")
        for what, n in seen.most_common(8)
    )


def stored(workdir: Path) -> str:
    db_path = workdir / "db" / "leads.db"
    db = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        count = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            for table in ("leads", "conversations", "messages", "outbox")
        }
    finally:
        db.close()
    backups = sum(f.stat().st_size for f in (workdir / "backups").glob("*.db"))
    return (
        ", ".join(f"{n} {table}" for table, n in count.items())
        + f"; database {db_path.stat().st_size / MIB:.1f} MiB, backups {backups / MIB:.1f} MiB"
    )


def pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def settled_rss(ledger: Ledger, incarnation: int, seconds: float) -> list[int]:
    """RSS samples of one incarnation after its warm-up."""
    warm = min(WARM_UP, seconds / 18)  # a sixth of an incarnation at most
    since = ledger.started[incarnation - 1] + warm
    return [s.rss for s in ledger.usage if s.incarnation == incarnation and s.at >= since]


def report_rss(ledger: Ledger, seconds: float) -> None:
    print("\nRSS, MiB: minute -> median of the 10 s samples, per incarnation (run)")
    for run in range(1, len(ledger.started) + 1):
        by_minute: dict[int, list[int]] = {}
        for s in ledger.usage:
            if s.incarnation == run:
                by_minute.setdefault(int(s.at // MINUTES), []).append(s.rss)
        cells = [f"{m:>2}: {statistics.median(v) / MIB:4.0f}" for m, v in sorted(by_minute.items())]
        for k in range(0, len(cells), 10):
            print(f"  run {run}  " if k == 0 else " " * 9, "  ".join(cells[k : k + 10]))
    first, last = settled_rss(ledger, 1, seconds), settled_rss(ledger, len(ledger.started), seconds)
    if not first or not last:
        print("  too few samples after warm-up to compare")
        return
    before, after = statistics.median(first) / MIB, statistics.median(last) / MIB
    change = after / before - 1
    verdict = "flat" if abs(change) <= FLAT_WITHIN else "NOT flat"
    warm = min(WARM_UP, seconds / 18)
    print(
        f"  after warm-up ({warm:.0f} s from each start): first third {before:.1f} MiB, last"
        f" third {after:.1f} MiB ({change:+.1%}): {verdict} (within {FLAT_WITHIN:.0%})"
    )
    for run in range(1, len(ledger.started) + 1):
        mine = settled_rss(ledger, run, seconds)
        samples = [s for s in ledger.usage if s.incarnation == run]
        if mine and len(samples) > 1:
            head, tail = samples[0], samples[-1]
            span = tail.at - head.at
            suite = (tail.cpu - head.cpu) / span
            bench = (tail.bench_cpu - head.bench_cpu) / span
            others = (tail.machine_cpu - head.machine_cpu) / span - suite - bench
            print(
                f"  run {run} after warm-up: {mine[0] / MIB:.1f} -> {mine[-1] / MIB:.1f} MiB"
                f" (max {max(mine) / MIB:.1f}); CPU in cores: suite {suite:.2f},"
                f" this bench {bench:.2f}, other processes {others:.2f}"
            )


def report_latency(ledger: Ledger, seconds: float) -> None:
    print(
        f"\n{'kind':20} {'sent':>7} {'200':>7} {'other':>6} {'no ans':>6} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'p99 by third':>18} {'max ms':>7}"
    )
    for kind in KINDS:
        mine = [e for e in ledger.exchanges if e.kind == kind]
        answered = [e.ms for e in mine if e.ms is not None]
        thirds = [
            pick([e.ms for e in mine if e.ms is not None and int(3 * e.at / seconds) == k], 0.99)
            for k in range(3)
        ]
        print(
            f"{kind:20} {len(mine):7d} {sum(e.status == 200 for e in mine):7d}"
            f" {sum(e.status not in (None, 200) for e in mine):6d}"
            f" {sum(e.status is None for e in mine):6d} {pick(answered, 0.5):7.1f}"
            f" {pick(answered, 0.99):7.1f} {' / '.join(f'{t:.0f}' for t in thirds):>18}"
            f" {max(answered, default=float('nan')):7.0f}"
        )
    others = Counter((e.kind, e.status) for e in ledger.exchanges if e.status not in (None, 200))
    if others:
        print("  other statuses: " + ", ".join(f"{k} {s} x{n}" for (k, s), n in others.items()))


def around_a_kill(ledger: Ledger, at: float) -> bool:
    return any(killed - 5 * SECONDS <= at <= ready + 1 * SECONDS for killed, ready in ledger.down)


def report(args: argparse.Namespace, ledger: Ledger, verdict: Verdict, ending: Ending) -> None:
    seconds = args.minutes * MINUTES
    chat, webhooks, admin = args.rate
    kills = ", ".join(f"{killed / MINUTES:.1f}" for killed, _ in ledger.down)
    print(
        f"\nSoak: {args.minutes:g} min on {os.cpu_count()} cores; chat {chat:g}/s, webhooks"
        f" {webhooks:g}/s ({REDELIVERED_SHARE:.0%} redelivered), admin reads {admin:g}/s;"
        f" kill -9 at {kills} min; the fake model answers in"
        f" {LLM_DELAY[0] * 1000:.0f}-{LLM_DELAY[1] * 1000:.0f} ms"
    )
    report_rss(ledger, seconds)
    report_latency(ledger, seconds)
    unanswered = [e for e in ledger.exchanges if e.status is None]
    near = sum(around_a_kill(ledger, e.at) for e in unanswered)
    print(
        f"\nTotals: {len(ledger.exchanges)} requests; {len(ledger.chat_turns)} chat turns"
        f" answered; {len(ledger.acknowledged)} WhatsApp messages acknowledged"
        f" ({ledger.meta_retries} retries after no 200, {len(ledger.given_up)} never"
        f" acknowledged); admin relogins {ledger.relogins}; skipped at the in-flight cap"
        f" {sum(ledger.skipped.values())}"
    )
    print(
        f"No answer: {near} around a kill (5 s before it to ready again),"
        f" {len(unanswered) - near} otherwise"
    )
    print(
        "Restarts, kill -9 to ready: "
        + ", ".join(f"{ready - killed:.1f} s" for killed, ready in ledger.down)
    )
    ok = [b for b in ledger.backups if b.ok]
    print(
        f"Backups (ia-comercial backup every {args.backup_minutes:g} min): {len(ok)} of"
        f" {len(ledger.backups)} ok"
        + (f", {min(b.seconds for b in ok):.1f}-{max(b.seconds for b in ok):.1f} s" if ok else "")
    )
    for b in ledger.backups:
        if not b.ok:
            print(f"  failed at {b.at / MINUTES:.1f} min: {b.said[-200:]}")
    print(
        f"Drained after the load: {'yes' if ending.drained else 'NO'}; exit on SIGTERM:"
        f" {'hung, killed' if ending.exit_code is None else ending.exit_code}"
    )
    print(f"Stored at the end: {ending.stored}")
    resent = ledger.resent_after_crash
    print(
        f"\nLost: {verdict.lost} (webhooks acknowledged but not stored {verdict.not_stored},"
        f" stored but not answered {verdict.not_answered}, reply not delivered"
        f" {verdict.not_delivered}; chat replies answered 200 but not stored"
        f" {verdict.chat_not_stored})"
    )
    print(
        f"Doubled: {verdict.texts_doubled} WhatsApp texts delivered twice; sends cut by a"
        f" crash (sends_resent_after_crash per incarnation): {resent},"
        f" {sum(r or 0 for r in resent)} in all; inbound stored twice: {verdict.inbound_doubled}"
    )
    print(
        f"Chat replies stored unlike the answer sent: {verdict.chat_differs}; web messages"
        f" left pending (their request cut by a kill): {verdict.web_left_pending}"
    )
    for example in verdict.examples:
        print(f"  {example}")
    print("Suite warnings and errors (all incarnations):")
    for line in ending.log_lines or ("  none",):
        print(f"  {line}")


def copy_code(workdir: Path) -> None:
    """The suite's code as it is now, into the folder it runs from (`python -m` looks there
    before the editable install): every incarnation runs the same code, though others may
    change the repository during the soak."""
    for name in CODE:
        shutil.copytree(ROOT / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))


def suite_env(workdir: Path, graph: FakeGraph, model: FakeOpenAI) -> dict[str, str]:
    return {
        "BUSINESS_CONFIG": str(workdir / "config" / "business.json"),
        "SYSTEM_PROMPT_PATH": str(workdir / "prompts" / "systemPrompt.txt"),
        **channel_env(graph.url),
        "OPENAI_API_KEY": "sk-soak-not-a-real-key-0000000000",
        "OPENAI_BASE_URL": model.url,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DEBOUNCE_SECONDS": "2",  # the default; channel_env's 0 is for tests
        "BACKUP_DIR": str(workdir / "backups"),
        "BACKUP_TIME": "off",  # the bench takes them, every --backup-minutes
        "DAILY_SUMMARY_AT": "off",
    }


async def soak(args: argparse.Namespace, workdir: Path) -> tuple[Ledger, Verdict, Ending]:
    seconds = args.minutes * MINUTES
    chat, webhooks, admin = args.rate
    copy_code(workdir)
    async with trio.open_nursery() as fakes:
        graph = await serve_graph(fakes, FakeGraph())
        # Bounded: the fake keeps every request it was sent, and a soak sends tens of thousands.
        model = SlowModel(requests=deque(maxlen=1), headers=deque(maxlen=1))  # type: ignore[arg-type]
        await serve_fake(fakes, model)
        ledger = Ledger(start=trio.current_time())
        suite = SuiteUnderTest(workdir, suite_env(workdir, graph, model), ledger)
        try:
            await suite.start()
            async with trio.open_nursery() as load:
                load.start_soon(chat_load, ledger, suite.url, chat, seconds)
                load.start_soon(webhook_load, ledger, suite.url, webhooks, seconds)
                load.start_soon(admin_load, ledger, suite.url, admin, seconds)
                load.start_soon(sample_usage, ledger, suite, seconds)
                load.start_soon(take_backups, ledger, suite, seconds, args.backup_minutes * MINUTES)
                load.start_soon(crash_twice, ledger, suite, seconds)
            drained = await drain(suite)
            try:
                exit_code: int | None = await suite.stop()
            except trio.TooSlowError:
                exit_code = None
        finally:
            suite.kill_if_running()
        fakes.cancel_scope.cancel()
    verdict = check(workdir / "db" / "leads.db", ledger, graph)
    ending = Ending(drained, exit_code, suite_log(workdir, ledger.wall_start), stored(workdir))
    return ledger, verdict, ending


def rates(text: str) -> tuple[float, float, float]:
    chat, webhooks, admin = (float(r) for r in text.split(","))
    return chat, webhooks, admin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument(
        "--rate",
        type=rates,
        default=(10.0, 10.0, 1.0),
        help="chat turns, webhooks, admin reads a second: CHAT,WEBHOOKS,ADMIN (10,10,1)",
    )
    parser.add_argument("--backup-minutes", type=float, default=5, help="between backups (5)")
    parser.add_argument("--keep", action="store_true", help="keep the folder (database, logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        ledger, verdict, ending = trio.run(soak, args, workdir)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(args, ledger, verdict, ending)
    sys.exit(1 if verdict.lost else 0)


if __name__ == "__main__":
    main()
