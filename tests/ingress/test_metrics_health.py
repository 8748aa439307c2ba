"""/metrics parses as Prometheus text and holds the families ops alert on; /health/detailed
is complete; neither shows a known secret."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sales import identity
from tests.conftest import KNOWN_SECRET, make_settings, require_system, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json

FAMILIES = {
    "ia_http_requests",
    "ia_http_request_duration_seconds",
    "ia_chat_beyond_model_seconds",
    "ia_messages",
    "ia_leads",
    "ia_leads_created",
    "ia_lead_class_changes",
    "ia_lead_conversions",
    "ia_llm_calls",
    "ia_llm_answers",
    "ia_llm_errors",
    "ia_llm_failures_in_a_row",
    "ia_llm_tokens",
    "ia_llm_cost_usd",
    "ia_llm_latency_seconds",
    "ia_actor_restarts",
    "ia_actor_recent_restarts",
    "ia_actor_up",
    "ia_health_status",
    "ia_outbox_messages",
    "ia_owner_notifications",
    "ia_owner_notifications_failing",
    "ia_owner_notification_attempts",
    "ia_backups",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "ia_disk_free_bytes",
    "ia_disk_size_bytes",
}
PROMTOOL = "/usr/bin/promtool"


async def test_metrics_parse_and_hold_every_family(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    fake_llm.default = Answer(
        lead_json("Hola Ana.", nombre="Ana"), prompt_tokens=100, completion_tokens=50
    )
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        METRICS_TOKEN="metrics-KNOWN-token-0123",
        SMTP_PASSWORD="smtp-KNOWN-password-0123",
        OPS_WEBHOOK_URL="https://hooks.example.cl/ops-KNOWN-hook-0123",
        LLM_PRICE_INPUT_PER_MTOK="2",
        LLM_PRICE_OUTPUT_PER_MTOK="10",
    )
    async with running_suite(settings) as (_suite, client):
        for text in ("Hola, soy Ana", "quiero agendar una mantención"):
            r = await client.post("/api/chat", json={"message": text, "sessionId": "m"})
            assert r.status_code == 200
        assert (await client.get("/api/chat/session/m")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        ok = {"Authorization": "Bearer metrics-KNOWN-token-0123"}
        r = await client.get("/metrics", headers=ok)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        detailed = (await client.get("/health/detailed")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert FAMILIES <= set(families), FAMILIES - set(families)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    worker = ("worker", identity.current().name)
    chat = (("method", "POST"), ("route", "/api/chat"), ("route_class", "chat"), ("status", "200"))
    assert samples[("ia_http_requests_total", (*chat, worker))] == 2
    session = (
        ("method", "GET"),
        ("route", "/api/chat/session/<session_id>"),  # the pattern, not the id
        ("route_class", "chat"),
        ("status", "200"),
    )
    assert samples[("ia_http_requests_total", (*session, worker))] == 1
    missing = (("method", "GET"), ("route", "unmatched"), ("route_class", "unmatched"))
    assert samples[("ia_http_requests_total", (*missing, ("status", "404"), worker))] == 1
    chat_class = (("route_class", "chat"), worker)
    assert samples[("ia_http_request_duration_seconds_count", chat_class)] == 3
    assert samples[("ia_chat_beyond_model_seconds_count", (worker,))] == 2
    # Beyond the model: less than the whole request, which includes the model's time.
    assert (
        samples[("ia_chat_beyond_model_seconds_sum", (worker,))]
        < samples[("ia_http_request_duration_seconds_sum", chat_class)]
    )
    assert samples[("ia_messages_total", (("channel", "web"), ("direction", "in")))] == 2
    assert samples[("ia_leads", (("channel", "web"), ("classification", "caliente")))] == 1
    assert samples[("ia_leads_created_total", (("channel", "web"),))] == 1
    reached = (("channel", "web"), ("classification", "caliente"))
    assert samples[("ia_lead_class_changes_total", reached)] >= 1
    assert samples[("ia_lead_conversions", (("channel", "web"), ("stage", "won")))] == 0
    assert samples[("ia_llm_calls_total", (worker,))] == 2
    assert samples[("ia_llm_answers_total", (worker,))] == 2
    assert samples[("ia_llm_errors_total", (worker,))] == 0
    assert samples[("ia_llm_tokens_total", (("kind", "prompt"), worker))] == 200
    # 200 prompt tokens at 2 USD and 100 completion tokens at 10 USD per million.
    assert abs(samples[("ia_llm_cost_usd_total", (worker,))] - 0.0014) < 1e-12
    assert samples[("ia_llm_latency_seconds_count", (worker,))] == 2
    assert samples[("ia_actor_up", (("actor", "classifier"), worker))] == 1
    assert samples[("ia_actor_restarts_total", (("actor", "notifier"), worker))] == 0
    assert samples[("ia_owner_notifications_failing", (("kind", "owner"),))] == 0
    assert samples[("ia_backups_total", (("outcome", "ok"),))] == 0
    assert samples[("process_resident_memory_bytes", (worker,))] > 10 * 1024 * 1024
    assert (
        0 < samples[("ia_disk_free_bytes", (worker,))] < samples[("ia_disk_size_bytes", (worker,))]
    )
    # Store-wide facts carry no worker label; every figure of this process does.
    for f in families.values():
        for s in f.samples:
            wide = f.name.startswith(("ia_messages", "ia_lead", "ia_outbox", "ia_backup"))
            assert ("worker" in s.labels) != wide or f.name.startswith("ia_owner_notifications")
    for secret in (KNOWN_SECRET, "metrics-KNOWN-token", "smtp-KNOWN-password", "KNOWN-hook"):
        assert secret not in text and secret not in detailed
    checked = subprocess.run(  # noqa: ASYNC221 (after the suite stopped)
        [require_system(PROMTOOL, "prometheus"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


async def test_health_detailed_is_complete_and_health_stays_cheap(tmp_path: Path) -> None:
    async with running_suite(make_settings(tmp_path)) as (_suite, client):
        await client.post("/api/chat", json={"message": "Soy Ana, 987654321", "sessionId": "h"})
        detailed = (await client.get("/health/detailed")).json()
        assert (await client.get("/health")).json() == {"status": "ok"}
    # Ana is a warm lead nobody can be told about (no e-mail, no webhook): that is the reason.
    assert detailed["status"] == "degraded"
    assert (
        "1 lead tibio sin aviso: no hay correo ni webhook configurado"
        " (SMTP_HOST/OWNER_EMAIL o WEBHOOK_URL)" in detailed["reasons"]
    )
    assert set(detailed["queues"]) == {"inbound_messages", "notifier_notices"}
    assert detailed["queues"]["inbound_messages"]["capacity"] == 64
    assert detailed["llm"]["configured"] is False and detailed["llm"]["calls"] == 0
    assert set(detailed["process"]) >= {
        "rssBytes",
        "cpuPercent",
        "openFiles",
        "threads",
        "uptimeSeconds",
    }
    assert set(detailed["system"]) >= {"cpuPercent", "memoryPercent", "diskPercent"}
    assert isinstance(detailed["warnings"], list)
    assert detailed["store"]["lastBackup"] is None
    assert detailed["channels"]["web"]["configured"] is True
    # No personal data: the lead's name and phone are not in the health report.
    text = str(detailed)
    assert "Ana" not in text and "987654321" not in text
