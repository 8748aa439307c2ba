"""Follow-ups and the daily summary through the whole suite, on a clock the test moves:
WhatsApp webhook in, follow-up out through the fake Graph API, STOP, nothing more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import trio

from tests.conftest import DATA, make_settings, running_suite, wait_for
from tests.fakes.graph_server import FakeGraph
from tests.fakes.smtp_server import FakeSMTP
from tests.meta import channel_env, post_signed, whatsapp_text

USER = "56987654321"


class Clock:
    """The real time moved by `ahead` (the store's own timestamps stay real)."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


async def test_a_quiet_hot_lead_is_followed_up_once_then_stop_ends_it(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    settings = make_settings(
        tmp_path,
        **channel_env(fake_graph.url),
        BUSINESS_CONFIG=str(DATA / "legacy-business.json"),  # open 24/7
        SCHEDULER_INTERVAL="0.1",
    )
    async with running_suite(settings) as (suite, client):
        clock = Clock()
        suite.clock = clock
        hello = whatsapp_text(USER, "wamid.f1", "Hola, soy Marta y quiero agendar una demo")
        assert (await post_signed(client, "whatsapp", hello)).status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 1)
        await trio.sleep(0.5)
        assert len(fake_graph.texts()) == 1  # the reply only: 12 h have not passed

        clock.ahead = timedelta(hours=12, minutes=1)
        await wait_for(lambda: len(fake_graph.texts()) == 2)
        follow_up = fake_graph.texts()[1]
        assert follow_up[0] == USER and follow_up[1].startswith("Hola Marta, te escribo de")
        await trio.sleep(0.5)
        assert len(fake_graph.texts()) == 2  # once per silence

        stop = whatsapp_text(USER, "wamid.f2", "STOP", ts=1764240000)
        assert (await post_signed(client, "whatsapp", stop)).status_code == 200
        await wait_for(lambda: len(fake_graph.texts()) == 3)
        assert "no te enviaremos más mensajes de seguimiento" in fake_graph.texts()[2][1]
        assert suite.db is not None
        db = suite.db
        await wait_for(lambda: db.scalar("SELECT opted_out_at FROM leads") is not None)

        clock.ahead = timedelta(hours=40)
        await trio.sleep(1)
        assert len(fake_graph.texts()) == 3  # opted out: no follow-up ever again
        rows = db.all("SELECT number, status FROM follow_ups")
        assert rows == [{"number": 1, "status": "queued"}]


async def test_the_daily_summary_goes_at_eight_business_time_once(tmp_path: Path) -> None:
    smtp = FakeSMTP().start()
    try:
        settings = make_settings(
            tmp_path, **smtp.env(), DAILY_SUMMARY_AT="08:00", SCHEDULER_INTERVAL="0.1"
        )
        async with running_suite(settings) as (suite, client):
            for session, text in (("a", "hola"), ("b", "Soy Ana, 987654321, quiero agendar")):
                await client.post("/api/chat", json={"message": text, "sessionId": session})
            # the hot lead's alert (after 08:00 Santiago, today's summary may come too)
            await wait_for(
                lambda: any("Resumen del" not in str(m["Subject"]) for m in smtp.messages)
            )
            santiago = ZoneInfo("America/Santiago")
            tomorrow = datetime.now(santiago).date() + timedelta(days=1)
            at_0759 = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 7, 59, tzinfo=santiago)
            clock = Clock()
            clock.ahead = at_0759 - datetime.now(UTC)
            suite.clock = clock
            await trio.sleep(0.5)
            before = len(smtp.messages)
            await trio.sleep(0.5)
            assert len(smtp.messages) == before  # 07:59: not yet
            clock.ahead += timedelta(minutes=2)
            await wait_for(lambda: len(smtp.messages) == before + 1)
            await trio.sleep(0.5)
            assert len(smtp.messages) == before + 1  # once
    finally:
        smtp.stop()
    summary = smtp.messages[-1]
    assert "Resumen del" in str(summary["Subject"])
    text = str(summary.get_body(preferencelist=("plain",)).get_content())
    assert "CALIENTE: 1" in text and "FRÍO: 1" in text and "Web: 2" in text
