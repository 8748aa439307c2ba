"""The notifier is woken by notices, not only by its poll: with the poll ten minutes
apart, a WhatsApp reply and a hot lead's alert still go out at once. Without the wake-ups
(the turn not telling, the notifier not listening) these tests fail by their bound, every
time: nothing else moves the outbox or the owner's notifications in that time."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from tests.conftest import KNOWN_SECRET, make_settings, running_suite, wait_for
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import Answer, FakeOpenAI, Wait, lead_json
from tests.fakes.smtp_server import FakeSMTP
from tests.meta import channel_env, post_signed, whatsapp_text

POLL = 600.0  # NOTIFIER_POLL_INTERVAL, the most it allows
WOKEN = 15.0  # generous on a loaded machine, and far below the poll


async def test_a_whatsapp_reply_goes_out_on_its_notice_not_on_the_poll(
    tmp_path: Path, fake_graph: FakeGraph, fake_llm: FakeOpenAI
) -> None:
    thought = trio.Event()
    fake_llm.script = [Wait(thought, Answer(lead_json("Atendemos de lunes a sábado.")))]
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        NOTIFIER_POLL_INTERVAL=f"{POLL:g}s",
        **channel_env(fake_graph.url),
    )
    async with running_suite(settings) as (suite, client):
        assert suite.settings.notifier_poll_interval == POLL
        await trio.testing.wait_all_tasks_blocked()  # the notifier's first poll is behind it
        raw = whatsapp_text("56911112222", "wamid.wake-1", "Hola, ¿horario?")
        assert (await post_signed(client, "whatsapp", raw)).status_code == 200
        # The read receipt is queued as the turn starts, and sent on that notice.
        await wait_for(lambda: [s.get("status") for s in fake_graph.sends] == ["read"], WOKEN)
        assert suite.db is not None
        db = suite.db
        await wait_for(lambda: db.scalar("SELECT status FROM outbox") == "sent", WOKEN)
        # Its drain is over: the reply, recorded only now, needs a notice of its own.
        await trio.testing.wait_all_tasks_blocked()
        assert fake_graph.texts() == []
        thought.set()
        await wait_for(lambda: fake_graph.texts(), WOKEN)
        assert fake_graph.texts() == [("56911112222", "Atendemos de lunes a sábado.")]


async def test_a_hot_leads_alert_goes_out_on_its_notice_not_on_the_poll(tmp_path: Path) -> None:
    smtp = FakeSMTP().start()
    try:
        settings = make_settings(tmp_path, NOTIFIER_POLL_INTERVAL=f"{POLL:g}s", **smtp.env())
        async with running_suite(settings) as (_suite, client):
            await trio.testing.wait_all_tasks_blocked()  # the owner's first look is behind it
            r = await client.post(
                "/api/chat",
                json={
                    "message": "Soy Ana Rojas, 9 8765 4321, quiero agendar una instalación"
                    " para hoy en Ñuñoa",
                    "sessionId": "wake-1",
                },
            )
            assert r.status_code == 200
            assert r.json()["data"]["lead"]["estado"] == "caliente"
            await wait_for(lambda: smtp.messages, WOKEN)
    finally:
        smtp.stop()
    (alert,) = smtp.messages
    assert "CALIENTE" in alert["Subject"] and "Ana Rojas" in alert["Subject"]
