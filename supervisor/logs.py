"""Logging: JSON lines to `combined.log` and `error.log` (size-rotated), readable lines on
stderr for journald. Every formatter redacts secrets, so no API key or token reaches a line,
not even inside a traceback."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

MEGABYTES = 1024 * 1024
LOG_FILE_MAX_BYTES = 10 * MEGABYTES
LOG_FILE_BACKUPS = 5
REDACTED = "[REDACTED]"

# Shapes of credentials that must go even when we were not told their value.
_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{12,})"  # OpenAI-style keys
    r"|((?<=Bearer )[A-Za-z0-9._\-]{12,})"  # bearer tokens
    r"|(EAA[A-Za-z0-9]{20,})"  # Meta access tokens
)
# Fields a record may carry as structured context (`extra={"ctx": {...}}`).
CONTEXT_FIELD = "ctx"


class Redactor:
    """Replaces known secret values and credential-shaped strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _SECRET_SHAPES.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, CONTEXT_FIELD, None)
        if isinstance(context, dict):
            entry.update(context)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


class ReadableFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(levelname)-7s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = getattr(record, CONTEXT_FIELD, None)
        if isinstance(context, dict) and context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return self.redact(line)


def setup_logging(log_dir: Path, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for the process (idempotent: replaces our handlers)."""
    redact = Redactor(secrets)
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    close_logging()
    root.setLevel(level)

    combined = logging.handlers.RotatingFileHandler(
        log_dir / "combined.log",
        maxBytes=LOG_FILE_MAX_BYTES,
        backupCount=LOG_FILE_BACKUPS,
        encoding="utf-8",
    )
    combined.setFormatter(JsonFormatter(redact))
    errors = logging.handlers.RotatingFileHandler(
        log_dir / "error.log",
        maxBytes=LOG_FILE_MAX_BYTES,
        backupCount=LOG_FILE_BACKUPS,
        encoding="utf-8",
    )
    errors.setLevel(logging.ERROR)
    errors.setFormatter(JsonFormatter(redact))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(ReadableFormatter(redact))
    for handler in (combined, errors, console):
        root.addHandler(handler)
    # Third-party chatter that would log request URLs or headers at INFO.
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)


def close_logging() -> None:
    """Remove and close every root handler (files flushed and closed)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
