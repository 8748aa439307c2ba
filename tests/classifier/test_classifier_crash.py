"""The classifier crashing between a stored reply and its classification: the web client
still gets its reply, and the restarted actor classifies the turn (once)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings, running_suite, wait_for


async def test_a_crash_before_classifying_loses_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, IA_FAILPOINTS="classifier.turn=1")
    async with running_suite(settings) as (suite, client):
        r = await client.post(
            "/api/chat",
            json={"message": "Soy Ana, 987654321, quiero agendar una mantención", "sessionId": "c"},
        )
        assert r.status_code == 200
        assert r.json()["data"]["respuesta"]  # the stored reply, not an error
        assert suite.db is not None
        db = suite.db
        await wait_for(lambda: db.scalar("SELECT classification FROM leads") == "caliente")
        classifier = next(a for a in suite.actors() if a.name == "classifier")
        assert classifier.restarts == 1 and classifier.last_error is not None
        assert classifier.last_error.type == "InjectedFault"
        assert db.scalar("SELECT count(*) FROM lead_classifications") == 1
        unclassified = (
            "SELECT count(*) FROM messages WHERE role = 'assistant' AND classified_at IS NULL"
        )
        assert db.scalar(unclassified) == 0
        r = await client.post("/api/chat", json={"message": "gracias", "sessionId": "c"})
        assert r.json()["data"]["lead"]["estado"] == "caliente"
