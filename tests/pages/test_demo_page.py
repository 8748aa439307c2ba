"""/demo in a real browser: a scripted prospect talks to the real /api/chat and the lead
card fills in with the classifier's verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.conftest import make_settings, require_system, running_suite
from tests.pages.test_chat_page import CHROMIUM, expect, in_browser


async def test_the_urgent_scenario_ends_with_a_hot_lead_and_its_reasons(tmp_path: Path) -> None:
    require_system(CHROMIUM, "chromium")

    def script(page: Any) -> None:
        page.click("[data-scenario=urgente]")
        expect(page.locator("#demo-chat li")).to_have_count(8, timeout=30_000)
        expect(page.locator("#lead-class")).to_have_text("caliente")
        expect(page.locator("#lead-nombre")).to_have_text("Daniela Soto")
        expect(page.locator("#lead-telefono")).to_have_text("+56987654321")
        reasons = page.locator("#lead-razones li").all_text_contents()
        assert (
            "urgencia: hoy" in reasons
            and "pidió agendar" in reasons
            and "dio su teléfono" in reasons
        )
        expect(page.locator("#demo-status")).to_contain_text("Listo")
        page.click("[data-scenario=empresa]")
        expect(page.locator("#demo-chat li")).to_have_count(6, timeout=30_000)
        expect(page.locator("#lead-class")).to_have_text("caliente")  # asked for a quote
        expect(page.locator("#lead-nombre")).to_have_text("Ricardo Pérez")

    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/demo", script)


async def test_a_logged_in_owner_simulates_whatsapp_into_the_sandbox(tmp_path: Path) -> None:
    require_system(CHROMIUM, "chromium")

    def script(page: Any) -> None:
        page.fill("#sim-text", "hola")
        page.click("#sim-form button")
        expect(page.locator("#sim-status")).to_contain_text("Inicia sesión")
        page.goto(page.url.replace("/demo", "/dashboard"))
        page.fill("#password", "demo-KNOWN-clave-1")
        page.click("#login-form button")
        page.wait_for_selector("#app-view:not([hidden])")
        page.goto(page.url.replace("/dashboard", "/demo"))
        page.fill("#sim-text", "Hola, soy Lucía y quiero agendar una mantención")
        page.click("#sim-form button")
        expect(page.locator("#sim-chat li")).to_have_count(2, timeout=20_000)
        expect(page.locator("#sim-chat li.assistant")).to_contain_text("Climatización Cordillera")

    settings = make_settings(tmp_path, ADMIN_PASSWORD="demo-KNOWN-clave-1")
    async with running_suite(settings) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/demo", script)
        assert suite.db is not None
        sent = suite.db.all("SELECT recipient, status FROM outbox WHERE kind = 'text'")
        assert sent and all(r["recipient"].startswith("sim:") for r in sent)
