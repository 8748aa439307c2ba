"""The chat page in a real browser: Debian's chromium driven by playwright (sync API in a
worker thread, while the suite runs in this test's trio loop)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from tests.conftest import KNOWN_SECRET, make_settings, require_system, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json

CHROMIUM = "/usr/lib/chromium/chromium"  # the real binary, not the /usr/bin wrapper script
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<img src=x onerror=alert(1)>"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def in_browser(url: str, script: Callable[[Any], None]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(url)
            script(page)
        finally:
            browser.close()


def send(page: Any, text: str) -> None:
    before = page.locator("li.msg--assistant").count()
    page.fill("#input", text)
    page.press("#input", "Enter")
    # Locator waits, not wait_for_function: the page's CSP forbids eval, and rightly.
    expect(page.locator("li.msg--assistant:not(.msg--pending)")).to_have_count(before + 1)


async def test_a_user_chats_keeps_the_session_and_resets(tmp_path: Path) -> None:
    require_system(CHROMIUM, "chromium")

    def script(page: Any) -> None:
        expect(page.locator("#business-name")).to_contain_text("Cordillera")
        send(page, "Hola, ¿cuánto cuesta una mantención?")
        replies = page.locator("li.msg--assistant")
        assert "Mantención preventiva: $45.000" in replies.last.text_content()
        assert "¿Cómo te llamas?" in replies.last.text_content()
        # The session survives a reload: the history is drawn again from the server.
        page.reload()
        expect(page.locator("li.msg")).to_have_count(2)
        assert (
            page.locator("li.msg--user").first.text_content()
            == "Hola, ¿cuánto cuesta una mantención?"
        )
        colour = page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--primary')"
        )
        assert colour.strip() == "#0f766e"
        page.click("#reset")
        assert page.locator("li.msg").count() == 0
        page.reload()
        page.wait_for_timeout(300)
        assert page.locator("li.msg").count() == 0  # a new session after reset

    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/", script)


async def test_markup_in_messages_is_shown_as_text(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    require_system(CHROMIUM, "chromium")
    fake_llm.script = [Answer(lead_json(f"Tu mensaje fue: {XSS}"))]
    dialogs: list[str] = []

    def script(page: Any) -> None:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        send(page, XSS)
        page.wait_for_timeout(500)  # give an injected handler time to fire, if there were one
        assert page.locator("li.msg--user").last.text_content() == XSS
        assert page.locator("li.msg--assistant").last.text_content() == f"Tu mensaje fue: {XSS}"
        assert page.locator("#messages img").count() == 0

    settings = make_settings(tmp_path, OPENAI_API_KEY=KNOWN_SECRET, OPENAI_BASE_URL=fake_llm.url)
    async with running_suite(settings) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/", script)
    assert dialogs == []


async def test_the_page_greets_offers_services_and_says_how_data_is_used(tmp_path: Path) -> None:
    require_system(CHROMIUM, "chromium")
    privacy: dict[str, str] = {}

    def script(page: Any) -> None:
        expect(page.locator("#greeting")).to_have_text(
            "Te damos la bienvenida a Climatización Cordillera. ¿En qué te podemos ayudar?"
        )
        chips = page.locator("#chips button")
        expect(chips).to_have_text(
            [
                "Instalación de aire acondicionado",
                "Mantención preventiva",
                "Reparación y diagnóstico",
                "Bomba de calor y calefacción",
            ]
        )
        # Before anything is asked: the notice, its link, and where answers will be read out.
        expect(page.locator("#privacy-notice")).to_be_visible()
        expect(page.locator("#privacy-notice")).to_contain_text("nombre y teléfono")
        expect(page.locator("#privacy-link")).to_have_attribute("href", "/privacidad")
        assert page.locator("#messages").get_attribute("aria-live") == "polite"
        assert page.locator("[aria-live]").count() == 1  # not the whole page
        expect(page.get_by_label("Escribe tu mensaje")).to_be_visible()
        expect(page.locator("#close")).to_be_hidden()  # only inside a site's launcher

        # Keyboard: Tab reaches the first chip with a visible focus ring; Enter sends it.
        page.locator("#privacy-link").focus()
        page.keyboard.press("Tab")
        expect(chips.first).to_be_focused()
        expect(chips.first).to_have_css("outline-style", "solid")
        chips.nth(1).focus()
        page.keyboard.press("Enter")
        expect(page.locator("li.msg--user")).to_have_text(["Mantención preventiva"])
        expect(page.locator("li.msg--assistant:not(.msg--pending)")).to_have_count(1)
        expect(page.locator("#chips")).to_be_hidden()  # a conversation has started
        expect(page.locator("#input")).to_be_focused()
        question = page.locator("li.msg--assistant").last
        assert "¿Cómo te llamas?" in (question.text_content() or "")
        notice_first = page.locator("#privacy-notice").evaluate(
            "(notice, question) => Boolean("
            "notice.compareDocumentPosition(question) & Node.DOCUMENT_POSITION_FOLLOWING)",
            question.element_handle(),
        )
        assert notice_first

        with page.context.expect_page() as opened:
            page.click("#privacy-link")
        policy = opened.value
        policy.wait_for_load_state()
        privacy["title"] = policy.title()
        privacy["text"] = policy.locator("main").text_content() or ""
        privacy["mail"] = policy.locator("a[href^='mailto:']").get_attribute("href") or ""

    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        await trio.to_thread.run_sync(in_browser, suite.url + "/", script)
    assert privacy["title"] == "Privacidad — Climatización Cordillera"
    assert privacy["mail"] == "mailto:contacto@cordilleraclima.cl"  # business.json's e-mail
    for part in ("nombre, teléfono", "Para qué", "Ley N° 19.628", "eliminemos"):
        assert part in privacy["text"], part
    assert "{{" not in privacy["text"]


async def test_a_new_visitor_asks_for_no_history_that_does_not_exist(tmp_path: Path) -> None:
    """A fresh page has no conversation on the server yet: it must not ask for one (a 404
    in every new visitor's console); once the visitor wrote, a reload reads it back."""
    require_system(CHROMIUM, "chromium")
    from playwright.sync_api import sync_playwright

    def visit(url: str) -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(15_000)
                page.on("response", lambda r: seen.append((r.url, r.status)))
                page.goto(url)
                page.wait_for_timeout(2500)  # the page's first read and a poll or two
                assert not [s for s in seen if "/api/chat/session/" in s[0]]
                send(page, "Hola")
                page.reload()
                expect(page.locator("li.msg--user")).to_have_text(["Hola"])
            finally:
                browser.close()
        return seen

    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        seen = await trio.to_thread.run_sync(visit, suite.url)
    history = [status for url, status in seen if "/api/chat/session/" in url]
    assert history and set(history) == {200}
    assert not [s for s in seen if s[1] >= 400]
