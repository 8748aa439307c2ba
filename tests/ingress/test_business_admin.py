"""business.json edited from the dashboard: read with its schema, refused field by field,
written atomically with the previous version kept, and in force at once without restarting
the process (the offline brain's prices, the classifier's services, /api/business)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import trio

from sales.business import BusinessConfig, load_business
from tests.conftest import DATA, ROOT, make_settings, running_suite, wait_for
from tests.fakes.openai_server import EchoLast, FakeOpenAI

PASSWORD = "negocio-KNOWN-clave-1"
ACTORS = ("store", "cluster", "backup", "notifier", "classifier", "conversation", "ingress")


def config_copy(tmp_path: Path, source: Path) -> Path:
    path = tmp_path / "config" / "business.json"
    path.parent.mkdir()
    shutil.copyfile(source, path)
    return path


async def log_in(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/api/auth/login", json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrfToken"]}


async def chat(client: httpx.AsyncClient, text: str, session: str) -> dict[str, Any]:
    r = await client.post("/api/chat", json={"message": text, "sessionId": session})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def test_a_field_error_by_path_then_a_new_price_in_force_without_a_restart(
    tmp_path: Path,
) -> None:
    path = config_copy(tmp_path, ROOT / "config" / "business.json")
    original = path.read_text(encoding="utf-8")
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, BUSINESS_CONFIG=str(path))
    async with running_suite(settings) as (suite, client):
        assert (await client.get("/api/admin/business")).status_code == 401
        headers = await log_in(client)
        got = (await client.get("/api/admin/business")).json()["data"]
        assert got["config"] == json.loads(original) and got["path"] == "business.json"
        assert got["schema"] == BusinessConfig.model_json_schema()
        before = await chat(client, "¿cuánto cuesta la mantención?", "antes")
        assert "$45.000 por equipo" in before["respuesta"]

        broken = copy.deepcopy(got["config"])
        broken["services"][1]["price"] = ["caro"]
        broken["schedule"]["workingDays"]["monday"]["open"] = "9am"
        r = await client.put("/api/admin/business", json=broken, headers=headers)
        assert r.status_code == 400
        fields = {d["campo"]: d["mensaje"] for d in r.json()["details"]}
        assert set(fields) == {"services.1.price", "schedule.workingDays.monday.open"}
        # In Spanish, as the owner reads it on the dashboard.
        assert fields["services.1.price"] == "debe ser un número; debe ser texto"
        assert fields["schedule.workingDays.monday.open"] == "debe ser una hora HH:MM (24 h)"
        assert path.read_text(encoding="utf-8") == original  # nothing written
        assert not path.with_name("business.json.bak").exists()

        changed = copy.deepcopy(got["config"])
        changed["services"][1]["price"] = "$52.000 por equipo"
        changed["services"].append(
            {"id": "purificador", "name": "Purificador de aire", "keywords": ["purificador"]}
        )
        changed["branding"]["slogan"] = "Aire limpio todo el año"
        r = await client.put("/api/admin/business", json=changed, headers=headers)
        assert r.status_code == 200, r.text

        after = await chat(client, "¿cuánto cuesta la mantención?", "despues")
        assert "$52.000 por equipo" in after["respuesta"]
        assert "$45.000" not in after["respuesta"]
        lead = (await chat(client, "Quiero un purificador", "servicio"))["lead"]
        assert lead["servicio"] == "Purificador de aire"  # the classifier's services too
        public = (await client.get("/api/business")).json()
        assert public["slogan"] == "Aire limpio todo el año"

        assert json.loads(path.read_text(encoding="utf-8")) == changed
        assert path.with_name("business.json.bak").read_text(encoding="utf-8") == original
        assert load_business(path).services[1].price == "$52.000 por equipo"
        assert not list(path.parent.glob(".business.json.*"))  # no temporary file left
        # The new rules are swapped in: nothing restarts.
        assert [(a.name, a.restarts, a.recent_restarts, a.last_error) for a in suite.actors()] == [
            (name, 0, 0, None) for name in ACTORS
        ]
        assert suite.business.services[1].price == "$52.000 por equipo"


async def test_a_turn_in_flight_finishes_and_the_next_prompt_has_the_new_price(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    fake_llm.default = EchoLast(delay=1.0)
    path = config_copy(tmp_path, ROOT / "config" / "business.json")
    settings = make_settings(
        tmp_path,
        ADMIN_PASSWORD=PASSWORD,
        BUSINESS_CONFIG=str(path),
        OPENAI_API_KEY="sk-test-business",
        OPENAI_BASE_URL=fake_llm.url,
    )
    async with running_suite(settings) as (_suite, client):
        headers = await log_in(client)
        config = (await client.get("/api/admin/business")).json()["data"]["config"]
        config["services"][1]["price"] = "$52.000 por equipo"
        answered: list[dict[str, Any]] = []

        async def in_flight() -> None:
            answered.append(await chat(client, "hola", "en-vuelo"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_flight)
            await wait_for(lambda: len(fake_llm.requests) == 1)  # the model is answering
            r = await client.put("/api/admin/business", json=config, headers=headers)
            assert r.status_code == 200, r.text
        assert answered[0]["respuesta"].startswith("eco ")  # not cut by the restart
        assert "$45.000 por equipo" in fake_llm.requests[0]["messages"][0]["content"]
        await chat(client, "hola otra vez", "despues")
        assert "$52.000 por equipo" in fake_llm.requests[-1]["messages"][0]["content"]


async def test_the_original_systems_file_keeps_its_own_keys(tmp_path: Path) -> None:
    path = config_copy(tmp_path, DATA / "legacy-business.json")
    legacy = json.loads(path.read_text(encoding="utf-8"))
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, BUSINESS_CONFIG=str(path))
    async with running_suite(settings) as (_suite, client):
        headers = await log_in(client)
        got = (await client.get("/api/admin/business")).json()["data"]
        assert got["config"] == legacy  # as stored, not as the model reads it
        edited = copy.deepcopy(got["config"])
        edited["services"][0]["price"] = "$9.990"
        r = await client.put("/api/admin/business", json=edited, headers=headers)
        assert r.status_code == 200, r.text
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == edited  # keys the model does not know are still there
    assert set(written) == set(legacy)
    reloaded = load_business(path)
    assert reloaded.business.name == "SendSpress" and len(reloaded.services) == 6
    assert load_business(DATA / "legacy-business.json") == load_business(
        path.with_name("business.json.bak")
    )


async def test_a_body_that_is_not_a_config_is_refused(tmp_path: Path) -> None:
    path = config_copy(tmp_path, ROOT / "config" / "business.json")
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, BUSINESS_CONFIG=str(path))
    async with running_suite(settings) as (_suite, client):
        headers = await log_in(client)
        r = await client.put("/api/admin/business", json={}, headers=headers)
        assert r.status_code == 400
        assert {d["campo"] for d in r.json()["details"]} >= {"business", "services"}
        r = await client.put("/api/admin/business", json=[1], headers=headers)
        assert r.status_code == 400
        r = await client.put("/api/admin/business", json={"x": 1})  # no CSRF token
        assert r.status_code == 403
