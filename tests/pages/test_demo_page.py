"""/demo in a real browser: a scripted prospect talks through /api/simulate/chat (the web
chat's pipeline, in the sandbox) and the lead card fills in with the classifier's verdict;
none of it reaches the owner's real leads, and the owner empties the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.conftest import make_settings, require_system, running_suite
from tests.pages.test_chat_page import CHROMIUM, expect, in_browser

PASSWORD = "demo-KNOWN-clave-1"


async def test_the_urgent_scenario_ends_with_a_hot_lead_and_its_reasons(tmp_path: Path) -> None:
    require_system(CHROMIUM, "chromium")

    def script(page: Any) -> None:
        page.click("[data-scenario=urgente]")
        expect(page.locator("#demo-chat li")).to_have_count(8, timeout=30_000)
        expect(page.locator("#lead-class")).to_have_text("caliente")
        expect(page.locator("#lead-nombre")).to_have_text("Daniela Soto")
        expect(page.locator("#lead-telefono")).to_have_text("+56900000001")  # obviously fake
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

    # A public demo server: no login needed, and everything stays in the sandbox.
    async with running_suite(make_settings(tmp_path, DEMO_MODE="1")) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/demo", script)
        assert suite.db is not None
        keys = [r["external_key"] for r in suite.db.all("SELECT external_key FROM conversations")]
        assert len(keys) == 2 and all(k.startswith("sim:demo_") for k in keys)
        assert suite.db.scalar("SELECT count(*) FROM leads WHERE sandbox = 0") == 0


async def test_the_owner_logs_in_simulates_whatsapp_and_empties_the_sandbox(
    tmp_path: Path,
) -> None:
    require_system(CHROMIUM, "chromium")

    def script(page: Any) -> None:
        # Anonymous: the page says where to log in, and nothing of the demo is there.
        expect(page.locator("body")).to_contain_text("Inicia sesión")
        assert page.locator("#sim-form").count() == 0
        page.click("a[href='/dashboard']")
        page.fill("#password", PASSWORD)
        page.click("#login-form button")
        page.wait_for_selector("#app-view:not([hidden])")
        page.goto(page.url.replace("/dashboard", "/demo"))
        page.fill("#sim-text", "Hola, soy Lucía y quiero agendar una mantención")
        page.click("#sim-form button")
        expect(page.locator("#sim-chat li")).to_have_count(2, timeout=20_000)
        expect(page.locator("#sim-chat li.assistant")).to_contain_text("Climatización Cordillera")
        # The lead card beside it fills as it does for the scripted web scenarios.
        expect(page.locator("#lead-nombre")).to_have_text("Lucía")
        expect(page.locator("#lead-servicio")).to_contain_text("antenci")
        # Back in the dashboard: Lucía is not a lead there; the sandbox button removes her.
        page.goto(page.url.replace("/demo", "/dashboard"))
        page.wait_for_selector("#app-view:not([hidden])")
        expect(page.locator("#stat-total")).to_have_text("0")
        assert page.locator("#leads tbody tr").count() == 0
        page.click("#clear-sandbox")
        expect(page.locator("#sandbox-status")).to_have_text(
            "Sandbox vaciado: 1 conversación de prueba eliminada."
        )

    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD)
    async with running_suite(settings) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/demo", script)
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM conversations") == 0
        assert suite.db.scalar("SELECT count(*) FROM outbox") == 0
        assert suite.db.scalar("SELECT count(*) FROM leads") == 0
