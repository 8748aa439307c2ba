"""Settings: defaults, .env, the original system's names, and clear problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sales.errors import ConfigProblem
from sales.settings import load_settings


def test_defaults_are_the_embedded_ones(tmp_path: Path) -> None:
    s = load_settings({}, env_file=tmp_path / "none.env")
    assert (s.host, s.port, str(s.database_path), str(s.log_dir)) == (
        "127.0.0.1",
        3000,
        "db/leads.db",
        "logs",
    )
    assert str(s.backup_dir) == "db/backups"
    assert str(s.business_config) == "config/business.json"
    assert str(s.system_prompt_path) == "prompts/systemPrompt.txt"
    assert s.openai_model == "gpt-4o-mini" and s.openai_timeout == 30
    assert s.offline


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("PORT=4100\nOPENAI_MODEL=llama3\nOPENAI_API_KEY=sk-from-file-123456789\n")
    s = load_settings({"PORT": "4200"}, env_file=env)
    assert s.port == 4200 and s.openai_model == "llama3"
    assert s.openai_api_key == "sk-from-file-123456789" and not s.offline


def test_original_names_and_units_are_accepted(tmp_path: Path) -> None:
    s = load_settings(
        {
            "OPENAI_TIMEOUT": "30000",
            "DB_PATH": "/tmp/x.db",
            "OPENAI_API_BASE": "http://127.0.0.1:11434/v1",
        },
        env_file=tmp_path / "none.env",
    )
    assert s.openai_timeout == 30  # the original counted milliseconds
    assert str(s.database_path) == "/tmp/x.db"
    assert s.openai_base_url == "http://127.0.0.1:11434/v1"
    assert load_settings({"OPENAI_TIMEOUT": "2.5s"}, env_file=tmp_path / "n").openai_timeout == 2.5


def test_the_originals_placeholder_key_means_offline(tmp_path: Path) -> None:
    s = load_settings({"OPENAI_API_KEY": "tu_clave_de_openai_aqui"}, env_file=tmp_path / "n")
    assert s.offline


def test_every_bad_variable_is_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblem) as caught:
        load_settings(
            {"PORT": "eighty", "OPENAI_TIMEOUT": "soon", "LOG_LEVEL": "LOUD"},
            env_file=tmp_path / "n",
        )
    fields = [field for _file, field, _reason in caught.value.problems]
    assert fields == ["PORT", "LOG_LEVEL", "OPENAI_TIMEOUT"]


def test_every_setting_is_read_by_exactly_one_group() -> None:
    """`load_settings` builds Settings from groups of variables: a field left out of every
    group would silently keep its default, and one in two groups would be read twice."""
    from dataclasses import fields

    from sales import settings as module

    reader = module._Reader({}, "environment")
    groups = [
        module._server(reader),
        module._model(reader),
        module._channels(reader),
        module._owner_alerts(reader, module._smtp(reader)),
        module._schedules(reader),
        module._monitoring(reader),
        module._access(reader),
    ]
    keys = [key for group in groups for key in group]
    read = sorted(
        f.name for f in fields(module.Settings) if f.name not in module.NOT_FROM_ENVIRONMENT
    )
    assert sorted(keys) == read


def test_a_postgresql_url_selects_postgresql_and_its_password_is_a_secret(tmp_path: Path) -> None:
    url = "postgresql://ia:p%40ss-KNOWN@db.example:5433/ventas"
    s = load_settings({"DATABASE_URL": url}, env_file=tmp_path / "n")
    assert s.database_url == url
    assert {url, "p@ss-KNOWN"} <= set(s.secrets())
    assert load_settings({}, env_file=tmp_path / "n").database_url is None
    for wrong in (
        "mysql://ia:p%40ss-KNOWN@db/ventas",
        "postgresql://ia:p%40ss-KNOWN@db:x/v",
        "postgresql://ia:p%40ss-KNOWN@[::1/v",  # urlsplit's ValueError, not a traceback
        "postgresql://ia:p%40ss-KNOWN@db:99999/v",
        "postgresql://ia@db/v?password=p%40ss-KNOWN",  # a password database_password misses
    ):
        with pytest.raises(ConfigProblem) as caught:
            load_settings({"DATABASE_URL": wrong}, env_file=tmp_path / "n")
        assert [p[1] for p in caught.value.problems] == ["DATABASE_URL"]
        assert "KNOWN" not in str(caught.value)


def test_ops_notice_settings_are_checked_and_the_hook_is_a_secret(tmp_path: Path) -> None:
    hook = "https://hooks.slack.com/services/T0/B0/ops-KNOWN-key"
    s = load_settings(
        {
            "OPS_EMAIL": "ops@cordilleraclima.cl",
            "OPS_WEBHOOK_URL": hook,
            "OPS_CHECK_INTERVAL": "5s",
            "OPS_NOTICE_MIN_INTERVAL": "60",
            "LLM_PRICE_INPUT_PER_MTOK": "0.4",
            "LLM_PRICE_OUTPUT_PER_MTOK": "1.6",
        },
        env_file=tmp_path / "n",
    )
    assert (s.ops_email, s.ops_webhook_url) == ("ops@cordilleraclima.cl", hook)
    assert (s.ops_check_interval, s.ops_notice_min_interval) == (5.0, 60.0)
    assert (s.llm_price_input_per_mtok, s.llm_price_output_per_mtok) == (0.4, 1.6)
    assert hook in s.secrets()
    with pytest.raises(ConfigProblem) as problem:
        load_settings(
            {
                "OPS_EMAIL": "ops-at-example",
                "OPS_WEBHOOK_URL": "ftp://ops-KNOWN-key@example.cl/hook",
                "LLM_PRICE_INPUT_PER_MTOK": "cheap",
            },
            env_file=tmp_path / "n",
        )
    text = str(problem.value)
    for name in ("OPS_EMAIL", "OPS_WEBHOOK_URL", "LLM_PRICE_INPUT_PER_MTOK"):
        assert name in text
    assert "ops-KNOWN-key" not in text  # a webhook URL may hold its key: never echoed


def test_workers_is_a_count_or_auto(tmp_path: Path) -> None:
    env = tmp_path / "n"
    assert load_settings({}, env_file=env).workers == 1
    assert load_settings({"WORKERS": "3"}, env_file=env).workers == 3
    cores = len(os.sched_getaffinity(0))
    assert load_settings({"WORKERS": "auto"}, env_file=env).workers == cores
    for bad, why in (("dos", "number of processes or auto"), ("0", "between 1 and 64")):
        with pytest.raises(ConfigProblem) as caught:
            load_settings({"WORKERS": bad}, env_file=env)
        assert [(f, why in r) for _s, f, r in caught.value.problems] == [("WORKERS", True)]
