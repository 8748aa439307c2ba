"""`ia-comercial import-store`: a SQLite store of ours moved into an empty PostgreSQL store,
every table equal, ids kept, sequences moved past them; refused into a store that is not
empty, nothing written by --dry-run; an old schema version migrated on a copy (the file
itself untouched); and the suite on PostgreSQL goes on with the imported conversations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import httpx
import psycopg
import trio

from store import admin_sessions, backups, conversations, messages, prompts, unsupported
from store.backends import PostgresStore
from store.backups import BackupResult
from store.db import open_database, utc_now
from store.migrations import MIGRATIONS, SEARCH_TABLES
from store.unsupported import UnsupportedEvent
from tests.conftest import make_settings, postgres_schema, running_suite
from tests.e2e.process import SuiteProcess
from tests.fakes.graph_server import FakeGraph
from tests.meta import channel_env, post_signed, whatsapp_text

PASSWORD = "pw-KNOWN-import-store"


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "DATABASE_URL"))}
    env.update(DATABASE_PATH=str(tmp_path / "unused" / "leads.db"), **extra)
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = [
            str(n)
            for (n,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            n: sorted(tuple(r) for r in db.execute(f'SELECT * FROM "{n}"'))
            for n in names
            if not n.startswith(SEARCH_TABLES)  # SQLite's own index (store/search.py)
        }
    finally:
        db.close()


def sqlite_columns(path: Path) -> dict[str, list[str]]:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {
            str(n): [str(r[1]) for r in db.execute(f'PRAGMA table_info("{n}")')]
            for (n,) in names
            if not str(n).startswith(SEARCH_TABLES)
        }
    finally:
        db.close()


def postgres_tables(url: str, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows, its columns in SQLite's order (the baseline may order them
    otherwise); the same set of columns on both sides."""
    with psycopg.connect(url) as conn:
        out = {}
        for name, wanted in columns.items():
            present = conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s",
                (name,),
            ).fetchall()
            assert sorted(str(c) for (c,) in present) == sorted(wanted), name
            listed = ", ".join(f'"{c}"' for c in wanted)
            out[name] = sorted(tuple(r) for r in conn.execute(f'SELECT {listed} FROM "{name}"'))
        return out


async def written_on_sqlite(tmp_path: Path, fake_graph: FakeGraph) -> Path:
    """A SQLite store written through the suite (web chats, WhatsApp) and the store API."""
    settings = make_settings(tmp_path, **channel_env(fake_graph.url))
    async with running_suite(settings) as (_suite, client):
        for session, text in (
            ("ana", "Hola, soy Ana Pérez, 987654321, quiero agendar una instalación"),
            ("luis", "¿Cuánto cuesta la mantención?"),
        ):
            assert (
                await client.post("/api/chat", json={"message": text, "sessionId": session})
            ).status_code == 200
        raw = whatsapp_text("56933334444", "wamid.imp-1", "hola, ¿precios?")
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        with trio.fail_after(30):
            while not fake_graph.texts():
                await trio.sleep(0.05)
        await trio.sleep(0.5)  # the read receipt and the classification
    db = open_database(settings.database_path)
    try:
        prompts.add(db, "Eres el asistente de prueba.", "importada")
        admin_sessions.create(db, "198.51.100.7")
        unsupported.record(
            db, UnsupportedEvent("whatsapp", "wamid.sticker", "sticker", "sin texto")
        )
        backups.record(db, BackupResult(None, 0, 5, False, "probando", utc_now()))
    finally:
        db.close()
    return settings.database_path


async def test_every_table_reads_back_equal_and_the_suite_goes_on(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    source = await written_on_sqlite(tmp_path, fake_graph)
    before = sqlite_tables(source)
    columns = sqlite_columns(source)
    filled = [name for name, rows in before.items() if rows]
    assert {"leads", "conversations", "messages", "outbox", "prompt_versions"} <= set(filled)
    with postgres_schema() as url:
        secret_url = url.replace("://postgres@", f"://postgres:{PASSWORD}@")
        dry = cli(tmp_path, "import-store", str(source), "--dry-run", DATABASE_URL=secret_url)
        assert dry.returncode == 0, dry.stderr
        assert "dry run, nothing written" in dry.stdout
        assert f"messages: {len(before['messages'])} rows" in dry.stdout
        assert postgres_tables(url, {"messages": columns["messages"]}) == {"messages": []}

        done = cli(tmp_path, "import-store", str(source), DATABASE_URL=secret_url)
        assert done.returncode == 0, done.stderr
        assert postgres_tables(url, columns) == before
        assert sqlite_tables(source) == before  # the source is left as it was

        again = cli(tmp_path, "import-store", str(source), DATABASE_URL=secret_url)
        assert again.returncode == 2
        assert "is not empty: " in again.stderr and "nothing was written" in again.stderr
        for r in (dry, done, again):
            assert PASSWORD not in r.stdout + r.stderr and "Traceback" not in r.stderr

        # New rows get new ids: the sequences were moved past the imported ones.
        with psycopg.connect(url, autocommit=True) as conn:
            top = conn.execute("SELECT max(id) FROM messages").fetchone()
        suite = SuiteProcess(tmp_path / "pg", DATABASE_URL=secret_url)
        (tmp_path / "pg").mkdir()
        await suite.start()
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            r = await client.post("/api/chat", json={"message": "Sigo aquí", "sessionId": "ana"})
            assert r.status_code == 200, r.text
            session = (await client.get("/api/chat/session/ana")).json()["data"]
            assert session["mensajes"] == 4 and session["lead"]["nombre"] == "Ana Pérez"
        assert await suite.stop() == 0
        with psycopg.connect(url, autocommit=True) as conn:
            new = conn.execute(
                "SELECT id FROM messages WHERE id > %s ORDER BY id", (top[0] if top else 0,)
            ).fetchall()
        assert len(new) == 2


def test_an_old_schema_is_migrated_on_a_copy_and_the_file_left_alone(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    db = apsw.Connection(str(old))
    db.execute(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    now = "2026-01-02T03:04:05.000Z"
    db.execute(
        "INSERT INTO leads (id, channel, name, created_at, updated_at, last_interaction_at)"
        " VALUES (7, 'web', 'Marta', ?, ?, ?)",
        (now, now, now),
    )
    db.execute(
        "INSERT INTO conversations (id, channel, external_key, lead_id, created_at, updated_at)"
        " VALUES (3, 'web', 'marta', 7, ?, ?)",
        (now, now),
    )
    db.execute(
        "INSERT INTO messages (id, conversation_id, channel, role, content, created_at)"
        " VALUES (11, 3, 'web', 'user', 'hola', ?)",
        (now,),
    )
    db.close()
    image = old.read_bytes()
    with postgres_schema() as url:
        done = cli(tmp_path, "import-store", str(old), DATABASE_URL=url)
        assert done.returncode == 0, done.stderr
        assert f"schema version 1, migrated to {len(MIGRATIONS)} on a copy" in done.stdout
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT id, name FROM leads").fetchall() == [(7, "Marta")]
            assert conn.execute("SELECT id, content FROM messages").fetchall() == [(11, "hola")]
        store = PostgresStore.open(url, pool_size=1)
        try:
            with store.connection() as pg:
                fresh = conversations.open_conversation(pg, "web", "nueva")
                reply = messages.add_inbound(pg, fresh.id, "web", "otra", attempts=1)
        finally:
            store.close()
    assert old.read_bytes() == image
    assert fresh.id == 4 and reply is not None and reply.id == 12  # past the imported ids


def test_what_is_not_our_store_is_refused_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 100)
    foreign = tmp_path / "foreign.db"
    db = apsw.Connection(str(foreign))
    db.execute("CREATE TABLE leads (id INTEGER PRIMARY KEY)")
    db.close()
    with postgres_schema() as url:
        for path, reason in (
            (tmp_path / "missing.db", "no such file"),
            (garbage, "not a readable SQLite database"),
            (foreign, "not a store of ia-comercial (for the original system's database"),
        ):
            r = cli(tmp_path, "import-store", str(path), DATABASE_URL=url)
            assert r.returncode == 2, r.stderr
            assert reason in r.stderr and "Traceback" not in r.stderr
    r = cli(tmp_path, "import-store", str(foreign))
    assert r.returncode == 2 and "set DATABASE_URL" in r.stderr
