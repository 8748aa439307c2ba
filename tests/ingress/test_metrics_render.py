"""/metrics' page is a pure function of snapshots: several workers' figures render side by
side under their own `worker` label, and without the store's figures (it did not answer)
only the processes' series are shown, never made-up zeros."""

from __future__ import annotations

import subprocess
from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from actors.ingress.metrics import Buckets, HttpFigures
from actors.ingress.metrics_render import ActorFigures, HistogramFigures, ProcessFigures, render
from store.figures import ClusterFigures
from tests.conftest import require_system

PROMTOOL = "/usr/bin/promtool"


def figures(worker: str, chats: int) -> ProcessFigures:
    http = HttpFigures()
    for _ in range(chats):
        http.observe("/api/chat", "POST", 200, 0.8)
        http.chat_answered(0.8, 0.6)
    http.observe("/webhook/whatsapp", "POST", 500, 0.01)
    return ProcessFigures(
        worker=worker,
        requests=dict(http.requests),
        request_seconds={k: b.snapshot() for k, b in http.seconds.items()},
        chat_beyond_model=http.chat_beyond_model.snapshot(),
        llm_calls=chats,
        llm_answers=chats,
        llm_errors=0,
        llm_timeouts=0,
        llm_retries=0,
        llm_failures_in_a_row=0,
        llm_tokens={"prompt": 10, "completion": 5},
        llm_cost_usd=0.0,
        llm_seconds=HistogramFigures((("1.0", chats), ("+Inf", chats)), 0.6 * chats),
        actors=(ActorFigures("ingress", True, 0, 0),),
        resent_after_crash={"messaging": 0, "owner": 0},
        owner_attempts={"sent": 0, "failed": 0},
        health="ok",
        cpu_seconds=1.5,
        resident_bytes=50_000_000,
        open_fds=20,
        start_time=1_700_000_000.0,
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_several_workers_render_side_by_side_and_promtool_accepts_it() -> None:
    text = render([figures("a/1", 2), figures("b/2", 3)], ClusterFigures()).decode()
    found = samples(text)
    chat = (("method", "POST"), ("route", "/api/chat"), ("route_class", "chat"), ("status", "200"))
    assert found[("ia_http_requests_total", (*chat, ("worker", "a/1")))] == 2
    assert found[("ia_http_requests_total", (*chat, ("worker", "b/2")))] == 3
    hook = (("method", "POST"), ("route", "/webhook/whatsapp"), ("route_class", "webhook"))
    assert found[("ia_http_requests_total", (*hook, ("status", "500"), ("worker", "b/2")))] == 1
    # 0.8 s a request, 0.6 s of it the model's: 0.2 s beyond it, in the 0.25 s bucket.
    beyond = ("ia_chat_beyond_model_seconds_bucket", (("le", "0.1"), ("worker", "b/2")))
    assert found[beyond] == 0
    assert found[("ia_chat_beyond_model_seconds_bucket", (("le", "0.25"), ("worker", "b/2")))] == 3
    assert abs(found[("ia_chat_beyond_model_seconds_sum", (("worker", "b/2"),))] - 0.6) < 1e-9
    # The store's facts once, with no worker; zeros for the known channels before any lead.
    assert found[("ia_leads_created_total", (("channel", "instagram"),))] == 0
    assert found[("ia_outbox_messages", (("channel", "whatsapp"), ("status", "failed")))] == 0
    checked = subprocess.run(
        [require_system(PROMTOOL, "prometheus"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_without_the_stores_figures_only_the_processes_series_are_shown() -> None:
    found = samples(render([replace(figures("a/1", 1), health="failing")], None).decode())
    names = {name for name, _labels in found}
    assert "ia_http_requests_total" in names and "process_open_fds" in names
    assert ("ia_health_status", (("status", "failing"), ("worker", "a/1"))) in found
    assert found[("ia_health_status", (("status", "failing"), ("worker", "a/1")))] == 1
    for store_wide in ("ia_leads", "ia_messages_total", "ia_outbox_messages", "ia_backups_total"):
        assert store_wide not in names


def test_a_histogram_counts_each_observation_in_its_bucket_and_above() -> None:
    b = Buckets((0.1, 0.5))
    for seconds in (0.05, 0.1, 0.3, 2.0):
        b.observe(seconds)
    snapshot = b.snapshot()
    assert snapshot.buckets == (("0.1", 2), ("0.5", 3), ("+Inf", 4))
    assert snapshot.count == 4 and abs(snapshot.total - 2.45) < 1e-9


def test_a_workers_figures_cross_the_control_socket_unchanged() -> None:
    """A peer's snapshot travels as JSON (control socket) and renders as if it were local."""
    import json

    from actors.ingress.metrics_render import figures_from_json, figures_to_json

    original = figures("nodo/2", chats=7)
    travelled = figures_from_json(json.loads(json.dumps(figures_to_json(original))))
    assert travelled == original
    assert render([travelled], None) == render([original], None)
