"""The dashboard's search through the index (issue 17): on a generated set of leads and
conversations it finds exactly what a direct, accent- and case-blind scan of the rows finds
(the lead's fields and what people wrote), in its order, on both backends; the index
follows every write; a common word stops counting at the cap; fewer than three characters
are refused; a store migrated with data gets its index."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from store import conversations, lead_reports, leads, sandbox, search
from store.db import Database, open_database
from store.lead_reports import LeadFilter
from store.migrations import LEAD_SEARCH, MIGRATIONS
from store.text import fold

NAMES = ["Marta", "Pía", "José", "Ana", "Luis", "Camila", "Diego", "Valentina", "Tomás"]
SURNAMES = ["Díaz", "Muñoz", "Rojas", "Soto", "Pérez", "Núñez", "Vera"]
SERVICES = ["Instalación", "Mantención", "Reparación", "Limpieza de ductos"]
COMUNAS = ["Ñuñoa", "Providencia", "Las Condes", "Maipú", "La Florida"]
ANY = LeadFilter()
FIELDS = ("name", "phone", "email", "service", "area", "notes")
QUERIES = [
    "valentina nunez", "NÚÑEZ", "muñoz", "nunoa", "Ñuñoa", "maipu", "instalacion",
    "ductos", "56912", "+569", "codigo 00012", "código 0001", "caldera", "ejemplo.cl",
    "urgente", "zzz-nada", "Pía Rojas", "o d", "la flor",
]  # fmt: skip


def _message(db: Database, conversation_id: int, role: str, text: str) -> None:
    db.execute(
        "INSERT INTO messages (conversation_id, channel, role, content, created_at)"
        " VALUES (?, 'web', ?, ?, '2025-01-01T00:00:00.000Z')",
        (conversation_id, role, text),
    )


def generate(db: Database, rng: random.Random, count: int) -> list[int]:
    """People with leads of every kind (some fields empty, some in the sandbox) and
    conversations where they wrote codes, comunas and services."""
    ids = []
    for i in range(count):
        key = f"sim:{i}" if rng.random() < 0.1 else f"person-{i}"
        conv = conversations.open_conversation(db, "whatsapp", key)
        _message(db, conv.id, "user", f"Hola, necesito {rng.choice(SERVICES).lower()}")
        _message(db, conv.id, "assistant", "¡Claro! ¿En qué comuna estás? Caldera o ductos")
        _message(db, conv.id, "user", f"En {rng.choice(COMUNAS)}, código {i:05d}")
        lead = leads.create(db, conv.id, "whatsapp", key)
        values = [
            f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}" if rng.random() < 0.9 else None,
            f"+569{rng.randint(10_000_000, 99_999_999)}" if rng.random() < 0.8 else None,
            f"p{i}@ejemplo.cl" if rng.random() < 0.3 else None,
            rng.choice(SERVICES) if rng.random() < 0.8 else None,
            rng.choice(COMUNAS) if rng.random() < 0.8 else None,
            "urgente, llamar" if rng.random() < 0.1 else None,
        ]
        db.execute(
            f"UPDATE leads SET {', '.join(f'{f} = ?' for f in FIELDS)},"
            " classification = ? WHERE id = ?",
            [*values, rng.choice(("frio", "tibio", "caliente")), lead.id],
        )
        ids.append(lead.id)
    return ids


def _code(db: Database, lead_id: int) -> str:
    """The code a lead's person wrote (see generate)."""
    content = db.scalar(
        "SELECT m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE c.lead_id = ? AND m.content LIKE '%código%'",
        (lead_id,),
    )
    return "código " + str(content).rsplit(" ", 1)[1]


def direct(db: Database, text: str, f: LeadFilter = ANY) -> list[int]:
    """The leads a scan of every row finds, in the search's order: own fields (newest lead
    first), then what people wrote (newest message first)."""
    wanted = fold(" ".join(text.split()))
    real = {
        int(r["id"]): r
        for r in db.all("SELECT * FROM leads WHERE sandbox = 0")
        if f.classification in (None, r["classification"])
    }
    by_fields = sorted(
        (i for i, r in real.items() if any(wanted in fold(r[c] or "") for c in FIELDS)),
        reverse=True,
    )
    by_messages: list[int] = []
    for lead_id, content in db.rows(
        "SELECT c.lead_id, m.content FROM messages m JOIN conversations c"
        " ON c.id = m.conversation_id WHERE m.role = 'user'"
        " AND substr(c.external_key, 1, 4) <> 'sim:' ORDER BY m.id DESC"
    ):
        if lead_id in real and wanted in fold(content) and lead_id not in by_fields:
            if lead_id not in by_messages:
                by_messages.append(lead_id)
    return by_fields + by_messages


def every_match(db: Database, text: str, f: LeadFilter = ANY) -> list[int]:
    """Every page of the search, one after the other."""
    found: list[int] = []
    page = lead_reports.search(db, LeadFilter(**{**f.__dict__, "text": text}), 37, 0)
    total = page.total
    while page.rows:
        found += [r["id"] for r in page.rows]
        page = lead_reports.search(db, LeadFilter(**{**f.__dict__, "text": text}), 37, len(found))
    assert total == len(found) and page.exact, text
    return found


def test_search_finds_what_a_direct_scan_finds_in_its_order(db: Database) -> None:
    generate(db, random.Random(17), 400)
    hits = 0
    for text in QUERIES:
        expected = direct(db, text)
        assert every_match(db, text) == expected, text
        hits += bool(expected)
    assert hits == len(QUERIES) - 2  # all but these two find something:
    assert direct(db, "zzz-nada") == [] and direct(db, "caldera") == []  # only the assistant
    hot = LeadFilter(classification="caliente")
    assert every_match(db, "nunoa", hot) == direct(db, "nunoa", hot)


def test_the_index_follows_every_write(db: Database) -> None:
    rng = random.Random(3)
    ids = [i for i in generate(db, rng, 60) if lead_reports.exists(db, i)]  # real ones
    codes = [_code(db, ids[2]), _code(db, ids[3])]
    db.execute("UPDATE leads SET name = 'Zoila Quintanilla' WHERE id = ?", (ids[0],))
    lead_reports.update(db, ids[1], notes="quiere quintanilla de regalo")
    lead_reports.delete(db, ids[2])
    leads.merge(db, ids[3], into=ids[4], actor="test")
    sandbox.clear(db)
    conv = conversations.open_conversation(db, "web", "late")
    _message(db, conv.id, "user", "me llamo Quintanilla también")
    leads.create(db, conv.id, "web", "late")
    for text in ("quintanilla", *QUERIES[:8], *codes):
        assert every_match(db, text) == direct(db, text), text
    assert every_match(db, codes[0]) == []  # deleted with its transcript
    assert every_match(db, codes[1]) == [ids[4]]  # the merged-into lead has it now


def test_a_common_word_stops_counting_at_the_cap(db: Database) -> None:
    with db.transaction():
        for i in range(search.COUNT_CAP + 60):
            db.execute(
                "INSERT INTO leads (channel, name, area, created_at, updated_at,"
                " last_interaction_at) VALUES ('web', ?, 'Ñuñoa', 'x', 'x', 'x')",
                (f"Persona {i}",),
            )
    first = lead_reports.search(db, LeadFilter(text="nunoa"), 50)
    assert (first.total, first.exact) == (search.COUNT_CAP, False)
    newest = int(db.scalar("SELECT max(id) FROM leads"))
    assert [r["id"] for r in first.rows] == list(range(newest, newest - 50, -1))
    last = lead_reports.search(db, LeadFilter(text="nunoa"), 50, search.COUNT_CAP)
    assert len(last.rows) == 50 and last.total == search.COUNT_CAP + 50 and not last.exact
    end = lead_reports.search(db, LeadFilter(text="nunoa"), 50, search.COUNT_CAP + 50)
    assert len(end.rows) == 10 and end.total == search.COUNT_CAP + 60 and end.exact


@pytest.mark.parametrize("text", ["", "a", "ño", "  x  "])
def test_fewer_than_three_characters_are_refused(db: Database, text: str) -> None:
    with pytest.raises(search.SearchTooShort, match="al menos 3 caracteres"):
        lead_reports.search(db, LeadFilter(text=text or " "))


def test_the_export_reads_every_match(db: Database) -> None:
    generate(db, random.Random(8), 120)
    for text in ("nunoa", "código 0004", "ductos"):
        sql, params = lead_reports.export_rows(db.backend, LeadFilter(text=text))
        assert sorted(r["id"] for r in db.all(sql, params)) == sorted(direct(db, text)), text


def test_a_store_migrated_with_data_gets_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "leads.db"
    monkeypatch.setattr("store.sqlite.MIGRATIONS", MIGRATIONS[: MIGRATIONS.index(LEAD_SEARCH)])
    db = open_database(path)
    generate(db, random.Random(5), 80)
    db.close()
    monkeypatch.undo()
    migrated = open_database(path)
    for text in QUERIES:
        assert every_match(migrated, text) == direct(migrated, text), text
    migrated.close()
