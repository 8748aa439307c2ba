"""The suite as a process: restarts keep the history, SIGTERM drains, kill -9 loses nothing,
systemd hears READY/WATCHDOG/STOPPING."""

from __future__ import annotations

import itertools
import signal
import socket
import time
from pathlib import Path

import apsw
import httpx
import trio

from tests.conftest import KNOWN_SECRET
from tests.e2e.process import SuiteProcess
from tests.fakes.openai_server import Answer, FakeOpenAI, Stall, lead_json


async def test_history_survives_a_restart_and_sigterm_exits_0(tmp_path: Path) -> None:
    suite = SuiteProcess(tmp_path)
    await suite.start()
    async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
        r1 = await client.post("/api/chat", json={"message": "Hola", "sessionId": "e2e"})
        r2 = await client.post(
            "/api/chat", json={"message": "Me llamo Rosa Díaz", "sessionId": "e2e"}
        )
        assert r1.status_code == r2.status_code == 200
        assert r2.json()["data"]["lead"]["nombre"] == "Rosa Díaz"
        started = time.monotonic()
        assert await suite.stop() == 0
        # The client still holds an idle keep-alive connection: that must not hold the
        # shutdown for hypercorn's whole graceful timeout (10 s), only in-flight requests may.
        assert time.monotonic() - started < 5

        again = SuiteProcess(tmp_path)
        again.port, again.url, again.env["PORT"] = suite.port, suite.url, suite.env["PORT"]
        await again.start()
        history = (await client.get("/api/chat/session/e2e")).json()["data"]
        assert [m["content"] for m in history["historial"][::2]] == ["Hola", "Me llamo Rosa Díaz"]
        r3 = await client.post("/api/chat", json={"message": "+56 9 1234 5678", "sessionId": "e2e"})
        lead = r3.json()["data"]["lead"]
        assert (lead["nombre"], lead["telefono"]) == ("Rosa Díaz", "+56912345678")
        assert await again.stop() == 0
    logs = (tmp_path / "logs" / "combined.log").read_text()
    assert '"message": "stopped"' in logs


async def test_sigterm_lets_an_in_flight_chat_finish(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [Stall(1.5, Answer(lead_json("Respuesta lenta pero completa.")))]
    suite = SuiteProcess(tmp_path, OPENAI_API_KEY=KNOWN_SECRET, OPENAI_BASE_URL=fake_llm.url)
    await suite.start()
    results: list[httpx.Response] = []

    async def chat() -> None:
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            results.append(
                await client.post("/api/chat", json={"message": "hola", "sessionId": "drain"})
            )

    nursery.start_soon(chat)
    with trio.fail_after(10):
        while not fake_llm.requests:
            await trio.sleep(0.02)
    assert await suite.stop() == 0  # waits for the request, then exits 0
    assert len(results) == 1 and results[0].status_code == 200
    assert results[0].json()["data"]["respuesta"] == "Respuesta lenta pero completa."
    assert KNOWN_SECRET not in suite.log_text()
    assert KNOWN_SECRET not in (tmp_path / "logs" / "combined.log").read_text()


async def test_kill_9_mid_turn_loses_nothing_and_answers_once(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script = [Stall(60)]
    env = {"OPENAI_API_KEY": KNOWN_SECRET, "OPENAI_BASE_URL": fake_llm.url}
    suite = SuiteProcess(tmp_path, **env)
    await suite.start()

    async def chat() -> None:
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            try:
                await client.post(
                    "/api/chat", json={"message": "¿Hacen instalaciones?", "sessionId": "k9"}
                )
            except httpx.TransportError:
                pass  # the process died under the request, as it should in this test

    nursery.start_soon(chat)
    with trio.fail_after(10):
        while not fake_llm.requests:  # the message is stored and the model is thinking
            await trio.sleep(0.02)
    suite.send_signal(signal.SIGKILL)
    assert await suite.wait() == -signal.SIGKILL

    fake_llm.default = Answer(lead_json("Sí, instalamos equipos split."))
    again = SuiteProcess(tmp_path, **env)
    await again.start()
    db = apsw.Connection(str(tmp_path / "db" / "leads.db"), flags=apsw.SQLITE_OPEN_READONLY)
    with trio.fail_after(15):
        while True:
            rows = db.execute("SELECT role, content, status FROM messages ORDER BY id").fetchall()
            if len(rows) == 2:
                break
            await trio.sleep(0.05)
    assert rows == [
        ("user", "¿Hacen instalaciones?", "handled"),
        ("assistant", "Sí, instalamos equipos split.", None),
    ]
    await trio.sleep(0.5)  # nothing more arrives: answered exactly once
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 2
    db.close()
    assert await again.stop() == 0


async def test_systemd_hears_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await listener.bind(str(sock_path))
    suite = SuiteProcess(tmp_path, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="200000")
    await suite.start(wait_ready=False)
    heard: list[tuple[float, str]] = []

    async def hear_until(line: str) -> None:
        with trio.fail_after(20):
            while not any(line == m for _, m in heard):
                data = await listener.recv(4096)
                for part in data.decode().splitlines():
                    heard.append((trio.current_time(), part))

    await hear_until("READY=1")
    async with httpx.AsyncClient(base_url=suite.url) as client:
        # READY means every actor runs: the suite answers at once.
        assert (await client.get("/health/ready")).status_code == 200
    ready_at = max(t for t, m in heard if m == "READY=1")
    await trio.sleep(0.7)
    suite.send_signal(signal.SIGTERM)
    await hear_until("STOPPING=1")
    assert await suite.wait() == 0
    listener.close()
    pings = [t for t, m in heard if m == "WATCHDOG=1" and t > ready_at]
    assert len(pings) >= 3  # every 0.1 s (WATCHDOG_USEC/2) from the event loop
    assert any(m.startswith("STATUS=") for _, m in heard)


async def test_the_watchdog_pings_stop_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    """The pings come from the event loop itself: when it hangs (a drill blocks it for 2 s
    inside a turn), they stop, so systemd's WatchdogSec would restart the process."""
    sock_path = tmp_path / "notify.sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await listener.bind(str(sock_path))
    suite = SuiteProcess(
        tmp_path,
        NOTIFY_SOCKET=str(sock_path),
        WATCHDOG_USEC="200000",
        IA_FAILPOINTS="conversation.stall=1",
    )
    await suite.start(wait_ready=False)
    pings: list[float] = []

    async def listen() -> None:
        while True:
            data = await listener.recv(4096)
            if b"WATCHDOG=1" in data:
                pings.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        await suite.wait_ready()
        await trio.sleep(0.5)
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            sent = trio.current_time()
            r = await client.post("/api/chat", json={"message": "Hola", "sessionId": "w"})
            assert r.status_code == 200  # answered once the loop runs again
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert await suite.stop() == 0
    listener.close()
    before = [t for t in pings if t < sent]
    after = [t for t in pings if t >= sent]
    assert len(before) >= 3 and after
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) >= 1.5  # silent while blocked (2 s); every 0.1 s otherwise
    assert sorted(gaps)[len(gaps) // 2] < 0.3
