"""The owner's reads leave the event loop alone (issue 17): lists, search, statistics and a
lead's detail run on read connections of their own in worker threads, and the CSV is
written by a process of its own and streamed; an owner who leaves mid-export ends it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import psutil
import trio

from sales.settings import Settings
from store.db import Database
from tests.conftest import running_suite, wait_for
from tests.ingress.test_admin import admin_settings, login

LEADS = 4000


def add_leads(db: Database, count: int) -> None:
    with db.transaction():
        for i in range(count):
            db.execute(
                "INSERT INTO leads (channel, name, phone, area, notes, score, reasons,"
                " classification, created_at, updated_at, last_interaction_at)"
                " VALUES ('whatsapp', ?, ?, 'Ñuñoa', ?, ?, '[\"pidió precio\", \"comuna\"]',"
                " 'tibio', '2025-05-01T10:00:00.000Z', '2025-05-01T10:00:00.000Z',"
                " '2025-05-01T10:00:00.000Z')",
                (f"Persona {i:05d}", f"+5691{i:07d}", "=1+1" if i == 7 else None, i % 50 - 5),
            )


def exporters() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "store.lead_csv" in p.cmdline()]


async def test_reads_go_through_their_own_connections(tmp_path: Path) -> None:
    """A write the suite's connection has not committed is invisible to the owner's reads,
    and does not hold them up (WAL: readers beside the writer)."""
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        await login(client)
        assert suite.db is not None
        add_leads(suite.db, 3)
        suite.db.execute("BEGIN IMMEDIATE")
        try:
            suite.db.execute("UPDATE leads SET name = 'Sin Confirmar' WHERE name = 'Persona 00001'")
            with trio.fail_after(10):
                listed = (await client.get("/api/leads")).json()
                found = (await client.get("/api/leads", params={"q": "confirmar"})).json()
                stats = (await client.get("/api/leads/estadisticas")).json()["data"]
            assert listed["total"] == 3 and "Persona 00001" in {r["name"] for r in listed["data"]}
            assert found["total"] == 0 and stats["total"] == 3
        finally:
            suite.db.execute("COMMIT")
        found = (await client.get("/api/leads", params={"q": "confirmar"})).json()
        assert [r["name"] for r in found["data"]] == ["Sin Confirmar"]


async def test_the_csv_streams_from_a_process_of_its_own(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        await login(client)
        assert suite.db is not None
        add_leads(suite.db, LEADS)
        async with client.stream("GET", "/api/leads/export.csv") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            chunks = r.aiter_bytes()
            body = await chunks.__anext__()
            assert len(exporters()) == 1  # writing while the suite goes on answering:
            assert (await client.get("/health")).status_code == 200
            body += b"".join([c async for c in chunks])
        await wait_for(lambda: not exporters())
        text = body.decode("utf-8")
        assert text.startswith("\ufeffid,nombre,telefono")
        rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
        assert len(rows) == LEADS
        assert [int(r["puntaje"].lstrip("'")) for r in rows] == sorted(
            (int(r["puntaje"].lstrip("'")) for r in rows), reverse=True
        )  # best first, as the list
        assert {r["comuna"] for r in rows} == {"Ñuñoa"}
        assert rows[0]["razones"] == "pidió precio; comuna" and rows[0]["contactado"] == "no"
        assert next(r for r in rows if r["nombre"] == "Persona 00007")["notas"] == "'=1+1"
        assert {r["puntaje"] for r in rows if r["puntaje"].startswith("'")} == {
            f"'-{n}" for n in range(1, 6)
        }  # a negative score is not a formula either
        searched = await client.get("/api/leads/export.csv", params={"q": "persona 0001"})
        assert len(searched.text.strip().splitlines()) == 1 + 10  # header and 00010-00019


async def test_an_owner_who_leaves_mid_export_ends_it(tmp_path: Path) -> None:
    async with running_suite(admin_settings(tmp_path)) as (suite, client):
        await login(client)
        assert suite.db is not None
        add_leads(suite.db, LEADS * 5)
        async with client.stream("GET", "/api/leads/export.csv") as r:
            await r.aiter_bytes().__anext__()
            assert len(exporters()) == 1
        await wait_for(lambda: not exporters(), seconds=20)
        # the next export is not held up by the one that was cut
        with trio.fail_after(30):
            again = await client.get("/api/leads/export.csv")
        assert again.status_code == 200 and again.text.count("\n") == LEADS * 5 + 1


async def test_an_export_the_store_cannot_read_is_a_503(tmp_path: Path) -> None:
    settings: Settings = admin_settings(tmp_path)
    async with running_suite(settings) as (_suite, client):
        await login(client)
        settings.database_path.rename(settings.database_path.with_name("gone.db"))
        r = await client.get("/api/leads/export.csv")
        assert r.status_code == 503 and "reintenta" in r.json()["error"]
        assert not exporters()
