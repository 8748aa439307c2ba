"""/health/detailed tells the truth: each failure below is made for real, shows up as a reason
while it lasts, and goes once it is over; /health/ready turns 503 when no message could be
taken."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import httpx
import pytest
import trio
import trio.testing

from actors.ingress.health_reasons import CRASH_LOOP_RESTARTS, actor_reasons
from store.db import from_text
from supervisor.errors import SupervisorGaveUp
from supervisor.supervisor import ChildSpec, Intensity, Supervisor
from tests.conftest import KNOWN_SECRET, make_settings, running_suite, wait_for
from tests.fakes.graph_server import Fail, FakeGraph
from tests.fakes.openai_server import Answer, FakeOpenAI, Stall, Status, lead_json
from tests.fakes.smtp_server import FakeSMTP
from tests.meta import channel_env, post_signed, whatsapp_text

Report = dict[str, Any]


async def detailed(client: httpx.AsyncClient) -> Report:
    report: Report = (await client.get("/health/detailed")).json()
    return report


async def until(
    client: httpx.AsyncClient, holds: Callable[[Report], bool], seconds: float = 15
) -> Report:
    """The first /health/detailed report for which `holds` is true (liveness bound)."""
    with trio.fail_after(seconds):
        while True:
            report = await detailed(client)
            if holds(report):
                return report
            await trio.sleep(0.05)


def mentions(report: Report, text: str) -> bool:
    return any(text in reason for reason in report["reasons"])


def is_ok(report: Report) -> bool:
    return bool(report["status"] == "ok" and report["reasons"] == [])


async def chat(client: httpx.AsyncClient, text: str, session: str) -> httpx.Response:
    return await client.post("/api/chat", json={"message": text, "sessionId": session})


async def test_a_store_another_writer_holds_is_unready_until_it_lets_go(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_suite(settings) as (_suite, client):
        assert is_ok(await detailed(client))
        holder = apsw.Connection(str(settings.database_path))
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held as a stuck process would
        try:
            # The suite's own write waits its busy timeout, then fails: a 500 for the chat.
            assert (await chat(client, "Hola", "locked")).status_code >= 500
            report = await until(client, lambda r: mentions(r, "no acepta escrituras"))
            assert report["status"] == "degraded"
            assert mentions(report, "una escritura en la base de datos falló")
            assert mentions(report, "BusyError")
            assert report["store"]["writable"] is False
            assert report["store"]["lastWriteError"]["type"] == "BusyError"
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert any("no acepta escrituras" in r for r in ready.json()["reasons"])
            assert (await client.get("/health")).json() == {"status": "ok"}  # still cheap
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with trio.fail_after(15):
            while (await client.get("/health/ready")).status_code != 200:
                await trio.sleep(0.05)
        # Ready again; the failed write is told until a write works again (the chat's, or
        # the cluster heartbeat's, every 2 s).
        assert (await chat(client, "Hola de nuevo", "locked")).status_code == 200
        report = await until(client, is_ok)
        assert report["store"]["writable"] is True and report["store"]["lastWriteError"] is None


async def test_too_little_free_disk_degrades_but_the_suite_still_takes_messages(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, DISK_MIN_FREE_MB="100000000")  # 100 TB: never there
    async with running_suite(settings) as (_suite, client):
        report = await detailed(client)
        assert report["status"] == "degraded"
        assert mentions(report, "poco espacio en el disco de la base de datos")
        assert mentions(report, "DISK_MIN_FREE_MB=100000000")
        assert report["store"]["freeBytes"] < report["store"]["minFreeBytes"]
        assert (await client.get("/health/ready")).status_code == 200
    settings = make_settings(tmp_path, DISK_MIN_FREE_MB="1")
    async with running_suite(settings) as (_suite, client):
        assert not mentions(await detailed(client), "poco espacio")


def llm_settings(tmp_path: Path, fake_llm: FakeOpenAI, **env: str) -> Any:
    return make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        OPENAI_MAX_RETRIES="1",
        **env,
    )


def recent(at: str, seconds: float = 60) -> bool:
    return (datetime.now(UTC) - from_text(at)).total_seconds() < seconds


async def test_a_model_answering_500_every_time_degrades_then_recovers(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.default = Status(500, "upstream exploded")
    async with running_suite(llm_settings(tmp_path, fake_llm)) as (_suite, client):
        for n in range(3):
            assert (await chat(client, "Hola", f"s{n}")).status_code == 200  # the fallback
        report = await detailed(client)
        assert report["status"] == "degraded"
        assert mentions(report, "el modelo falló sus últimas 3 respuestas")
        llm = report["llm"]
        assert (llm["errors"], llm["timeouts"], llm["failuresInARow"]) == (3, 0, 3)
        assert llm["lastError"]["message"] == "model server answered 500"
        assert recent(llm["lastError"]["at"])
        assert KNOWN_SECRET not in str(report)

        fake_llm.default = Answer(lead_json("Hola, ¿en qué le ayudo?"))
        assert (await chat(client, "Hola", "ok")).json()["data"]["respuesta"] == (
            "Hola, ¿en qué le ayudo?"
        )
        report = await detailed(client)
        assert is_ok(report)
        assert report["llm"]["lastError"]["message"] == "model server answered 500"  # kept


async def test_a_model_that_times_out_counts_timeouts_as_errors(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.default = Stall(30)
    settings = llm_settings(tmp_path, fake_llm, OPENAI_TIMEOUT="1")
    async with running_suite(settings) as (_suite, client):
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(chat, client, "Hola", f"t{n}")
        started = datetime.now(UTC)
        report = await detailed(client)
        assert report["status"] == "degraded"
        assert mentions(report, "el modelo falló sus últimas 3 respuestas")
        llm = report["llm"]
        assert (llm["errors"], llm["timeouts"]) == (3, 3)
        assert (
            "timed out" in llm["lastError"]["message"] or "Timeout" in (llm["lastError"]["message"])
        )
        assert (started - from_text(llm["lastError"]["at"])).total_seconds() < 5

        fake_llm.default = Answer(lead_json("Ya estoy de vuelta."))
        assert (await chat(client, "Hola", "back")).status_code == 200
        assert is_ok(await detailed(client))


async def test_graph_refusing_every_send_degrades_until_a_send_goes_through(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    fake_graph.failures = [Fail(500, 2, "Service temporarily unavailable")] * 1000
    async with running_suite(make_settings(tmp_path, **channel_env(fake_graph.url))) as (
        _suite,
        client,
    ):
        for n in range(2):  # each: a read receipt and a reply, both refused
            body = whatsapp_text(f"5691111000{n}", f"wamid.down-{n}", "Hola, ¿horario?")
            assert (await post_signed(client, "whatsapp", body)).status_code == 200
        report = await until(client, lambda r: mentions(r, "los envíos por WhatsApp"))
        assert report["status"] == "degraded"
        notifier = report["work"]["notifier"]
        assert notifier["send_failures_in_a_row"] >= 3 and notifier["last_send_ok_at"] is None
        assert recent(notifier["last_send_failure_at"])
        assert "56911110000" not in str(report)  # no personal data in health

        fake_graph.failures.clear()  # Graph is back: the replies go on their retry
        report = await until(client, is_ok, seconds=30)
        assert report["work"]["notifier"]["send_failures_in_a_row"] == 0
        await wait_for(lambda: len(fake_graph.texts()) == 2, seconds=30)


async def test_owner_alerts_failing_degrade_until_one_is_delivered(tmp_path: Path) -> None:
    smtp = FakeSMTP()  # not listening yet
    async with running_suite(make_settings(tmp_path, **smtp.env())) as (_suite, client):
        for n in range(3):  # three new leads: three alerts, each refused
            r = await chat(client, f"Soy Luis {n}, 98765432{n}, quiero una mantención", f"o{n}")
            assert r.status_code == 200
        report = await until(client, lambda r: mentions(r, "los avisos al dueño fallan"))
        assert report["status"] == "degraded"
        assert "Luis" not in str(report) and "987654320" not in str(report)
        smtp.start()
        try:
            report = await until(client, is_ok, seconds=30)
        finally:
            smtp.stop()
        assert report["work"]["notifier"]["owner_failures_in_a_row"] == 0


async def test_a_crash_loop_is_degraded_before_the_supervisor_gives_up(tmp_path: Path) -> None:
    # Armed without a count: the classifier crashes on the turn at every restart.
    settings = make_settings(tmp_path, IA_FAILPOINTS="classifier.turn")
    seen: list[Report] = []
    with pytest.raises(BaseExceptionGroup) as ended:
        async with running_suite(settings) as (_suite, client):
            assert (await chat(client, "Soy Ana, 987654321", "loop")).status_code == 200
            seen.append(await until(client, lambda r: mentions(r, "reinicios recientes")))
            await trio.sleep_forever()  # until the supervisor gives up and the suite ends
    assert ended.value.subgroup(SupervisorGaveUp) is not None
    (report,) = seen
    assert report["status"] == "degraded"
    loop = [r for r in report["reasons"] if "reinicios recientes" in r]
    assert loop and all("classifier" in r for r in loop)
    classifier = {a["name"]: a for a in report["actors"]}["classifier"]
    assert classifier["recentRestarts"] >= CRASH_LOOP_RESTARTS


async def test_a_crash_loop_is_forgotten_once_the_period_passes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    crashes = 3

    async def flaky(stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal crashes
        task_status.started()
        if crashes:
            crashes -= 1
            await trio.sleep(1)
            raise RuntimeError("flaky")
        await stop.wait()

    supervisor = Supervisor([ChildSpec("flaky", flaky)], intensity=Intensity(5, 30))
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        seen: set[str] = set()
        while supervisor.statistics()[0].restarts < 3 or not supervisor.is_running("flaky"):
            seen.update(actor_reasons(supervisor.statistics()))
            await trio.sleep(0.01)
        assert seen == {
            "actor flaky reiniciándose",  # the first crash is no loop yet
            "actor flaky reiniciándose, 2 reinicios recientes",
            "actor flaky en bucle de fallos, 2 reinicios recientes",  # up between crashes
            "actor flaky reiniciándose, 3 reinicios recientes",
        }
        assert actor_reasons(supervisor.statistics()) == [
            "actor flaky en bucle de fallos, 3 reinicios recientes"
        ]
        await trio.sleep(31)
        assert actor_reasons(supervisor.statistics()) == []
        (stats,) = supervisor.statistics()
        assert (stats.restarts, stats.recent_restarts) == (3, 0)
        supervisor.shutdown()
