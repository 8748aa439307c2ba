"""`ia-comercial run` on PostgreSQL, as a real subprocess: the web chat, a signed WhatsApp
webhook answered through the fake Graph API, the dashboard, backup and restore, a connection
killed under the suite (it reconnects by itself) and a kill -9 mid-burst (nothing lost or
doubled). The URL carries a known password (the test server trusts 127.0.0.1 and ignores
it): it never shows in a log, a health answer or an error."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trio

from store.migrations import MIGRATIONS
from tests.conftest import POSTGRES_URL, postgres_schema, require_system
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph
from tests.meta import WHATSAPP_TOKEN, channel_env, post_signed, whatsapp_text

PASSWORD = "pw-KNOWN-suite-on-postgres"
ADMIN_PASSWORD = "clave-de-prueba-KNOWN-123"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema; the URL with a known password and an application_name of its own
    (to find this suite's connection among other tests')."""
    with postgres_schema() as url:
        name = f"ia_test_{uuid.uuid4().hex[:10]}"
        yield url.replace("://postgres@", f"://postgres:{PASSWORD}@") + f"&application_name={name}"


def application_name(url: str) -> str:
    return url.rsplit("application_name=", 1)[1]


def pg_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def terminate_suite_connection(url: str) -> int:
    """pg_terminate_backend of the suite's own connection; how many were ended."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name(url),),
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def cli(suite: SuiteProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=suite.workdir,
        env={**suite.env, "BACKUP_DIR": str(suite.workdir / "backups")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def every_log(suite: SuiteProcess) -> str:
    files = (suite.workdir / "logs").glob("*.log*")
    return suite.log_text() + "".join(p.read_text(errors="replace") for p in files)


async def chat(client: httpx.AsyncClient, text: str, session: str) -> httpx.Response:
    return await client.post("/api/chat", json={"message": text, "sessionId": session})


async def test_the_suite_on_postgresql_chats_answers_whatsapp_lists_and_reconnects(
    tmp_path: Path, pg_url: str, fake_graph: FakeGraph
) -> None:
    env = {**channel_env(fake_graph.url), "DATABASE_URL": pg_url, "ADMIN_PASSWORD": ADMIN_PASSWORD}
    suite = SuiteProcess(tmp_path, **env)
    await suite.start()
    async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
        text = "Hola, soy José Ñuñez, 987654321, quiero agendar una instalación"
        r = await chat(client, text, "web-1")
        assert r.status_code == 200, r.text
        assert r.json()["data"]["respuesta"]
        history = (await client.get("/api/chat/session/web-1")).json()["data"]["historial"]
        assert [m["role"] for m in history] == ["user", "assistant"]

        raw = whatsapp_text("56911112222", "wamid.pg-1", "hola, ¿cuánto cuesta la mantención?")
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        with trio.fail_after(30):
            while not fake_graph.texts():
                await trio.sleep(0.05)
        [(to, _body)] = fake_graph.texts()
        assert to == "56911112222"

        login = await client.post("/api/auth/login", json={"password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        listed = (await client.get("/api/leads")).json()
        assert "José Ñuñez" in [lead["name"] for lead in listed["data"]]

        detailed = (await client.get("/health/detailed")).json()
        store = detailed["store"]
        assert store["backend"] == "postgresql" and store["reachable"] is True
        assert store["location"] == "postgresql://postgres@127.0.0.1:5432/test"
        assert store["schemaVersion"] == len(MIGRATIONS)
        assert store["databaseSizeBytes"] > 0 and "walBytes" not in store
        assert detailed["status"] != "failing", detailed["reasons"]
        assert not [r for r in detailed["reasons"] if "base de datos" in r]
        health_text = (await client.get("/health/detailed")).text

        # The server ends the suite's connection: a call may fail (503), then the suite
        # reconnects by itself and the chat works again, without a restart.
        assert terminate_suite_connection(pg_url) == 1
        statuses = []
        with trio.fail_after(30):
            while True:
                r = await chat(client, "Me llamo Ana", "web-2")
                statuses.append(r.status_code)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                assert "Intenta de nuevo" in r.json()["error"] and r.headers["Retry-After"]
                await trio.sleep(0.2)
        work = (await client.get("/health/detailed")).json()["work"]["store"]
        assert work["reconnects"] >= 1 and work["connected"] is True
        assert "AdminShutdown" in work["last_error"]
        raw = whatsapp_text("56911112222", "wamid.pg-2", "y la instalación?", ts=1764230100)
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        with trio.fail_after(30):
            while len(fake_graph.texts()) < 2:
                await trio.sleep(0.05)
        actors = (await client.get("/health/detailed")).json()["actors"]
        assert {a["state"] for a in actors} == {"running"}
    assert await suite.stop() == 0
    assert "store: reconnected to postgresql://postgres@127.0.0.1:5432/test" in every_log(suite)
    for text in (every_log(suite), health_text):
        assert PASSWORD not in text and WHATSAPP_TOKEN not in text


async def test_backup_and_restore_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    require_system("pg_dump", "postgresql-client")
    suite = SuiteProcess(tmp_path, DATABASE_URL=pg_url)
    await suite.start()
    async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
        assert (await chat(client, "Hola", "antes")).status_code == 200
        taken = await trio.to_thread.run_sync(cli, suite, "backup")
        assert taken.returncode == 0, taken.stderr
        assert "pg_restore --list ok" in taken.stdout
        [backup] = list((tmp_path / "backups").glob("leads-*.dump"))
        assert (await chat(client, "Hola", "despues")).status_code == 200
    assert await suite.stop() == 0

    restored = await trio.to_thread.run_sync(cli, suite, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "the replaced database is kept as" in restored.stdout
    assert PASSWORD not in taken.stdout + taken.stderr + restored.stdout + restored.stderr

    again = SuiteProcess(tmp_path, DATABASE_URL=pg_url)
    again.port, again.url, again.env["PORT"] = suite.port, suite.url, suite.env["PORT"]
    await again.start()
    async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
        assert (await client.get("/api/chat/session/antes")).status_code == 200
        assert (await client.get("/api/chat/session/despues")).status_code == 404
        assert (await chat(client, "Sigo aquí", "antes")).status_code == 200  # ids go on
    assert await again.stop() == 0


WEB_CHATS = 60
WHATSAPP_USERS = 40


async def _burst(
    url: str, deliveries: list[bytes], chats: list[tuple[str, str]], kill: SuiteProcess | None
) -> tuple[set[bytes], list[tuple[str, str]]]:
    """Webhooks and web chats at once; with `kill`, SIGKILL once half were answered. What
    was acknowledged: the webhook bodies, and the (session, text) of each 200 chat."""
    acknowledged: set[bytes] = set()
    answered: list[tuple[str, str]] = []
    limiter = trio.CapacityLimiter(16)
    total = len(deliveries) + len(chats)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        def maybe_kill() -> None:
            if kill is not None and len(acknowledged) + len(answered) >= total // 2:
                if kill.process is not None and kill.process.returncode is None:
                    kill.send_signal(signal.SIGKILL)

        async def deliver(raw: bytes) -> None:
            async with limiter:
                try:
                    if (await post_signed(client, "whatsapp", raw)).status_code == 200:
                        acknowledged.add(raw)
                except httpx.TransportError:
                    pass  # killed: Meta delivers it again
                maybe_kill()

        async def talk(session: str, text: str) -> None:
            async with limiter:
                try:
                    if (await chat(client, text, session)).status_code == 200:
                        answered.append((session, text))
                except httpx.TransportError:
                    pass
                maybe_kill()

        async with trio.open_nursery() as nursery:
            jobs = [(deliver, (raw,)) for raw in deliveries] + [(talk, c) for c in chats]
            random.Random(15).shuffle(jobs)
            for job, args in jobs:
                nursery.start_soon(job, *args)
                await trio.sleep(0.003)
    return acknowledged, answered


async def test_kill_9_mid_burst_on_postgresql_loses_and_doubles_nothing(
    tmp_path: Path, pg_url: str, fake_graph: FakeGraph
) -> None:
    env = {**channel_env(fake_graph.url), "DATABASE_URL": pg_url, "DEBOUNCE_SECONDS": "0.2"}
    deliveries = [
        whatsapp_text(f"569{20_000_000 + u}", f"wamid.k{u}", f"hola {u}", ts=1764230000 + u)
        for u in range(WHATSAPP_USERS)
    ]
    chats = [(f"web-k{n}", f"hola, soy visitante {n}") for n in range(WEB_CHATS)]
    first = SuiteProcess(tmp_path, **env)
    await first.start()
    acknowledged, answered = await _burst(first.url, deliveries, chats, kill=first)
    assert await first.wait() == -signal.SIGKILL
    assert acknowledged and answered
    print(f"\nbefore kill -9: {len(acknowledged)} webhooks acknowledged, {len(answered)} chats 200")

    second = SuiteProcess(tmp_path, **env)
    second.port, second.url, second.env["PORT"] = first.port, first.url, first.env["PORT"]
    await second.start()
    redelivered, _ = await _burst(second.url, deliveries, [], kill=None)  # Meta redelivers all
    assert redelivered == set(deliveries)
    with trio.fail_after(90):
        while pg_rows(
            pg_url,
            "SELECT (SELECT count(*) FROM messages WHERE status = 'pending')"
            " + (SELECT count(*) FROM outbox WHERE status = 'pending')",
        ) != [(0,)]:
            await trio.sleep(0.2)
    await trio.sleep(1.0)  # nothing more leaves once the outbox is empty
    assert await second.stop() == 0

    # Every WhatsApp message stored once and answered; each reply sent once (a send cut
    # by the kill mid-request may go twice: at most the notifier's sends in flight).
    users = pg_rows(pg_url, "SELECT external_id, status FROM messages WHERE channel = 'whatsapp'")
    users = [u for u in users if u[0] is not None]
    assert sorted(mid for mid, _ in users) == sorted(f"wamid.k{u}" for u in range(WHATSAPP_USERS))
    assert {status for _, status in users} == {"handled"}
    sent = Counter(to for to, _body in fake_graph.texts())
    assert set(sent) == {f"569{20_000_000 + u}" for u in range(WHATSAPP_USERS)}
    assert sum(n - 1 for n in sent.values()) <= 8
    replies = pg_rows(
        pg_url, "SELECT count(*) FROM messages WHERE channel = 'whatsapp' AND role = 'assistant'"
    )
    assert replies == [(WHATSAPP_USERS,)]  # one reply per person (one message each)
    assert pg_rows(pg_url, "SELECT DISTINCT status FROM outbox") == [("sent",)]
    texts = pg_rows(pg_url, "SELECT count(*) FROM outbox WHERE kind = 'text'")
    assert texts == [(WHATSAPP_USERS,)]
    assert (
        pg_rows(
            pg_url,
            "SELECT reply_id, part FROM outbox WHERE kind = 'text' GROUP BY reply_id, part"
            " HAVING count(*) > 1",
        )
        == []
    )
    # Every chat answered 200 has its message and exactly one reply stored.
    for session, text in answered:
        rows = pg_rows(
            pg_url,
            "SELECT m.role, m.content FROM messages m JOIN conversations c"
            f" ON c.id = m.conversation_id WHERE c.external_key = '{session}' ORDER BY m.id",
        )
        assert [role for role, _ in rows] == ["user", "assistant"], (session, rows)
        assert rows[0][1] == text
    # No reply row twice for one message, across both processes.
    doubled = pg_rows(
        pg_url,
        "SELECT reply_to FROM messages WHERE reply_to IS NOT NULL GROUP BY reply_to"
        " HAVING count(*) > 1",
    )
    assert doubled == []
    assert PASSWORD not in every_log(second)
