"""`ia-comercial check-config` and `run` on good and broken configuration (as a user runs
them: a subprocess, its exit code and what it prints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA, ROOT, postgres_schema

CLI = [sys.executable, "-m", "supervisor.cli"]


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    skipped = ("OPENAI", "PORT", "DATABASE_URL")  # a developer's own settings stay out
    environment = {k: v for k, v in os.environ.items() if not k.startswith(skipped)}
    environment.update({"SYSTEM_PROMPT_PATH": str(ROOT / "prompts" / "systemPrompt.txt"), **env})
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60
    )


def test_shipped_config_is_valid(tmp_path: Path) -> None:
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=str(ROOT / "config" / "business.json"))
    assert r.returncode == 0, r.stderr
    assert "Climatización Cordillera, 4 services" in r.stdout
    assert "brain offline" in r.stdout
    assert "whatsapp: not configured (needs WHATSAPP_ACCESS_TOKEN" in r.stdout


def test_channels_are_reported_and_their_secrets_are_not(tmp_path: Path) -> None:
    token = "EAAGcheckconfigKNOWNtoken0123456789"
    r = cli(
        ["check-config"],
        tmp_path,
        BUSINESS_CONFIG=str(ROOT / "config" / "business.json"),
        WHATSAPP_API_TOKEN=token,
        WHATSAPP_PHONE_NUMBER_ID="1065",
        META_APP_SECRET="s3cr3t-x",
    )
    assert r.returncode == 0, r.stderr
    assert "whatsapp: configured, webhook ready" in r.stdout  # the original's name works
    assert "instagram: not configured" in r.stdout
    assert token not in r.stdout + r.stderr and "s3cr3t-x" not in r.stdout + r.stderr


def test_the_original_systems_config_loads_unchanged(tmp_path: Path) -> None:
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=str(DATA / "legacy-business.json"))
    assert r.returncode == 0, r.stderr
    assert "SendSpress, 6 services, timezone America/Santiago" in r.stdout


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "business.json"
    broken.write_text('{\n  "business": {"name": "X",\n  "industry": "Y"\n  "services": []\n}\n')
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=str(broken))
    assert r.returncode == 2
    assert f"{broken}: line 4, column 3: invalid JSON: Expecting ',' delimiter" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_field_and_wrong_type_name_their_paths(tmp_path: Path) -> None:
    data = json.loads((DATA / "legacy-business.json").read_text())
    del data["services"]
    data["coverage"]["communes"] = "Santiago"
    data["schedule"]["workingDays"]["monday"]["open"] = "9am"
    data["conversationStyle"]["formality"] = "vos"
    broken = tmp_path / "business.json"
    broken.write_text(json.dumps(data))
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=str(broken))
    assert r.returncode == 2
    assert f"{broken}: services: is required" in r.stderr
    assert f"{broken}: coverage.communes: Input should be a valid list" in r.stderr
    assert f"{broken}: schedule.workingDays.monday.open: must be a time HH:MM" in r.stderr
    assert f"{broken}: conversationStyle.formality: Input should be 'tú' or 'usted'" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_refuses_to_start_on_invalid_config(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    r = cli(["run"], tmp_path, BUSINESS_CONFIG=str(missing), PORT="0")
    assert r.returncode == 2
    assert f"BUSINESS_CONFIG: {missing}: not found; change BUSINESS_CONFIG" in r.stderr
    assert not (tmp_path / "db").exists()  # nothing was created


def test_bad_environment_is_reported_by_variable(tmp_path: Path) -> None:
    r = cli(
        ["check-config"],
        tmp_path,
        BUSINESS_CONFIG=str(ROOT / "config" / "business.json"),
        PORT="http",
    )
    assert r.returncode == 2
    assert "environment: PORT: must be a whole number, got 'http'" in r.stderr


def test_bad_failpoints_are_reported_by_variable(tmp_path: Path) -> None:
    business = str(ROOT / "config" / "business.json")
    good = "webhook.store@wamid.x:BusyError=1,webhook.read:TypeError,classifier.turn=2"
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=business, IA_FAILPOINTS=good)
    assert r.returncode == 0, r.stderr
    bad = "webhook.store:NoSuchError,webhook.read@,classifier.turn=x"
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=business, IA_FAILPOINTS=bad)
    assert r.returncode == 2
    assert (
        "environment: IA_FAILPOINTS: unknown error 'NoSuchError' (name a built-in exception"
        " such as TypeError, or an apsw error such as BusyError or FullError) in"
        " 'webhook.store:NoSuchError'"
    ) in r.stderr
    assert "environment: IA_FAILPOINTS: no item after '@' in 'webhook.read@'" in r.stderr
    assert "environment: IA_FAILPOINTS: bad count in 'classifier.turn=x'" in r.stderr


def test_owner_alerts_and_follow_ups_are_reported_without_secrets(tmp_path: Path) -> None:
    hook = "https://hooks.slack.com/services/T000/B000/KNOWNhookKEY0123456789"
    r = cli(
        ["check-config"],
        tmp_path,
        BUSINESS_CONFIG=str(DATA / "legacy-business.json"),
        EMAIL_USER="alertas@gmail.com",
        EMAIL_PASS="KNOWN-app-password-0123",
        WEBHOOK_URL=hook,
        WHATSAPP_FOLLOWUP_TEMPLATE="seguimiento",
    )
    assert r.returncode == 0, r.stderr
    # The original's EMAIL_USER alone meant Gmail: STARTTLS on 587.
    assert (
        "owner alerts on caliente, tibio: e-mail to ventas@sendspress.cl via"
        " smtp.gmail.com:587 (starttls); webhook configured" in r.stdout
    )
    assert "follow-ups: hot after 12 h, warm after 24 h, at most 2;" in r.stdout
    assert "KNOWN-app-password" not in r.stdout + r.stderr and "KNOWNhook" not in r.stdout


def test_bad_lead_rules_and_alert_settings_name_their_fields(tmp_path: Path) -> None:
    data = json.loads((DATA / "legacy-business.json").read_text())
    data["leadRules"] = {"hotUrgency": ["ayer"], "followUps": {"maxCount": -1}}
    broken = tmp_path / "business.json"
    broken.write_text(json.dumps(data))
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=str(broken))
    assert r.returncode == 2
    assert f"{broken}: leadRules.hotUrgency: not a key of urgencyWords: ayer" in r.stderr
    assert f"{broken}: leadRules.followUps.maxCount: Input should be greater than" in r.stderr
    r = cli(
        ["check-config"],
        tmp_path,
        BUSINESS_CONFIG=str(DATA / "legacy-business.json"),
        SMTP_SECURITY="tls13",
        OWNER_EMAIL="not-an-address",
        WEBHOOK_URL="ftp://KNOWNhook",
    )
    assert r.returncode == 2
    assert "SMTP_SECURITY: must be one of starttls, ssl, none, got 'tls13'" in r.stderr
    assert "OWNER_EMAIL: must be an e-mail address" in r.stderr
    assert "WEBHOOK_URL: must be an http(s) URL" in r.stderr and "KNOWNhook" not in r.stderr
    assert "Traceback" not in r.stderr


def test_the_sqlite_store_in_use_is_named(tmp_path: Path) -> None:
    business = str(ROOT / "config" / "business.json")
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=business, DATABASE_PATH="db/x.db")
    assert r.returncode == 0, r.stderr
    assert "OK  store: SQLite db/x.db (created on first run)" in r.stdout


def test_the_store_in_use_is_named_and_reached_without_its_password(tmp_path: Path) -> None:
    business = str(ROOT / "config" / "business.json")
    password = "pw-KNOWN-check-config"
    with postgres_schema() as url:
        # The test server trusts 127.0.0.1: the password is sent, and never shown.
        with_password = url.replace("://postgres@", f"://postgres:{password}@")
        r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=business, DATABASE_URL=with_password)
    assert r.returncode == 0, r.stderr
    assert "OK  store: PostgreSQL postgresql://postgres@127.0.0.1:5432/test, reachable" in r.stdout
    down = f"postgresql://ia:{password}@127.0.0.1:9/ventas"  # nothing listens on port 9
    r = cli(["check-config"], tmp_path, BUSINESS_CONFIG=business, DATABASE_URL=down)
    assert r.returncode == 1
    assert "FAIL store: PostgreSQL postgresql://ia@127.0.0.1:9/ventas: not reachable (" in r.stdout
    assert password not in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_run_on_a_postgresql_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    r = cli(
        ["run"],
        tmp_path,
        BUSINESS_CONFIG=str(ROOT / "config" / "business.json"),
        DATABASE_URL="postgresql://ia:pw-KNOWN-run@127.0.0.1:9/ventas",  # nothing on port 9
    )
    assert r.returncode == 2, r.stderr
    [line] = [line for line in r.stderr.splitlines() if line.strip()]
    assert line.startswith(
        "ia-comercial: cannot start: DATABASE_URL: postgresql://ia@127.0.0.1:9/ventas: "
    )
    assert "Connection refused" in line
    assert "pw-KNOWN-run" not in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_bad_ops_notice_settings_are_refused_by_check_config_and_run(tmp_path: Path) -> None:
    bad = {
        "BUSINESS_CONFIG": str(ROOT / "config" / "business.json"),
        "OPS_EMAIL": "operaciones",
        "OPS_WEBHOOK_URL": "hooks.example.cl/ops-KNOWN-key",
    }
    for command in (["check-config"], ["run"]):
        r = cli(command, tmp_path, **bad)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        said = r.stdout + r.stderr
        assert "OPS_EMAIL" in said and "OPS_WEBHOOK_URL" in said, said
        assert "ops-KNOWN-key" not in said and "Traceback" not in said
