"""The dashboard in a real browser (Debian's chromium, playwright): log in, see a lead made
through /api/chat, open its transcript, take the conversation over, answer by hand, and
see the answer arrive on the open chat page — with hostile text rendered inert."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import trio

from tests.conftest import ROOT, make_settings, require_system, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json
from tests.pages.test_chat_page import CHROMIUM, FLAGS, expect

PASSWORD = "panel-KNOWN-clave-123"
HOSTILE_NAME = "<img src=x onerror=alert(3)>"
HOSTILE_REPLY = "<script>alert(2)</script> Hola, ¿me das tu teléfono? javascript:alert(4)"
HUMAN = "Hola, soy Carla de Cordillera. Te llamo en 5 minutos."


def dashboard_flow(base: str, shots: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("page", lambda page: page.on("dialog", lambda d: dialogs.append(d.message)))
            chat = context.new_page()
            chat.on("dialog", lambda d: dialogs.append(d.message))
            chat.set_default_timeout(15_000)
            chat.goto(base + "/")
            chat.evaluate("localStorage.setItem('iaComercial.sessionId', 'dash')")
            chat.reload()
            expect(chat.locator("li.msg")).to_have_count(2)
            assert chat.locator("li.msg--assistant").first.text_content() == HOSTILE_REPLY

            panel = context.new_page()
            panel.on("dialog", lambda d: dialogs.append(d.message))
            panel.set_default_timeout(15_000)
            panel.goto(base + "/dashboard")
            panel.fill("#password", "mala")
            panel.click("#login-form button")
            expect(panel.locator("#login-error")).to_have_text("Contraseña incorrecta")
            panel.fill("#password", PASSWORD)
            panel.click("#login-form button")
            panel.wait_for_selector("#leads tbody tr")
            assert not panel.locator("#login-view").is_visible()  # the login form is gone
            row = panel.locator("#leads tbody tr").first
            assert HOSTILE_NAME in row.text_content()  # shown as text
            assert panel.locator("#leads img").count() == 0
            assert panel.locator("#stat-total").text_content() == "1"
            expect(panel.locator("#funnel div")).to_have_text(
                ["Leads: 1", "Contactados: 0", "Ganados: 0"]
            )
            row.click()
            panel.wait_for_selector("#transcript li")
            texts = panel.locator("#transcript li").all_text_contents()
            assert texts[1] == HOSTILE_REPLY
            assert panel.locator("#transcript script, #transcript img").count() == 0
            panel.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            panel.click("#pause")
            panel.wait_for_selector("#resume:not([hidden])")
            panel.fill("#reply", HUMAN)
            panel.click("#reply-form button")
            expect(panel.locator("#transcript li.human")).to_have_text([HUMAN])
            # The chat page, never reloaded, shows the person's reply.
            expect(chat.locator("li.msg--assistant").last).to_have_text(HUMAN)
            # While paused the bot stays quiet: the visitor's message is shown, not answered.
            chat.fill("#input", "gracias, espero")
            chat.press("#input", "Enter")
            expect(chat.locator("li.msg--user")).to_have_count(2)
            expect(chat.locator(".msg--pending")).to_have_count(0)
            chat.wait_for_timeout(500)
            assert chat.locator("li.msg--assistant").count() == 2
        finally:
            browser.close()
    return dialogs


async def test_the_owner_takes_a_conversation_over_from_the_dashboard(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    require_system(CHROMIUM, "chromium")
    fake_llm.default = Answer(lead_json(HOSTILE_REPLY, nombre=HOSTILE_NAME, estado="tibio"))
    settings = make_settings(
        tmp_path,
        ADMIN_PASSWORD=PASSWORD,
        OPENAI_API_KEY="sk-test-dashboard",
        OPENAI_BASE_URL=fake_llm.url,
    )
    async with running_suite(settings) as (suite, client):
        r = await client.post(
            "/api/chat", json={"message": "hola, quiero info", "sessionId": "dash"}
        )
        assert r.status_code == 200
        dialogs = await trio.to_thread.run_sync(dashboard_flow, suite.url, tmp_path)
        assert suite.db is not None
        stored = suite.db.all(
            "SELECT role, content, source FROM messages WHERE role = 'assistant' ORDER BY id"
        )
        assert [m["source"] for m in stored] == ["llm", "human"]
    assert dialogs == []  # no <script>, onerror or javascript: ever ran
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")
