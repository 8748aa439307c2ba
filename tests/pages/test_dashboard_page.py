"""The dashboard in a real browser (Debian's chromium, playwright): log in, see a lead made
through /api/chat, open its transcript, take the conversation over, answer by hand, and
see the answer arrive on the open chat page — with hostile text rendered inert. Then where
each field came from, two leads that claim one phone merged by the owner, and the messages
the assistant could not read, on a phone's width too."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tests.conftest import DATA, ROOT, make_settings, require_system, running_suite, wait_for
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json
from tests.meta import META_ENV, post_signed
from tests.pages.test_chat_page import CHROMIUM, FLAGS, expect

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Page

PASSWORD = "panel-KNOWN-clave-123"
HOSTILE_NAME = "<img src=x onerror=alert(3)>"  # what the model claims; the lead keeps Carla
HOSTILE_MESSAGE = "Hola, quiero info. Me llamo Carla " + HOSTILE_NAME
HOSTILE_REPLY = "<script>alert(2)</script> Hola, ¿me das tu teléfono? javascript:alert(4)"
HUMAN = "Hola, soy Carla de Cordillera. Te llamo en 5 minutos."


def dashboard_flow(base: str) -> list[str]:
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
            assert "Carla" in (row.text_content() or "")  # the name the visitor typed
            assert panel.locator("#leads img").count() == 0
            assert panel.locator("#stat-total").text_content() == "1"
            expect(panel.locator("#funnel div")).to_have_text(
                ["Leads: 1", "Contactados: 0", "Ganados: 0"]
            )
            row.click()
            panel.wait_for_selector("#transcript li")
            texts = panel.locator("#transcript li").all_text_contents()
            assert texts == [HOSTILE_MESSAGE, HOSTILE_REPLY]
            # The model's hostile name was dropped; the name's origin quotes the visitor's
            # message, as text.
            expect(panel.locator("#detail-fields dd[data-field=name] .value")).to_have_text("Carla")
            expect(panel.locator("#detail-fields dd[data-field=name] .origin q")).to_have_text(
                HOSTILE_MESSAGE
            )
            assert panel.locator("#detail script, #detail img").count() == 0

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
        r = await client.post("/api/chat", json={"message": HOSTILE_MESSAGE, "sessionId": "dash"})
        assert r.status_code == 200
        dialogs = await trio.to_thread.run_sync(dashboard_flow, suite.url)
        assert suite.db is not None
        stored = suite.db.all(
            "SELECT role, content, source FROM messages WHERE role = 'assistant' ORDER BY id"
        )
        assert [m["source"] for m in stored] == ["llm", "human"]
    assert dialogs == []  # no <script>, onerror or javascript: ever ran


ANA = "me llamo Ana Rojas, mi número es 9 8765 4321"
BEATRIZ = "me llamo Beatriz Soto, mi número es 9 8765 4321"
REACTIONS = 21  # with the unsupported message, one more than a page of the unread card
PHONE_WIDTH = 390


def whatsapp_reaction(n: int) -> bytes:
    body = json.loads((DATA / "webhooks" / "meta" / "whatsapp_reaction.json").read_text())
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.dash-reaction-{n}"
    message["reaction"]["emoji"] = "❤"  # in DejaVu Sans: the screenshot needs no emoji font
    return json.dumps(body, ensure_ascii=False).encode()


def fits_a_phone(page: Page, *parts: str) -> None:
    """At a phone's width the page has no sideways scroll and `parts` lie inside it."""
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    for part in parts:
        box = page.locator(part).bounding_box()
        assert box is not None and box["x"] >= 0, part
        assert box["x"] + box["width"] <= PHONE_WIDTH, part


def identity_flow(base: str, shots: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            panel = browser.new_page(viewport={"width": 1280, "height": 900})
            panel.on("dialog", accept)
            panel.set_default_timeout(15_000)
            panel.goto(base + "/dashboard")
            panel.fill("#password", PASSWORD)
            panel.click("#login-form button")
            expect(panel.locator("#leads tbody tr")).to_have_count(3)

            # What the assistant could not read: a page of 20, then the rest.
            unread = panel.locator("#unsupported li")
            expect(unread).to_have_count(20)
            expect(unread.first).to_contain_text("poll_creation")
            expect(unread.first).to_contain_text("de 56920000004")
            expect(unread.nth(1)).to_contain_text("reaccionó ❤ a un mensaje")
            panel.click("#unsupported-more")
            expect(unread).to_have_count(REACTIONS + 1)
            expect(panel.locator("#unsupported-more")).to_be_hidden()

            panel.locator("#leads tbody tr", has_text="Ana Rojas").click()
            name = panel.locator("#detail-fields dd[data-field=name]")
            expect(name.locator(".value")).to_have_text("Ana Rojas")
            expect(name.locator(".origin .how")).to_have_text("escrito por la persona")
            expect(name.locator(".origin q")).to_have_text(ANA)
            expect(name.locator(".origin time")).to_contain_text("Web, ")
            phone = panel.locator("#detail-fields dd[data-field=phone]")
            expect(phone.locator(".value")).to_have_text("+56987654321")
            expect(phone.locator(".origin q")).to_have_text(ANA)
            expect(panel.locator("#detail-fields dd[data-field=email] .origin")).to_have_count(0)
            notice = panel.locator("#detail-matches")
            expect(notice).to_be_visible()
            expect(notice.locator("li")).to_have_count(1)
            expect(notice.locator("li")).to_contain_text(
                "Posible misma persona que el lead #2 (Beatriz Soto) — mismo teléfono: +56987654321"
            )
            expect(panel.locator("#detail-merges")).to_be_hidden()
            panel.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            fits_a_phone(panel, "#unsupported", "#detail-matches", "#detail-fields")
            panel.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
            panel.set_viewport_size({"width": 1280, "height": 900})

            notice.get_by_role("button", name="Unir con este lead").click()
            merges = panel.locator("#merges-list li")
            expect(merges).to_have_count(1)
            expect(merges).to_contain_text("Lead #2 (Beatriz Soto, +56987654321, Web)")
            expect(merges).to_contain_text("por panel@")
            expect(notice).to_be_hidden()
            expect(panel.locator("#leads tbody tr")).to_have_count(2)
            expect(panel.locator("#leads tbody tr", has_text="Beatriz Soto")).to_have_count(0)
            expect(panel.locator("#stat-total")).to_have_text("2")
            # Both transcripts now belong to the lead that was kept.
            expect(panel.locator("#transcript li.user")).to_have_text([ANA, BEATRIZ])
            fits_a_phone(panel, "#detail-merges", "#detail-fields")
        finally:
            browser.close()
    return dialogs


async def test_the_owner_sees_where_each_field_came_from_and_merges_a_duplicate(
    tmp_path: Path,
) -> None:
    require_system(CHROMIUM, "chromium")
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, **META_ENV)
    async with running_suite(settings) as (suite, client):
        db = suite.db
        assert db is not None
        for session, text in (("ana", ANA), ("beatriz", BEATRIZ)):
            r = await client.post("/api/chat", json={"message": text, "sessionId": session})
            assert r.status_code == 200
        for n in range(REACTIONS):
            assert (await post_signed(client, "whatsapp", whatsapp_reaction(n))).status_code == 200
        unsupported = (DATA / "webhooks" / "meta" / "whatsapp_unsupported.json").read_bytes()
        assert (await post_signed(client, "whatsapp", unsupported)).status_code == 200
        await wait_for(lambda: db.scalar("SELECT count(*) FROM leads") == 3)
        await wait_for(lambda: db.scalar("SELECT count(*) FROM unsupported_events") == 22)
        dialogs = await trio.to_thread.run_sync(identity_flow, suite.url, tmp_path)
        assert [r["name"] for r in db.all("SELECT name FROM leads ORDER BY id")] == [
            "Ana Rojas",
            None,
        ]
        merged = db.all("SELECT kept_id, merged_id, actor FROM lead_merges")
        assert [(m["kept_id"], m["merged_id"]) for m in merged] == [(1, 2)]
    assert len(dialogs) == 1 and "#2 (Beatriz Soto)" in dialogs[0]  # asked before merging
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")
