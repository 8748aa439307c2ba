"""The dashboard in a real browser (Debian's chromium, playwright): log in, see a lead made
through /api/chat, open its transcript, take the conversation over, answer by hand, and
see the answer arrive on the open chat page — with hostile text rendered inert. Then where
each field came from, two leads that claim one phone merged by the owner, and the messages
the assistant could not read, on a phone's width too. Last, the owner runs the business from
it at 1280 and at 390 and 360 px: the health banner, the figures, leads paged and sorted, a
conversation at its newest message, status and notes, a follow-up sent now, the prompt and
the strategy with their history, business.json edited (a field refused beside it, then a
price the chat uses at once); with no CSP violation and no serious axe-core finding."""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tests.conftest import DATA, ROOT, make_settings, require_system, running_suite, wait_for
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json
from tests.meta import META_ENV, channel_env, post_signed, whatsapp_text
from tests.pages.test_chat_page import CHROMIUM, FLAGS, expect, send

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
            expect(panel.locator("#funnel [data-channel=web] .funnel__count")).to_have_text(
                ["1", "0 (0 %)", "0 (0 %)"]
            )
            row.click()
            panel.wait_for_selector("#transcript li")
            texts = panel.locator("#transcript .msg__text").all_text_contents()
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
            expect(panel.locator("#transcript .msg--human .msg__text")).to_have_text([HUMAN])
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


def identity_flow(base: str) -> list[str]:
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
            fits_a_phone(panel, "#unsupported", "#detail-matches", "#detail-fields")
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
            expect(panel.locator("#transcript .msg--user .msg__text")).to_have_text([ANA, BEATRIZ])
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
        dialogs = await trio.to_thread.run_sync(identity_flow, suite.url)
        assert [r["name"] for r in db.all("SELECT name FROM leads ORDER BY id")] == [
            "Ana Rojas",
            None,
        ]
        merged = db.all("SELECT kept_id, merged_id, actor FROM lead_merges")
        assert [(m["kept_id"], m["merged_id"]) for m in merged] == [(1, 2)]
    assert len(dialogs) == 1 and "#2 (Beatriz Soto)" in dialogs[0]  # asked before merging


# -- The owner runs the business from the dashboard -----------------------------------------

PEOPLE = (
    "Ana", "Benjamín", "Camila", "Diego", "Elena", "Felipe", "Gabriela", "Héctor", "Isabel",
    "Javier", "Karina", "Luis", "María", "Nicolás", "Olga", "Pablo", "Rosa", "Sebastián",
    "Teresa", "Valentina", "Ximena", "Yolanda", "Andrés", "Beatriz", "Cristián", "Daniela",
)  # fmt: skip
MARTA = "56987650000"
MARTA_SAYS = (
    "Hola, soy Marta y quiero agendar una mantención",
    "Estoy en Ñuñoa",
    "¿Cuánto cuesta la mantención de dos equipos?",
    "¿Pueden venir el sábado en la mañana?",
    "Perfecto, quedo atenta",
)
NOTES = "Llamar el viernes: tiene dos equipos split, prefiere la mañana."
PROMPT_LINE = "6. Si preguntan por garantía, di que son 6 meses."
NEW_PRICE = "$52.000 por equipo"
PAGE_SIZE = 25
# Registered before the page's own scripts: every CSP violation the page causes is kept.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""
DATE_TIME = re.compile(r"^\d\d-\d\d-\d\d,? \d\d:\d\d$")  # es-CL, 24 h


def folded(text: str) -> str:
    """As Intl.Collator("es", {sensitivity: "base"}) compares: no accents, no case."""
    return "".join(
        c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
    ).casefold()


def log_in(page: Page, base: str) -> None:
    page.goto(base + "/dashboard")
    page.fill("#password", PASSWORD)
    page.click("#login-form button")
    page.wait_for_selector("#leads tbody tr")


def no_sideways_scroll(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    scroll = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")
    assert max(scroll) <= width, (width, scroll)


def serious_accessibility_problems(page: Page) -> list[str]:
    """axe-core's violations of impact serious or critical, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(", ".join(node["target"]) for node in v["nodes"][:5])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def shoot(page: Page, path: Path, down_to: str) -> None:
    """The page from its top to the end of `down_to` (the whole page is too long to show)."""
    bottom = page.locator(down_to).evaluate("e => e.getBoundingClientRect().bottom + scrollY")
    width = page.viewport_size["width"] if page.viewport_size else 1280
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": bottom + 12}
    )


def check_sections_reachable(page: Page, width: int) -> None:
    """Every link of the section menu brings its section into view, inside the width."""
    links = page.locator("ul.nav a")
    hrefs = links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert len(hrefs) == 7
    for href in hrefs:
        page.click(f"nav a[href='{href}']")
        section = page.locator(href)
        expect(section).to_be_in_viewport()
        box = section.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, href


def owner_flow(base: str, graph: FakeGraph, shots: Path) -> dict[str, list[str]]:
    from playwright.sync_api import sync_playwright

    problems: dict[str, list[str]] = {"errors": [], "axe": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(CSP_LISTENER)
            page = context.new_page()
            page.on("pageerror", lambda e: problems["errors"].append(str(e)))
            page.set_default_timeout(15_000)
            page.goto(base + "/dashboard")
            expect(page.locator("#password")).to_be_focused()
            problems["axe"] += serious_accessibility_problems(page)  # the login form
            log_in(page, base)

            # The server's health, as the banner tells it: a hot lead nobody was told of.
            health = page.request.get(base + "/health/detailed").json()
            assert health["status"] != "ok"
            expect(page.locator("#health")).to_be_visible()
            expect(page.locator("#health-reasons li").first).to_contain_text("no hay correo")

            # The figures: today's bar with its count and date, the table behind it, and
            # each channel's funnel.
            expect(page.locator("#stat-total")).to_have_text("27")
            expect(page.locator("#per-day-summary")).to_contain_text("27 leads")
            counts = page.locator("#per-day .chart__count").all_text_contents()
            assert sum(map(int, counts)) == 27  # today's bar (and yesterday's, at midnight)
            now = datetime.now(UTC)
            days = {str(d.day) for d in (now, now - timedelta(days=1))}
            last_day = page.locator("#per-day .chart__date").last.text_content() or ""
            assert re.sub(r"\D", "", last_day) in days, last_day
            page.click("#per-day-data summary")
            in_table = page.locator("#per-day-table tbody td.num").all_text_contents()
            assert sum(map(int, in_table)) == 27
            whatsapp = page.locator("#funnel [data-channel=whatsapp] .funnel__count")
            expect(whatsapp).to_have_text(["1", "0 (0 %)", "0 (0 %)"])
            expect(page.locator("#funnel [data-channel=web] .funnel__count").first).to_have_text(
                "26"
            )

            # The leads: in Spanish, a page of 25 with the total, sorted on the page.
            rows = page.locator("#leads tbody tr")
            expect(rows).to_have_count(PAGE_SIZE)
            expect(page.locator("#page-info")).to_have_text("1–25 de 27 · página 1 de 2")
            shown = set(page.locator("#leads td[data-label=Seguimiento]").all_text_contents())
            assert shown == {"Nuevo"}
            assert set(page.locator("#leads td[data-label=Canal]").all_text_contents()) <= {
                "Web",
                "WhatsApp",
            }
            page.click("#page-next")
            expect(rows).to_have_count(2)
            expect(page.locator("#page-info")).to_have_text("26–27 de 27 · página 2 de 2")
            page.click("#page-prev")
            expect(rows).to_have_count(PAGE_SIZE)
            page.select_option("#f-orden", "nombre")
            names = [n.strip() for n in rows.locator("td:first-child").all_text_contents()]
            assert names == sorted(names, key=folded) and len(set(names)) == PAGE_SIZE
            page.select_option("#f-orden", "creado")
            created = rows.locator("td[data-label=Creado] time").evaluate_all(
                "times => times.map(t => t.dateTime)"
            )
            assert created == sorted(created, reverse=True)
            for cell in ("Creado", "Último mensaje"):
                texts = rows.locator(f"td[data-label='{cell}']").all_text_contents()
                assert all(DATE_TIME.match(t) for t in texts), texts

            # Marta's conversation opens at its newest message, each with its time.
            page.fill("#f-q", "Ñuñoa")
            page.click("#filters button[type=submit]")
            expect(rows).to_have_count(8)
            rows.filter(has_text="Marta").get_by_role("button", name="Marta").click()
            expect(page.locator("#detail-title")).to_have_text("Marta — Caliente")
            expect(page.locator("#detail-title")).to_be_focused()
            transcript = page.locator("#transcript")
            expect(transcript.locator(".msg")).to_have_count(2 * len(MARTA_SAYS))
            expect(transcript.locator(".msg--user .msg__text").last).to_have_text(MARTA_SAYS[-1])
            times = transcript.locator(".msg__time").all_text_contents()
            assert all(DATE_TIME.match(t) for t in times), times
            assert transcript.evaluate(
                "t => t.scrollHeight > t.clientHeight"
                " && t.scrollTop + t.clientHeight >= t.scrollHeight - 2"
            ), "the transcript opens at its newest message"
            shoot(page, shots / "dashboard.png", "#detail")

            # Status and notes, saved.
            page.select_option("#detail-status", "contacted")
            expect(page.locator("#status-saved")).to_have_text("Guardado: Contactado")
            marta_row = rows.filter(has_text="Marta")
            expect(marta_row.locator("td[data-label=Seguimiento]")).to_have_text("Contactado")
            expect(whatsapp).to_have_text(["1", "1 (100 %)", "0 (0 %)"])
            page.fill("#detail-notes", NOTES)
            page.click("#notes-form button")
            expect(page.locator("#notes-status")).to_contain_text("Notas guardadas")

            # A follow-up sent now, through the fake Graph.
            expect(page.locator("#lead-followups-empty")).to_be_visible()
            before = len(graph.texts())
            page.click("#followup-send")
            expect(page.locator("#followup-status")).to_contain_text("Seguimiento n.º 1: ")
            expect(page.locator("#lead-followups li")).to_have_count(1)
            expect(page.locator("#lead-followups li")).to_contain_text("N.º 1 por WhatsApp")
            for _ in range(200):  # the fake Graph, polled from here
                if len(graph.texts()) > before:
                    break
                page.wait_for_timeout(50)
            assert len(graph.texts()) > before, "the follow-up never reached the fake Graph"
            assert graph.texts()[-1][0] == MARTA
            assert graph.texts()[-1][1].startswith("Hola Marta")
            expect(page.locator("#followups-empty")).to_be_visible()  # none due: she just wrote
            page.select_option("#detail-status", "won")
            expect(whatsapp).to_have_text(["1", "1 (100 %)", "1 (100 %)"])

            # After a reload, the lead still has them.
            page.reload()
            page.wait_for_selector("#leads tbody tr")
            rows.filter(has_text="Marta").click()
            expect(page.locator("#detail-notes")).to_have_value(NOTES)
            expect(page.locator("#detail-status")).to_have_value("won")
            expect(page.locator("#lead-followups li")).to_have_count(1)

            # The system prompt: edited, back to the file, the edit restored.
            prompt = page.locator("#prompt-text")
            original = prompt.input_value()
            expect(page.locator("#prompt-origin")).to_contain_text("archivo")
            prompt.fill(original + "\n" + PROMPT_LINE)
            page.click("#prompt-form button[type=submit]")
            expect(page.locator("#prompt-status")).to_contain_text("Guardado como versión")
            expect(page.locator("#prompt-origin")).to_contain_text("editada en el panel")
            page.click("#prompt-default")
            expect(page.locator("#prompt-status")).to_have_text("Vuelve a usarse el archivo.")
            expect(prompt).to_have_value(original)
            page.click("#prompt-form details summary")
            history = page.locator("#prompt-history li")
            expect(history).to_have_count(2)
            expect(history.first).to_contain_text("en uso")
            history.get_by_role("button", name=re.compile("^Restaurar la versión")).click()
            expect(prompt).to_have_value(re.compile(re.escape(PROMPT_LINE) + "$"))
            expect(history).to_have_count(3)

            # The strategy: a field the server refuses is marked; then saved, then removed.
            objective = page.locator("#strategy-objective")
            page.click("#strategy-form button[type=submit]")
            expect(objective).to_have_attribute("aria-invalid", "true")
            error = page.locator("#strategy-form label:has(#strategy-objective) + .field-error")
            expect(error).to_be_visible()
            expect(objective).to_have_attribute("aria-describedby", error.get_attribute("id"))
            objective.fill("Agendar visitas técnicas")
            page.fill("#strategy-criteria", "pide una visita\nurgencia hoy")
            page.select_option("#strategy-insistence", "alta")
            page.click("#strategy-form button[type=submit]")
            expect(page.locator("#strategy-status")).to_contain_text("Guardada como versión")
            expect(objective).not_to_have_attribute("aria-invalid", "true")
            expect(page.locator("#strategy-criteria")).to_have_value(
                "pide una visita\nurgencia hoy"
            )
            expect(page.locator("#strategy-origin")).to_contain_text("la estrategia de abajo")
            page.click("#strategy-default")
            expect(page.locator("#strategy-origin")).to_contain_text("Sin estrategia")

            # business.json: a wrong e-mail is refused beside its field; then a new price
            # and a new service are saved and in force.
            email = page.locator("[data-campo='business.email']")
            email.fill("esto-no-es-un-correo")
            price = page.locator("[data-campo='services.1.price']")
            expect(page.locator("[data-campo='services.1.name']")).to_have_value(
                "Mantención preventiva"
            )
            price.fill(NEW_PRICE)
            page.click("#business-form button[type=submit]")
            expect(page.locator("#business-status")).to_contain_text("No se guardó")
            expect(email).to_have_attribute("aria-invalid", "true")
            email_error = page.locator(
                "#business-form label:has([data-campo='business.email']) + .field-error"
            )
            expect(email_error).to_be_visible()
            email.fill("contacto@cordilleraclima.cl")
            page.click("#service-add")
            page.fill("[data-campo='services.4.name']", "Limpieza de ductos")
            page.fill("[data-campo='services.4.price']", "$60.000")
            page.click("#business-form button[type=submit]")
            expect(page.locator("#business-status")).to_contain_text("Guardado y en uso")
            expect(email).not_to_have_attribute("aria-invalid", "true")
            expect(page.locator("#services > li")).to_have_count(5)
            expect(page.locator("[data-campo='services.1.price']")).to_have_value(NEW_PRICE)
            page.click("#business-advanced summary")
            page.fill("#business-json", "{")
            page.click("#business-json-form button[type=submit]")
            expect(page.locator("#business-json-form .field-error")).to_contain_text(
                "No es JSON válido"
            )

            # The chat answers with the new price, no restart.
            chat = context.new_page()
            chat.goto(base + "/")
            send(chat, "Hola, ¿cuánto cuesta una mantención?")
            assert "Mantención preventiva: " + NEW_PRICE in (
                chat.locator("li.msg--assistant").last.text_content() or ""
            )
            chat.close()

            problems["axe"] += serious_accessibility_problems(page)
            # A phone: every section, nothing wider than the screen.
            no_sideways_scroll(page, PHONE_WIDTH)
            shoot(page, shots / "dashboard-phone.png", "#resumen")
            check_sections_reachable(page, PHONE_WIDTH)
            problems["axe"] += serious_accessibility_problems(page)
            no_sideways_scroll(page, 360)
            check_sections_reachable(page, 360)
            problems["csp"] = page.evaluate("window.__cspViolations")
        finally:
            browser.close()
    return problems


async def test_the_owner_runs_the_business_from_the_dashboard(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    require_system(CHROMIUM, "chromium")
    business = tmp_path / "business.json"  # edited by the test: never the repository's
    shutil.copy(ROOT / "config" / "business.json", business)
    settings = make_settings(
        tmp_path,
        **channel_env(fake_graph.url),
        ADMIN_PASSWORD=PASSWORD,
        BUSINESS_CONFIG=str(business),
    )
    async with running_suite(settings) as (suite, client):
        db = suite.db
        assert db is not None
        for n, said in enumerate(MARTA_SAYS):
            raw = whatsapp_text(MARTA, f"wamid.owner-{n}", said, ts=1764230000 + n)
            assert (await post_signed(client, "whatsapp", raw)).status_code == 200
            await wait_for(lambda n=n: len(fake_graph.texts()) == n + 1)
        for n, name in enumerate(PEOPLE):
            said = (
                f"Hola, me llamo {name}, quiero agendar una mantención en Ñuñoa,"
                f" mi número es 9 8{n:03d} 4321"
                if n % 4 == 0
                else f"Me llamo {name}, ¿cuánto cuesta una instalación?"
                if n % 4 == 1
                else f"me llamo {name}"
            )
            r = await client.post("/api/chat", json={"message": said, "sessionId": f"p{n}"})
            assert r.status_code == 200
        await wait_for(lambda: db.scalar("SELECT count(*) FROM leads WHERE sandbox = 0") == 27)
        problems = await trio.to_thread.run_sync(owner_flow, suite.url, fake_graph, tmp_path)
        marta = db.one("SELECT status, notes FROM leads WHERE channel = 'whatsapp'")
        assert marta == {"status": "won", "notes": NOTES}
        assert PROMPT_LINE in suite.rules
        saved = json.loads(business.read_text())
        assert saved["services"][1]["price"] == NEW_PRICE
        assert saved["services"][4] | {"id": "limpieza-de-ductos"} == saved["services"][4]
        assert saved["business"]["email"] == "contacto@cordilleraclima.cl"
    assert problems["errors"] == []
    assert problems["csp"] == []
    assert problems["axe"] == [], "\n".join(problems["axe"])
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        for name in ("dashboard.png", "dashboard-phone.png"):
            shutil.copy(tmp_path / name, ROOT / "docs" / name)


def _first_look(base: str) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(base + "/dashboard")
            expect(page.locator("#login-error")).not_to_have_text("")
            return page.locator("#login-error").text_content() or ""
        finally:
            browser.close()


async def test_without_a_password_the_dashboard_says_how_to_set_one_on_load(
    tmp_path: Path,
) -> None:
    require_system(CHROMIUM, "chromium")
    async with running_suite(make_settings(tmp_path)) as (suite, _client):
        shown = await trio.to_thread.run_sync(_first_look, suite.url)
    assert "ADMIN_PASSWORD" in shown  # before typing anything (a new user found it hidden)
