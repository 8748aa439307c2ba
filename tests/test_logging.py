"""Logs: JSON lines in combined.log and error.log, and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from supervisor.logs import close_logging, setup_logging
from tests.conftest import KNOWN_SECRET

META_TOKEN = "EAAGm0PX4ZCpsBAKnownMetaToken1234567890"


def test_secrets_never_reach_a_log_line(tmp_path: Path) -> None:
    saved = list(logging.getLogger().handlers)
    try:
        write_logs(tmp_path)
    finally:
        close_logging()
        for handler in saved:
            logging.getLogger().addHandler(handler)
    combined = (tmp_path / "combined.log").read_text()
    errors = (tmp_path / "error.log").read_text()
    for text in (combined, errors):
        assert KNOWN_SECRET not in text
        assert "abcdefghijklmnopqrstuvwxyz" not in text
        assert META_TOKEN not in text
        assert "[REDACTED]" in text
    lines = [json.loads(line) for line in combined.splitlines()]
    assert [entry["level"] for entry in lines] == ["info", "error", "warning", "error"]
    assert lines[2]["token"] == "[REDACTED]"
    assert "Traceback" in lines[3]["exception"]
    assert len(errors.splitlines()) == 2  # only errors in error.log


def write_logs(tmp_path: Path) -> None:
    setup_logging(tmp_path, "INFO", [KNOWN_SECRET])
    log = logging.getLogger("test.secrets")
    log.info("calling the model with key %s", KNOWN_SECRET)
    log.error("header was Authorization: Bearer %s", "abcdefghijklmnopqrstuvwxyz")
    log.warning("a Meta token %s", META_TOKEN, extra={"ctx": {"token": KNOWN_SECRET}})
    try:
        raise RuntimeError(f"Incorrect API key provided: {KNOWN_SECRET}")
    except RuntimeError:
        log.exception("model refused")
