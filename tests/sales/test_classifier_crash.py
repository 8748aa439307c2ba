"""Classification failing in the reply's transaction (before or amid its writes): the web client
still gets its reply (with the lead as it was), and the classifier actor's sweep classifies
the turn later (once)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, running_suite, wait_for


# Before its writes, and after the lead was changed: its transaction must undo those writes,
# or the sweep would classify the turn a second time (two lead_classifications rows).
@pytest.mark.parametrize("failpoint", ["classifier.turn", "classifier.applied"])
async def test_a_crash_before_classifying_loses_nothing(tmp_path: Path, failpoint: str) -> None:
    settings = make_settings(tmp_path, IA_FAILPOINTS=f"{failpoint}=1")
    async with running_suite(settings) as (suite, client):
        r = await client.post(
            "/api/chat",
            json={"message": "Soy Ana, 987654321, quiero agendar una mantención", "sessionId": "c"},
        )
        assert r.status_code == 200
        assert r.json()["data"]["respuesta"]  # the stored reply, not an error
        assert r.json()["data"]["lead"]["estado"] == "frio"  # the lead as it was
        assert suite.db is not None
        db = suite.db
        await wait_for(lambda: db.scalar("SELECT classification FROM leads") == "caliente")
        assert suite.classifier_stats.failed == 1  # the failpoint fired inside the turn
        actors = {a.name: a for a in suite.actors()}
        assert actors["conversation"].restarts == 0  # one turn's failure stops no lane
        assert db.scalar("SELECT count(*) FROM lead_classifications") == 1
        unclassified = (
            "SELECT count(*) FROM messages WHERE role = 'assistant' AND classified_at IS NULL"
        )
        assert db.scalar(unclassified) == 0
        # A new connection: the wait for the sweep (every 5 s) can outlast the server's
        # keep-alive (5 s), and a request sent as it closes the old one is cut.
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as again:
            r = await again.post("/api/chat", json={"message": "gracias", "sessionId": "c"})
        assert r.json()["data"]["lead"]["estado"] == "caliente"
