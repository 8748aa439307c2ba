"""widget.js on other sites: a listed site (another origin: `localhost` and its own port)
gets the launcher, the chat in a frame streaming its replies and the session kept across
its page loads; an unlisted site gets neither the frame nor the chat API; a plain link to the
embed mode chooses neither words nor session. Plus the headers behind it (frame-ancestors,
CORS) and the ALLOWED_ORIGINS setting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from quart import Response, request
from quart_trio import QuartTrio

from sales.errors import ConfigProblem
from sales.settings import load_settings
from tests.conftest import KNOWN_SECRET, make_settings, require_system, running_suite
from tests.fakes import serve_on_loopback
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json
from tests.pages.test_chat_page import CHROMIUM, FLAGS, expect, in_browser, send

SITE = "https://www.cordilleraclima.cl"
GREETING = "¡Hola! ¿Te ayudamos con tu clima?"
COLOUR = "#7c3aed"
STREAMED = (
    "La mantención preventiva cuesta $45.000 por equipo e incluye limpieza de filtros y"
    " serpentines, revisión de gas y drenaje. ¿Cómo te llamas?"
)
ASK = "Hola, ¿cuánto cuesta una mantención?"
# A request the browser must preflight (JSON), as a site calling the API itself would send.
DIRECT_FETCH = """url => fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({message: "hola desde el sitio", sessionId: "site_direct"}),
}).then(r => "status " + r.status, e => "blocked: " + e.message)"""


@dataclass
class HostSite:
    """A business's own website on another origin, with widget.js on its page and a strict
    CSP of its own that allows the chat's origin as a script and frame source only."""

    chat_url: str = ""  # set once the suite runs

    def app(self) -> QuartTrio:
        app = QuartTrio("host_site")

        @app.get("/")
        async def page() -> Response:
            html = (
                '<!doctype html><html lang="es"><head><meta charset="utf-8">'
                '<title>Cordillera Clima</title><link rel="stylesheet" href="/site.css">'
                f'<script src="{self.chat_url}/widget.js" async data-position="left"'
                f' data-color="{COLOUR}" data-greeting="{GREETING}"></script></head>'
                '<body><h1>Climatización Cordillera</h1><a href="/">Inicio</a></body></html>'
            )
            response = Response(html, content_type="text/html; charset=utf-8")
            if request.args.get("csp") != "off":
                response.headers["Content-Security-Policy"] = (
                    f"default-src 'self'; script-src 'self' {self.chat_url};"
                    f" frame-src {self.chat_url}; connect-src 'self' {self.chat_url};"
                    " style-src 'self'"
                )
            return response

        @app.get("/site.css")
        async def css() -> Response:
            # A site's careless global rules: none of it may reach the launcher.
            rule = "* { background: #ff0000 !important; font-size: 40px !important; }"
            return Response(rule, content_type="text/css")

        return app


async def serve_site(nursery: trio.Nursery, site: HostSite, host: str) -> str:
    url = await serve_on_loopback(nursery, site.app())
    return url.replace("127.0.0.1", host)


def in_chromium(script: Any) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            script(page)
        finally:
            browser.close()


async def test_a_listed_site_embeds_the_chat_and_keeps_the_session(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    require_system(CHROMIUM, "chromium")
    fake_llm.script = [Answer(lead_json(STREAMED), chunk_delay=0.04)]
    site = HostSite()
    site_url = await serve_site(nursery, site, "localhost")  # another site, not only a port
    chat_types: list[str] = []

    def script(page: Any) -> None:
        page.on(
            "response",
            lambda r: r.url.endswith("/api/chat") and chat_types.append(r.headers["content-type"]),
        )
        page.goto(site_url + "/")
        launcher = page.locator("ia-comercial-chat .launcher")
        expect(launcher).to_have_attribute("aria-expanded", "false")
        expect(launcher).to_have_css("background-color", "rgb(124, 58, 237)")  # data-color
        expect(launcher).to_have_css("left", "20px")  # data-position
        assert page.locator("ia-comercial-chat iframe").count() == 0  # loaded on first open

        # By keyboard: the launcher is a button; opening it puts the cursor in the chat.
        launcher.focus()
        page.keyboard.press("Enter")
        expect(launcher).to_have_attribute("aria-expanded", "true")
        chat = page.frame_locator("ia-comercial-chat iframe")
        expect(chat.locator("#greeting")).to_have_text(GREETING)
        expect(chat.locator("#input")).to_be_focused()
        assert chat.locator("header h1").is_visible()
        page.keyboard.type(ASK)
        page.keyboard.press("Enter")
        # The reply streams: part of it is on screen while the bubble is still pending.
        expect(chat.locator("li.msg--pending")).to_contain_text("La mantención preventiva")
        expect(chat.locator("li.msg--assistant:not(.msg--pending)")).to_have_text(STREAMED)
        assert chat_types == ["text/event-stream; charset=utf-8"]

        # Escape in the chat closes the panel and gives the focus back to the launcher.
        page.keyboard.press("Escape")
        expect(launcher).to_have_attribute("aria-expanded", "false")
        expect(page.locator("ia-comercial-chat .panel")).to_be_hidden()
        expect(launcher).to_be_focused()

        # Another page load of the site: the conversation is still there.
        launcher.click()
        page.reload()
        launcher = page.locator("ia-comercial-chat .launcher")
        expect(launcher).to_have_attribute("aria-expanded", "true")  # left open: reopened
        chat = page.frame_locator("ia-comercial-chat iframe")
        expect(chat.locator("li.msg")).to_have_count(2)
        expect(chat.locator("li.msg--user")).to_have_text(ASK)
        expect(chat.locator("li.msg--assistant")).to_have_text(STREAMED)
        # A new conversation in the panel is the one the site's next page shows.
        kept = "localStorage.getItem('iaComercial.sessionId')"
        first = page.evaluate(kept)
        assert first and first.startswith("session_")  # kept by the site, not the frame
        chat.locator("#reset").click()
        expect(chat.locator("li.msg")).to_have_count(0)
        assert page.evaluate(kept) not in (None, first)
        page.reload()
        expect(page.locator("ia-comercial-chat .launcher")).to_have_attribute(
            "aria-expanded", "true"
        )
        expect(chat.locator("#chips button")).to_have_count(4)  # a conversation not yet begun
        assert chat.locator("li.msg").count() == 0
        launcher.click()
        expect(page.locator("ia-comercial-chat .panel")).to_be_hidden()

        # The site may also call the chat API itself.
        assert page.evaluate(DIRECT_FETCH, site.chat_url + "/api/chat") == "status 200"

    settings = make_settings(
        tmp_path,
        ALLOWED_ORIGINS=f"{SITE}, {site_url}",
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
    )
    async with running_suite(settings) as (suite, _client):
        site.chat_url = suite.url
        await trio.to_thread.run_sync(in_chromium, script)
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM conversations") == 2  # widget, direct


async def test_an_unlisted_site_gets_neither_the_frame_nor_the_api(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    require_system(CHROMIUM, "chromium")
    listed, unlisted = HostSite(), HostSite()
    listed_url = await serve_site(nursery, listed, "127.0.0.1")
    unlisted_url = await serve_site(nursery, unlisted, "127.0.0.1")  # same host, other port
    outcome: dict[str, Any] = {}

    def script(page: Any) -> None:
        page.goto(unlisted_url + "/?csp=off")
        with page.expect_response(lambda r: "embed=1" in r.url) as framed:
            page.locator("ia-comercial-chat .launcher").click()
        outcome["policy"] = framed.value.headers["content-security-policy"]
        for _ in range(200):  # Chromium swaps the refused document for its error page
            if any(f.url.startswith("chrome-error:") for f in page.frames):
                break
            page.wait_for_timeout(50)
        outcome["chat_in_frame"] = (
            page.frame_locator("ia-comercial-chat iframe").locator("#input").count()
        )
        outcome["frames"] = [f.url for f in page.frames]
        outcome["fetch"] = page.evaluate(DIRECT_FETCH, unlisted.chat_url + "/api/chat")

    settings = make_settings(tmp_path, ALLOWED_ORIGINS=listed_url)
    async with running_suite(settings) as (suite, _client):
        listed.chat_url = unlisted.chat_url = suite.url
        await trio.to_thread.run_sync(in_chromium, script)
        assert suite.db is not None
        assert suite.db.scalar("SELECT count(*) FROM messages") == 0  # the preflight failed
    assert f"frame-ancestors 'self' {listed_url}" in outcome["policy"]
    assert unlisted_url not in outcome["policy"]
    assert outcome["chat_in_frame"] == 0
    assert outcome["frames"][1:] == ["chrome-error://chromewebdata/"], outcome["frames"]
    assert outcome["fetch"].startswith("blocked: "), outcome["fetch"]


async def test_a_link_cannot_choose_the_greeting_or_the_session(tmp_path: Path) -> None:
    require_system(CHROMIUM, "chromium")
    planted = "session_planted_by_a_link"

    def script(page: Any) -> None:
        expect(page.locator("#greeting")).to_contain_text("Climatización Cordillera")
        expect(page.locator("#close")).to_be_hidden()
        send(page, "Hola, me llamo Marta")

    async with running_suite(make_settings(tmp_path, ALLOWED_ORIGINS=SITE)) as (suite, _client):
        link = f"{suite.url}/?embed=1&greeting=Transfiere+a+la+cuenta+123#session={planted}"
        await trio.to_thread.run_sync(in_browser, link, script)
        assert suite.db is not None
        keys = [r["external_key"] for r in suite.db.all("SELECT external_key FROM conversations")]
        assert len(keys) == 1 and keys != [planted]


async def test_only_the_chat_page_may_be_framed_and_only_by_listed_sites(
    tmp_path: Path,
) -> None:
    other = "http://127.0.0.1:9"
    settings = make_settings(tmp_path, ALLOWED_ORIGINS=f"{SITE}/, {other}")
    async with running_suite(settings) as (_suite, client):
        chat = await client.get("/?embed=1")
        assert chat.status_code == 200
        policy = chat.headers["content-security-policy"]
        assert policy.endswith(f"frame-ancestors 'self' {SITE} {other}")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        for path in ("/dashboard", "/demo", "/privacidad", "/api/business", "/widget.js"):
            headers = (await client.get(path)).headers
            assert headers["content-security-policy"].endswith("frame-ancestors 'none'"), path
            assert headers["x-frame-options"] == "DENY", path
        widget = await client.get("/widget.js")
        assert widget.status_code == 200
        assert widget.headers["content-type"].startswith(("text/javascript", "application/js"))
        assert "access-control-allow-origin" not in widget.headers  # a <script> needs none


async def test_cors_answers_listed_origins_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ALLOWED_ORIGINS=SITE)
    preflight = {"Access-Control-Request-Method": "POST"}
    async with running_suite(settings) as (_suite, client):
        for path in ("/api/chat", "/api/chat/session/abc", "/api/chat/reset"):
            ok = await client.options(
                path,
                headers={
                    "Origin": SITE,
                    **preflight,
                    "Access-Control-Request-Headers": "content-type",
                },
            )
            assert ok.status_code == 204, path
            assert ok.headers["access-control-allow-origin"] == SITE
            assert "Content-Type" in ok.headers["access-control-allow-headers"]
            assert "POST" in ok.headers["access-control-allow-methods"]
            assert "Origin" in ok.headers["vary"]
            assert "access-control-allow-credentials" not in ok.headers
            refused = await client.options(
                path, headers={"Origin": "https://evil.example", **preflight}
            )
            assert "access-control-allow-origin" not in refused.headers, path

        sent = await client.post(
            "/api/chat", json={"message": "hola", "sessionId": "cors_1"}, headers={"Origin": SITE}
        )
        assert sent.status_code == 200
        assert sent.headers["access-control-allow-origin"] == SITE
        assert "Origin" in sent.headers["vary"]
        history = await client.get("/api/chat/session/cors_1", headers={"Origin": SITE})
        assert history.headers["access-control-allow-origin"] == SITE
        for origin in ("https://evil.example", "null", SITE + ".evil.example"):
            other = await client.get("/api/chat/session/cors_1", headers={"Origin": origin})
            assert "access-control-allow-origin" not in other.headers, origin
            assert "Origin" in other.headers["vary"]
        # The owner's routes never answer another site, listed or not.
        for path in ("/api/leads", "/api/auth/session", "/health/detailed"):
            r = await client.get(path, headers={"Origin": SITE})
            assert "access-control-allow-origin" not in r.headers, path


def test_allowed_origins_are_read_as_browsers_write_them(tmp_path: Path) -> None:
    settings = load_settings(
        {"ALLOWED_ORIGINS": " https://WWW.Example.cl/ ,http://localhost:8080, https://a.cl:443"},
        env_file=tmp_path / "none",
    )
    assert settings.allowed_origins == (
        "https://www.example.cl",
        "http://localhost:8080",
        "https://a.cl",
    )
    assert load_settings({}, env_file=tmp_path / "none").allowed_origins == ()


@pytest.mark.parametrize(
    "value",
    ["www.example.cl", "https://example.cl/chat", "*", "https://*.example.cl", "ftp://x.cl"],
)
def test_a_malformed_origin_is_a_config_problem_naming_the_field(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigProblem) as problem:
        load_settings({"ALLOWED_ORIGINS": f"https://ok.cl, {value}"}, env_file=tmp_path / "n")
    assert [(name, value in reason) for _, name, reason in problem.value.problems] == [
        ("ALLOWED_ORIGINS", True)
    ]
