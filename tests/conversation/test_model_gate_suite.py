"""A model server that answers 429 with Retry-After: visitors in a burst wait for it and are
answered by the model, and /health/detailed shows the gate."""

from __future__ import annotations

from pathlib import Path

import trio

from actors.conversation.model_gate import INITIAL_LIMIT
from actors.conversation.replies import fallback_text
from tests.conftest import KNOWN_SECRET, make_settings, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, Stall, Status, lead_json

VISITORS = 20
RETRY_AFTER = 1.0
MODEL_SECONDS = 0.2


async def test_a_burst_waits_out_retry_after_and_is_answered_by_the_model(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    # The first round of calls (the gate's starting limit) is told to come back in 1 s.
    fake_llm.script = [Status(429, "rate limited", RETRY_AFTER)] * INITIAL_LIMIT
    fake_llm.default = Stall(MODEL_SECONDS, Answer(lead_json("¡Hola! ¿En qué comuna estás?")))
    settings = make_settings(tmp_path, OPENAI_API_KEY=KNOWN_SECRET, OPENAI_BASE_URL=fake_llm.url)
    replies: dict[int, str] = {}
    async with running_suite(settings) as (suite, client):

        async def visitor(n: int) -> None:
            r = await client.post("/api/chat", json={"message": "hola", "sessionId": f"b{n}"})
            assert r.status_code == 200
            replies[n] = r.json()["data"]["respuesta"]

        async with trio.open_nursery() as nursery:
            for n in range(VISITORS):
                nursery.start_soon(visitor, n)
        detailed = (await client.get("/health/detailed")).json()

    assert len(replies) == VISITORS
    assert fallback_text(suite.business) not in replies.values()
    assert set(replies.values()) == {"¡Hola! ¿En qué comuna estás?"}
    # No call went out while the server had asked to wait.
    first_refusal = min(at for at, status in fake_llm.answered if status == 429)
    assert all(at >= first_refusal + RETRY_AFTER for at in fake_llm.arrived[INITIAL_LIMIT:])
    llm = detailed["llm"]
    assert (llm["errors"], llm["waitedOut"], llm["retries"]) == (0, 0, INITIAL_LIMIT)
    gate = llm["gate"]
    assert 1 <= gate["limit"] <= gate["ceiling"] == settings.llm_max_concurrency
    # One cut for the round of 429s (another only if a loaded machine made answers slow).
    assert gate["backoffs"] >= 1 and gate["lastBackoff"]["reason"] in ("429", "slow")
    assert (gate["inFlight"], gate["waiting"]) == (0, 0)
    assert detailed["work"]["llm"]["gate"]["limit"] == gate["limit"]
