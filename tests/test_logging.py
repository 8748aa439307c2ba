"""Logs: JSON lines in combined.log and error.log, and never a secret."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from supervisor.logs import FileFailures, QuietFileHandler, close_logging, setup_logging
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


class FullDisk(io.StringIO):
    """A log file's stream on a full filesystem: every write fails with ENOSPC."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_the_disk(handler: logging.StreamHandler[Any]) -> None:
    real = handler.setStream(FullDisk())
    if real is not None:
        real.close()


def free_the_disk(handler: logging.StreamHandler[Any]) -> None:
    handler.setStream(io.StringIO())  # so that closing the handler flushes nothing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_disk_is_told_once_a_minute_without_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock, told = Clock(), io.StringIO()
    failures = FileFailures(clock, lambda: told)
    handler = QuietFileHandler(tmp_path / "combined.log", failures)
    fill_the_disk(handler)
    log = logging.getLogger("test.full_disk.handler")
    log.propagate = False
    log.addHandler(handler)
    try:
        for n in range(600):  # ten records a second for a minute
            log.error("record %d", n)
            clock.now += 0.1
        lines = told.getvalue().splitlines()
        assert len(lines) == 1
        assert "combined.log" in lines[0] and "No space left on device" in lines[0]
        assert failures.count == 600 and failures.recent() == "No space left on device"
        clock.now += 0.5  # a minute after the first notice: said again, once
        log.error("one more")
        log.error("and another")
        assert len(told.getvalue().splitlines()) == 2
        assert "601 failed so far" in told.getvalue().splitlines()[1]
    finally:
        log.removeHandler(handler)
        log.propagate = True
        free_the_disk(handler)
        handler.close()
    assert capsys.readouterr().err == ""  # no "--- Logging error ---" traceback at all
    clock.now += 61
    assert failures.recent() is None  # health forgets it once the file works a minute


def test_the_suites_log_files_fail_quietly_on_a_full_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = list(logging.getLogger().handlers)
    failures = FileFailures(Clock())
    files: list[QuietFileHandler] = []
    try:
        setup_logging(tmp_path, "INFO", failures=failures)
        root = logging.getLogger()
        files += [h for h in root.handlers if isinstance(h, QuietFileHandler)]
        assert len(files) == 2  # combined.log and error.log
        for file in files:
            fill_the_disk(file)
        log = logging.getLogger("test.full_disk.suite")
        for n in range(100):
            log.error("lead %d stored", n)
    finally:
        for file in files:
            free_the_disk(file)
        close_logging()
        for handler in saved:
            logging.getLogger().addHandler(handler)
    err = capsys.readouterr().err.splitlines()
    notices = [line for line in err if line.startswith("ia-comercial: cannot write the log file")]
    assert len(notices) == 1
    assert sum("lead" in line and "stored" in line for line in err) == 100  # stderr still has them
    assert not any("Logging error" in line or "Traceback" in line for line in err)
