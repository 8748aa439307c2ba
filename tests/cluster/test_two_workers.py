"""Two workers on one store, in one test process (the subprocess and kill -9 tests are in
tests/e2e/): on SQLite the same file, on PostgreSQL the same database. Each shows the whole
cluster in /health/detailed; a dashboard session, its CSRF token and the login throttle
made on one hold on the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from store import conversations, leases, messages
from supervisor.suite import Suite
from tests.conftest import BACKENDS, make_settings, postgres_schema, running_suite, wait_for

PASSWORD = "clave-del-panel-1234"


@contextmanager
def store_env(backend: str) -> Iterator[dict[str, str]]:
    if backend == "sqlite":
        yield {}
        return
    with postgres_schema() as url:
        yield {"DATABASE_URL": url}


@asynccontextmanager
async def two_workers(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[tuple[Suite, httpx.AsyncClient], tuple[Suite, httpx.AsyncClient]]]:
    with store_env(backend) as env:
        settings = make_settings(
            tmp_path, ADMIN_PASSWORD=PASSWORD, TRUSTED_PROXIES="127.0.0.1", **env
        )
        monkeypatch.setenv("NODE_NAME", "nodo-a")
        async with running_suite(settings) as first:
            monkeypatch.setenv("NODE_NAME", "nodo-b")
            monkeypatch.setenv("IA_COMERCIAL_WORKER", "2")
            async with running_suite(settings) as second:
                yield first, second


async def cluster_of(client: httpx.AsyncClient) -> dict[str, Any]:
    report: dict[str, Any] = (await client.get("/health/detailed")).json()["cluster"]
    return report


@pytest.mark.parametrize("backend", BACKENDS)
async def test_each_worker_shows_the_whole_cluster(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_workers(backend, tmp_path, monkeypatch) as ((first, a), (second, b)):
        with trio.fail_after(10):  # the first beat was before the other actors ran
            while any(
                w["actors"]["conversation"]["state"] != "running"
                for w in (await cluster_of(a))["workers"]
            ):
                await trio.sleep(0.2)
        for client, me in ((a, "nodo-a/1"), (b, "nodo-b/2")):
            report = await cluster_of(client)
            assert report["this"]["worker"] == me
            assert report["leader"] == "nodo-a/1"  # the first to start leads
            assert [w["worker"] for w in report["workers"]] == ["nodo-a/1", "nodo-b/2"]
            assert report["nodes"] == [
                {"node": "nodo-a", "workers": 1},
                {"node": "nodo-b", "workers": 1},
            ]
            assert report["leases"] == {"nodo-a/1": 1}  # the leader lease
            leader = report["workers"][0]
            assert leader["leader"] and leader["leases"] == 1
            assert leader["actors"]["conversation"]["state"] == "running"
        assert first.cluster.is_leader() and not second.cluster.is_leader()
        # The leader stops cleanly: the other takes over within a beat or two.
        first.shutdown()
        await wait_for(second.cluster.is_leader, 10)
        report = await cluster_of(b)
        assert [w["worker"] for w in report["workers"]] == ["nodo-b/2"]
        assert report["leader"] == "nodo-b/2" and report["leases"] == {"nodo-b/2": 1}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_session_and_the_login_throttle_hold_across_workers(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_workers(backend, tmp_path, monkeypatch) as ((_f, a), (_s, b)):
        r = await a.post(
            "/api/auth/login",
            json={"password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert r.status_code == 200
        csrf = r.json()["csrfToken"]
        b.cookies.update(a.cookies)  # the balancer sends the next request to the other
        assert (await b.get("/api/leads")).status_code == 200
        assert (await b.get("/api/auth/session")).json()["csrfToken"] == csrf
        out = await b.post("/api/auth/logout", headers={"X-CSRF-Token": csrf + "x"})
        assert out.status_code == 403  # the token is the session's, whichever worker asks
        assert (await b.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
        assert (await a.get("/api/leads")).status_code == 401  # ended for both
        codes = []
        for client in (a, b, a, b, a, b):  # wrong passwords spread over both workers
            r = await client.post(
                "/api/auth/login",
                json={"password": "adivina"},
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
            codes.append(r.status_code)
        assert codes == [401] * 5 + [429]


async def chat(client: httpx.AsyncClient, text: str, session: str) -> httpx.Response:
    return await client.post("/api/chat", json={"message": text, "sessionId": session})


def transcript(suite: Suite, session: str) -> list[tuple[str, str]]:
    assert suite.db is not None
    found = conversations.find_active(suite.db, "web", session)
    assert found is not None
    return [(m.role, m.content) for m in messages.history(suite.db, found.id)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_web_chats_spread_over_both_workers_are_answered_once_in_order(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_workers(backend, tmp_path, monkeypatch) as ((first, a), (_s, b)):
        sessions = [f"visita-{n}" for n in range(6)]

        async def visitor(session: str) -> None:
            for turn in range(4):  # the balancer sends each request to either worker
                client = (a, b)[(turn + len(session)) % 2]
                r = await chat(client, f"Hola, mensaje {turn}", session)
                assert r.status_code == 200, r.text
                assert r.json()["success"] is True

        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(visitor, session)
        for session in sessions:
            lines = transcript(first, session)
            assert [role for role, _ in lines] == ["user", "assistant"] * 4
            assert [text for role, text in lines if role == "user"] == [
                f"Hola, mensaje {turn}" for turn in range(4)
            ]
        assert first.db is not None
        assert leases.counts(first.db) == {"nodo-a/1": 1}  # the leader's: every lane let go


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_web_message_waits_for_the_worker_holding_its_conversation(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_workers(backend, tmp_path, monkeypatch) as ((first, a), (_s, b)):
        assert (await chat(a, "Hola", "ocupada")).status_code == 200
        assert first.db is not None
        found = conversations.find_active(first.db, "web", "ocupada")
        assert found is not None
        name = leases.conversation(found.id)
        assert leases.take(first.db, name, "otro-nodo/9", ttl=30)  # another is answering
        answers: list[httpx.Response] = []

        async def send() -> None:
            answers.append(await chat(b, "¿Siguen ahí?", "ocupada"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await trio.sleep(1.0)
            assert answers == []  # it waits: the conversation is another's
            assert [r for r, _ in transcript(first, "ocupada")] == ["user", "assistant", "user"]
            assert leases.release(first.db, name, "otro-nodo/9")
        assert answers[0].status_code == 200 and answers[0].json()["success"]
        assert [r for r, _ in transcript(first, "ocupada")] == ["user", "assistant"] * 2
