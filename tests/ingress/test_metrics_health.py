"""/metrics parses as Prometheus text and holds the families ops alert on; /health/detailed
is complete; neither shows a known secret."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KNOWN_SECRET, make_settings, running_suite
from tests.fakes.openai_server import Answer, FakeOpenAI, lead_json

FAMILIES = {
    "ia_http_requests",
    "ia_http_request_duration_seconds",
    "ia_messages",
    "ia_leads",
    "ia_llm_calls",
    "ia_llm_errors",
    "ia_llm_tokens",
    "ia_llm_latency_seconds",
    "ia_actor_restarts",
    "ia_actor_up",
    "ia_outbox",
    "ia_owner_notifications",
}


async def test_metrics_parse_and_hold_every_family(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    fake_llm.default = Answer(lead_json("Hola Ana.", nombre="Ana"), prompt_tokens=100)
    settings = make_settings(
        tmp_path,
        OPENAI_API_KEY=KNOWN_SECRET,
        OPENAI_BASE_URL=fake_llm.url,
        METRICS_TOKEN="metrics-KNOWN-token-0123",
        SMTP_PASSWORD="smtp-KNOWN-password-0123",
    )
    async with running_suite(settings) as (_suite, client):
        for text in ("Hola, soy Ana", "quiero agendar una mantención"):
            r = await client.post("/api/chat", json={"message": text, "sessionId": "m"})
            assert r.status_code == 200
        assert (await client.get("/api/chat/session/m")).status_code == 200
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        ok = {"Authorization": "Bearer metrics-KNOWN-token-0123"}
        r = await client.get("/metrics", headers=ok)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        detailed = (await client.get("/health/detailed")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert FAMILIES <= set(families)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    chat = (("method", "POST"), ("route", "/api/chat"), ("status", "200"))
    assert samples[("ia_http_requests_total", chat)] == 2
    session = (("method", "GET"), ("route", "/api/chat/session/<session_id>"), ("status", "200"))
    assert samples[("ia_http_requests_total", session)] == 1  # the pattern, not the id
    assert samples[("ia_messages_total", (("channel", "web"), ("direction", "in")))] == 2
    assert samples[("ia_leads", (("channel", "web"), ("classification", "caliente")))] == 1
    assert samples[("ia_llm_calls_total", ())] == 2
    assert samples[("ia_llm_tokens_total", (("kind", "prompt"),))] == 200
    assert samples[("ia_llm_latency_seconds_count", ())] == 2
    assert samples[("ia_actor_up", (("actor", "classifier"),))] == 1
    assert samples[("ia_actor_restarts_total", (("actor", "notifier"),))] == 0
    for secret in (KNOWN_SECRET, "metrics-KNOWN-token", "smtp-KNOWN-password"):
        assert secret not in text and secret not in detailed


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
