"""Watching it in production, with the real thing: the alert rules pass `promtool check
rules` and their unit tests, the example scrape config checks, every query of the Grafana
dashboard and of the rules names a metric a live suite exposes, and Debian's prometheus
scrapes a running suite, holds every series the dashboard uses, runs every panel's query,
and sees the model alert go pending when the model fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from store import backups
from store.db import utc_now
from tests.conftest import ROOT, make_settings, require_system, running_suite, wait_for
from tests.e2e.process import free_port
from tests.fakes.openai_server import Answer, FakeOpenAI, Status, lead_json
from tests.pages.test_chat_page import CHROMIUM, FLAGS

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "ia-comercial.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "ia-comercial.json"
TOKEN = "metrics-KNOWN-token-prom-0123"
# A metric name in PromQL: not a function, a keyword, a label or a duration.
NAME = re.compile(r"\b((?:ia|process)_[a-z0-9_]+|up)\b(?!\s*\()")
# Shown in the README's screenshot: the same queries as the dashboard's panels.
SCREENSHOT_QUERIES = (
    'sum by (route_class) (rate(ia_http_requests_total{worker=~".*"}[5m])) * 60',
    "histogram_quantile(0.95, sum by (le)"
    ' (rate(ia_chat_beyond_model_seconds_bucket{worker=~".*"}[5m])))',
    'max(ia_llm_failures_in_a_row{worker=~".*"})',
    "sum by (channel) (increase(ia_leads_created_total[1d]))",
)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = require_system(PROMTOOL, "prometheus")
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    board = json.loads(DASHBOARD.read_text())
    found = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        found += [(panel["title"], t["expr"]) for t in panel["targets"]]
    return found


def rule_queries() -> list[str]:
    return re.findall(r"expr: \|?\n?((?:.+\n)+?)\s+for:", RULES.read_text())


def names_in(expr: str) -> set[str]:
    return set(NAME.findall(expr)) - {"up"}  # `up` is Prometheus' own


def test_alert_rules_check_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name, cwd=RULES_DIR)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = promtool("test", "rules", "ia-comercial.rules.test.yml", cwd=RULES_DIR)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    alerts = set(re.findall(r"alert: (\w+)", RULES.read_text()))
    tests = RULES_DIR.joinpath("ia-comercial.rules.test.yml").read_text()
    assert alerts == set(re.findall(r"alertname: (\w+)", tests))  # each alert has its tests
    assert all(f"alertname: {a}\n        exp_alerts:\n          -" in tests for a in alerts)


def test_the_example_scrape_config_checks(tmp_path: Path) -> None:
    shutil.copy(RULES, tmp_path / RULES.name)
    (tmp_path / "ia-comercial.token").write_text(TOKEN)
    config = (RULES_DIR / "prometheus.yml").read_text().replace("/etc/prometheus/", "")
    (tmp_path / "prometheus.yml").write_text(config)
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout


def test_the_dashboard_imports_and_every_query_names_a_metric_the_suite_exposes(
    tmp_path: Path,
) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "ia-comercial" and board["schemaVersion"] >= 30
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    titles = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert titles == [
        "Tráfico y latencia",
        "Modelo (OpenAI)",
        "Leads y conversión por canal",
        "Entregas",
        "Actores y recursos",
    ]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    trio.run(_every_name_exposed, tmp_path)


async def _every_name_exposed(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        await client.post("/api/chat", json={"message": "Hola", "sessionId": "d"})
        text = (await client.get("/metrics")).text
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # Families that have no sample until something happens are declared all the same.
    exposed |= set(re.findall(r"^# TYPE (\S+) (?:gauge|untyped)", text, re.M))
    for title, expr in dashboard_queries():
        assert names_in(expr) or "up{" in expr, (title, expr)
        assert names_in(expr) <= exposed, (title, names_in(expr) - exposed)
    for expr in rule_queries():
        assert names_in(expr) or "up{" in expr, expr
        assert names_in(expr) <= exposed, (expr, names_in(expr) - exposed)


class Prometheus:
    """Debian's prometheus on 127.0.0.1, scraping `target` every second with our rules."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, workdir / RULES.name)
        (workdir / "token").write_text(TOKEN)
        (workdir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{workdir / RULES.name}]\n"
            "scrape_configs:\n"
            "  - job_name: ia-comercial\n"
            f"    authorization: {{type: Bearer, credentials_file: {workdir / 'token'}}}\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )

    def command(self) -> list[str]:
        return [
            require_system(PROMETHEUS, "prometheus"),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    async def query(self, http: httpx.AsyncClient, expr: str) -> dict[str, Any]:
        r = await http.get(f"{self.url}/api/v1/query", params={"query": expr})
        body: dict[str, Any] = r.json()
        assert body["status"] == "success", (expr, body)
        return body

    async def wait_for(self, http: httpx.AsyncClient, expr: str, seconds: float = 60) -> None:
        with trio.fail_after(seconds):
            while not (await self.query(http, expr))["data"]["result"]:
                await trio.sleep(0.5)

    async def alert_state(self, http: httpx.AsyncClient, name: str) -> str | None:
        alerts = (await http.get(f"{self.url}/api/v1/alerts")).json()["data"]["alerts"]
        return next((a["state"] for a in alerts if a["labels"]["alertname"] == name), None)


async def test_a_real_prometheus_scrapes_the_suite_and_sees_the_model_fail(
    tmp_path: Path, nursery: trio.Nursery, fake_llm: FakeOpenAI
) -> None:
    fake_llm.default = Answer(lead_json("Hola, soy el asistente.", nombre="Ana"))
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY="sk-test-prometheus",
        OPENAI_BASE_URL=fake_llm.url,
        METRICS_TOKEN=TOKEN,
    )
    async with running_suite(settings) as (suite, client), httpx.AsyncClient(timeout=30) as http:
        assert suite.db is not None
        backups.record(suite.db, backups.BackupResult(None, 1, 1, True, None, utc_now()))
        for n in range(3):
            r = await client.post("/api/chat", json={"message": "Hola", "sessionId": f"p{n}"})
            assert r.status_code == 200
        prometheus = Prometheus(tmp_path, suite.url.removeprefix("http://"))
        log = (tmp_path / "prometheus.log").open("wb")
        process = await trio.lowlevel.open_process(
            prometheus.command(), stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            await wait_for(lambda: _ready(prometheus.url), seconds=60)
            await prometheus.wait_for(http, 'up{job="ia-comercial"} == 1')
            await client.post("/api/chat", json={"message": "Hola otra vez", "sessionId": "p0"})
            # Every series the dashboard names is in Prometheus, and every panel's query runs.
            names = {n for _title, expr in dashboard_queries() for n in names_in(expr)}
            for name in sorted(names):
                await prometheus.wait_for(http, f'{{__name__="{name}"}}', seconds=30)
            await prometheus.wait_for(http, "ia_chat_beyond_model_seconds_count > 0")
            for _title, expr in dashboard_queries():
                await prometheus.query(http, expr.replace("$worker", ".*"))
            assert await prometheus.alert_state(http, "IaComercialModelFailing") is None
            # The model fails: the alert goes pending (it fires after 2 minutes).
            fake_llm.default = Status(500, "the fake model is down")
            for n in range(3):
                await client.post("/api/chat", json={"message": "¿Hola?", "sessionId": f"f{n}"})
            with trio.fail_after(60):
                while await prometheus.alert_state(http, "IaComercialModelFailing") != "pending":
                    await trio.sleep(0.5)
            await trio.to_thread.run_sync(screenshot, prometheus.url, tmp_path)
        finally:
            process.terminate()
            with trio.move_on_after(20):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            log.close()
    assert (tmp_path / "prometheus-graph.png").stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "prometheus-graph.png", ROOT / "docs" / "prometheus-graph.png")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def screenshot(url: str, folder: Path) -> None:
    """Prometheus' own graph page with the dashboard's queries (Debian's chromium)."""
    from playwright.sync_api import sync_playwright

    require_system(CHROMIUM, "chromium")
    params = "&".join(
        f"g{i}.expr={quote(expr)}&g{i}.tab=0&g{i}.range_input=1m"
        for i, expr in enumerate(SCREENSHOT_QUERIES)
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/graph?{params}", wait_until="networkidle")
            # Each query drawn (its chart's svg and its legend), then a moment to settle.
            drawn = len(SCREENSHOT_QUERIES)
            page.wait_for_function(
                f"document.querySelectorAll('.graph_area svg').length >= {drawn}"
                f" && document.querySelectorAll('.legend').length >= {drawn}",
                timeout=30_000,
            )
            page.wait_for_timeout(1000)
            # From the top, nothing focused: the fixed menu bar stays at the top of the shot.
            page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
            page.screenshot(path=str(folder / "prometheus-graph.png"), full_page=True)
        finally:
            browser.close()
