"""What one turn costs on PostgreSQL, in round-trips and loop time: the suite in-process on a
fresh schema (offline brain, WhatsApp through the fake Graph API), each statement and commit
of its own connection counted and timed on the trio thread.

    PYTHONPATH=. python bench/pg_turn.py [TURNS] [--sqlite]
    (TEST_DATABASE_URL, or postgres@127.0.0.1/test; --sqlite: the same turns on SQLite)

Prints the statements and commits of a first and a second web turn and of a WhatsApp turn
(everything the suite ran on its connection between the request and the turn's end: the
ingress, the conversation actor, the classifier, the notifier's send), and the time they
held the event loop; then a SELECT 1 and an INSERT + commit on their own."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sales.business import load_business
from sales.settings import load_settings
from store.pg_loop import LoopDatabase
from store.sqlite import SqliteDatabase
from supervisor.startup import load_rules
from supervisor.suite import Suite
from tests.fakes.graph_server import FakeGraph, serve_graph
from tests.meta import channel_env, post_signed, whatsapp_text

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
QUIET = 0.4  # seconds for a turn's background work (classifier, notifier) to end


class Counted:
    """The suite's connection (psycopg's, or apsw's with --sqlite), its statements and
    commits counted and timed."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.statements = 0
        self.transactions = 0
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._connection.execute(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            verb = str(args[0]).split(" ", 1)[0].upper()
            if verb == "COMMIT":  # SQLite's transactions are statements of their own
                self.transactions += 1
            elif verb not in ("BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE"):
                self.statements += 1

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        outer = self._connection.transaction(*args, **kwargs)
        counted = self

        class Timed:
            def __enter__(self) -> Any:
                started = time.perf_counter()
                entered = outer.__enter__()  # BEGIN (or SAVEPOINT)
                counted.seconds += time.perf_counter() - started
                return entered

            def __exit__(self, *exc: Any) -> Any:
                started = time.perf_counter()
                try:
                    return outer.__exit__(*exc)  # COMMIT (or ROLLBACK)
                finally:
                    counted.transactions += 1
                    counted.seconds += time.perf_counter() - started

        return Timed()

    def reset(self) -> tuple[int, int, float]:
        figures = (self.statements, self.transactions, self.seconds)
        self.statements, self.transactions, self.seconds = 0, 0, 0.0
        return figures


async def measured(
    counted: Counted, turn: Callable[[], Any], done: Callable[[], bool]
) -> tuple[int, int, float]:
    await trio.sleep(QUIET)
    counted.reset()
    await turn()
    with trio.fail_after(30):
        while not done():  # noqa: ASYNC110 (the fake's sends are a plain list)
            await trio.sleep(0.01)
    await trio.sleep(QUIET)
    return counted.reset()


def report(name: str, runs: list[tuple[int, int, float]], idle: tuple[int, int, float]) -> None:
    statements = statistics.median(r[0] for r in runs) - idle[0]
    commits = statistics.median(r[1] for r in runs) - idle[1]
    ms = statistics.median(r[2] for r in runs) * 1000 - idle[2] * 1000
    print(
        f"{name:<22} {statements:>5.0f} statements {commits:>3.0f} transactions"
        f"  {ms:6.2f} ms of loop time (median of {len(runs)})"
    )


async def main(turns: int, sqlite: bool) -> None:
    if sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            await run(None, Path(tmp), turns)
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(BASE, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{BASE}{'&' if '?' in BASE else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await run(url, Path(tmp), turns)
    finally:
        with psycopg.connect(BASE, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


async def run(url: str | None, tmp: Path, turns: int) -> None:
    async with trio.open_nursery() as nursery:
        graph = await serve_graph(nursery, FakeGraph())
        env = {
            **channel_env(graph.url),
            **({"DATABASE_URL": url} if url else {}),
            "HOST": "127.0.0.1",
            "PORT": "0",
            "DATABASE_PATH": str(tmp / "db" / "leads.db"),
            "LOG_DIR": str(tmp / "logs"),
            "BACKUP_DIR": str(tmp / "backups"),
            "BUSINESS_CONFIG": str(ROOT / "config" / "business.json"),
            "SYSTEM_PROMPT_PATH": str(ROOT / "prompts" / "systemPrompt.txt"),
            "DAILY_SUMMARY_AT": "off",
            "LOG_LEVEL": "WARNING",
        }
        settings = load_settings(env, env_file=tmp / "no.env")
        business = load_business(settings.business_config)
        suite: Suite = await nursery.start(
            Suite(settings, business, load_rules(settings.system_prompt_path)).run
        )
        db = suite.db
        assert isinstance(db, LoopDatabase | SqliteDatabase)
        counted = Counted(db.connection)
        db.connection = counted  # type: ignore[assignment]
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            idle = await measured(counted, trio.lowlevel.checkpoint, lambda: True)
            first, second, whatsapp = [], [], []
            for n in range(turns):

                async def chat(text: str, n: int = n) -> None:
                    r = await client.post("/api/chat", json={"message": text, "sessionId": f"b{n}"})
                    assert r.status_code == 200, r.text

                first.append(await measured(counted, lambda: chat("Hola"), lambda: True))
                second.append(
                    await measured(
                        counted, lambda: chat("Soy Ana, 987654321, instalación"), lambda: True
                    )
                )
                sent = len(graph.texts())

                async def webhook(n: int = n) -> None:
                    raw = whatsapp_text(f"569{30_000_000 + n}", f"wamid.b{n}", "hola, ¿precios?")
                    assert (await post_signed(client, "whatsapp", raw)).status_code == 200

                whatsapp.append(
                    await measured(counted, webhook, lambda s=sent: len(graph.texts()) > s)  # type: ignore[misc]
                )
        print(
            f"idle window of {QUIET:.1f} s: {idle[0]} statements, {idle[1]} transactions"
            " (subtracted below)"
        )
        report("web turn, first", first, idle)
        report("web turn, second", second, idle)
        report("WhatsApp turn", whatsapp, idle)
        suite.shutdown()
        nursery.cancel_scope.cancel()  # the fake Graph API serves until cancelled
    if url:
        micro(url)


def micro(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # A real table (a temporary one's commit writes no WAL, so it would not wait on fsync).
        conn.execute("CREATE TABLE bench_t (id BIGINT GENERATED ALWAYS AS IDENTITY, v TEXT)")
        steps: tuple[tuple[str, Callable[[], object]], ...] = (
            ("SELECT 1", lambda: conn.execute("SELECT 1").fetchone()),
            ("INSERT + commit", lambda: _insert(conn)),
        )
        for name, step in steps:
            times = []
            for _ in range(2000):
                started = time.perf_counter()
                step()
                times.append(time.perf_counter() - started)
            print(f"{name:<22} median {statistics.median(times) * 1e6:6.0f} µs")


def _insert(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO bench_t (v) VALUES (%s)", ("x",))


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    trio.run(main, int(numbers[0]) if numbers else 10, "--sqlite" in sys.argv)
