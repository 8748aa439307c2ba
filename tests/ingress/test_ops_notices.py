"""Someone is told: when /health/detailed turns degraded and when it recovers, operations get
one e-mail (a real SMTP server on 127.0.0.1) and one webhook (a real HTTP receiver), rate
limited, with the reasons and no secret; a restart neither repeats a notice nor loses one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import trio
from quart import Response, request
from quart_trio import QuartTrio

from actors.ingress.context import IngressContext
from actors.ingress.ops_watch import OpsWatch, due, event_of
from store.ops_notices import OpsState
from tests.conftest import KNOWN_SECRET, make_settings, running_suite, wait_for
from tests.fakes import serve_on_loopback
from tests.fakes.openai_server import Answer, FakeOpenAI, Status, lead_json
from tests.fakes.smtp_server import FakeSMTP

CHECK = "0.1"  # OPS_CHECK_INTERVAL: evaluated ten times a second in these tests
HOOK_KEY = "ops-KNOWN-hook-key-0123"
BROKEN = Status(401, f"Incorrect API key provided: {KNOWN_SECRET}")
HEALTHY = Answer(lead_json("Hola, ¿en qué te ayudo?"))


class Receiver:
    """A webhook receiver on 127.0.0.1: the JSON documents it got, and when (trio's clock)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.app = QuartTrio("ops-hook")

        @self.app.post(f"/hooks/{HOOK_KEY}")
        async def hook() -> Response:
            self.received.append((trio.current_time(), json.loads(await request.get_data())))
            return Response("ok")

    async def serve(self, nursery: trio.Nursery) -> str:
        return f"{await serve_on_loopback(nursery, self.app)}/hooks/{HOOK_KEY}"

    def events(self) -> list[str]:
        return [doc["event"] for _at, doc in self.received]


async def break_the_model(client: Any, fake_llm: FakeOpenAI) -> None:
    fake_llm.default = BROKEN
    for n in range(3):  # three failures in a row: /health/detailed says degraded
        r = await client.post("/api/chat", json={"message": "Hola", "sessionId": f"b{n}"})
        assert r.status_code == 200  # the polite fallback


async def test_degraded_and_recovered_are_told_once_each_rate_limited(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    receiver = Receiver()
    hook = await receiver.serve(nursery)
    smtp = FakeSMTP().start()
    fake_llm.default = HEALTHY
    settings = make_settings(
        tmp_path,
        **smtp.env(owner="dueno@cordilleraclima.cl"),
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        OPS_EMAIL="ops@cordilleraclima.cl",
        OPS_WEBHOOK_URL=hook,
        OPS_CHECK_INTERVAL=CHECK,
        OPS_NOTICE_MIN_INTERVAL="3",
    )
    try:
        async with running_suite(settings) as (suite, client):
            await trio.sleep(1)
            assert receiver.received == [] and smtp.messages == []  # healthy: nobody told
            await break_the_model(client, fake_llm)
            await wait_for(lambda: len(receiver.received) == 1 and len(smtp.messages) == 1)
            first_at, degraded = receiver.received[0]
            fake_llm.default = HEALTHY
            r = await client.post("/api/chat", json={"message": "Hola", "sessionId": "ok"})
            assert r.json()["data"]["respuesta"] == "Hola, ¿en qué te ayudo?"
            detailed = (await client.get("/health/detailed")).json()
            assert detailed["status"] == "ok", detailed["reasons"]
            await wait_for(lambda: len(receiver.received) == 2, seconds=15)
            second_at, recovered = receiver.received[1]
            await trio.sleep(1)
            assert suite.db is not None
            rows = suite.db.all(
                "SELECT event, transport, status FROM owner_notifications ORDER BY id"
            )
    finally:
        smtp.stop()
    # One notice of each change, by each way; the recovery waited for the rate limit.
    assert receiver.events() == ["ops_degraded", "ops_recovered"]
    assert second_at - first_at >= 3 - 0.2
    assert [(m["To"], m["Subject"]) for m in smtp.messages] == [
        ("ops@cordilleraclima.cl", m["Subject"]) for m in smtp.messages
    ]
    assert "degradado" in smtp.messages[0]["Subject"]
    assert "recuperado" in smtp.messages[1]["Subject"]
    assert rows == [
        {"event": e, "transport": t, "status": "sent"}
        for e in ("ops_degraded", "ops_recovered")
        for t in ("email", "webhook")
    ]
    assert (degraded["status"], degraded["previous"]) == ("degraded", "ok")
    assert any("el modelo falló" in reason for reason in degraded["reasons"])
    assert "el modelo falló" in degraded["text"] and degraded["worker"].endswith("/1")
    assert (recovered["status"], recovered["previous"], recovered["reasons"]) == (
        "ok",
        "degraded",
        [],
    )
    mail = str(smtp.messages[0].get_body(preferencelist=("plain",)).get_content())
    assert "el modelo falló" in mail
    everything = mail + json.dumps([doc for _at, doc in receiver.received])
    assert KNOWN_SECRET not in everything and HOOK_KEY not in everything


async def test_a_restart_neither_repeats_nor_loses_a_notice(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    receiver = Receiver()
    hook = await receiver.serve(nursery)
    # No OPS_* addresses: the owner's WEBHOOK_URL hears it.
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        OPENAI_MAX_RETRIES="1",
        WEBHOOK_URL=hook,
        OPS_CHECK_INTERVAL=CHECK,
        OPS_NOTICE_MIN_INTERVAL="0",
    )
    fake_llm.default = HEALTHY
    async with running_suite(settings) as (_suite, client):
        await break_the_model(client, fake_llm)
        await wait_for(lambda: receiver.events() == ["ops_degraded"])
    # A new process is healthy: the store says degraded was told, so recovery is told.
    fake_llm.default = HEALTHY
    async with running_suite(settings) as (_suite, client):
        await wait_for(lambda: receiver.events() == ["ops_degraded", "ops_recovered"])
    # And the next one has nothing to tell.
    async with running_suite(settings) as (suite, client):
        await trio.sleep(1.5)
        assert suite.db is not None
        assert suite.db.scalar("SELECT status FROM ops_notice_state") == "ok"
    assert receiver.events() == ["ops_degraded", "ops_recovered"]


def test_a_change_is_due_once_the_last_notice_is_old_enough() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    told = OpsState("degraded", ("x",), 1, (now - timedelta(seconds=60)).isoformat())
    assert due(None, "degraded", now, 900) and not due(None, "ok", now, 900)
    assert not due(told, "degraded", now, 0)  # nothing new
    assert not due(told, "ok", now, 900)  # too soon after the last
    assert due(told, "ok", now, 60) and due(told, "failing", now, 30)
    assert [event_of(s) for s in ("ok", "degraded", "failing")] == [
        "ops_recovered",
        "ops_degraded",
        "ops_failing",
    ]


async def test_a_notice_the_store_cannot_take_now_is_told_once_it_can(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    """The store's write lock held by another process: the notice cannot be recorded, the
    watcher says so and goes on (no crash), and tells it at the next check that can write."""
    receiver = Receiver()
    hook = await receiver.serve(nursery)
    fake_llm.default = HEALTHY
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        OPS_WEBHOOK_URL=hook,
        OPS_NOTICE_MIN_INTERVAL="0",  # OPS_CHECK_INTERVAL stays long: the test checks by hand
    )
    async with running_suite(settings) as (suite, client):
        await break_the_model(client, fake_llm)
        ingress = next(h for h in suite.business_holders if isinstance(h, IngressContext))
        watch = OpsWatch(ingress)
        holder = apsw.Connection(str(settings.database_path))
        holder.execute("BEGIN IMMEDIATE")  # as a stuck process would
        try:
            assert watch.check() is False  # waited its busy timeout, recorded nothing
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM ops_notice_state") == 0
        assert watch.check() is True
        await wait_for(lambda: receiver.events() == ["ops_degraded"])
        assert watch.check() is False  # told already
    reasons = receiver.received[0][1]["reasons"]
    assert any("el modelo falló" in r for r in reasons)
