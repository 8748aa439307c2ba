"""Logging: JSON lines to `combined.log` and `error.log` (size-rotated), readable lines on
stderr for journald. Every formatter redacts secrets, so no API key or token reaches a line,
not even inside a traceback.

A log file that cannot be written (a full disk, a read-only mount) costs no record and prints
no traceback per record: the lines still reach stderr, and stderr says at most once a minute
that the file failed and why."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

MEGABYTES = 1024 * 1024
LOG_FILE_MAX_BYTES = 10 * MEGABYTES
LOG_FILE_BACKUPS = 5
REDACTED = "[REDACTED]"
SECONDS = 1.0
FILE_FAILURE_NOTICE_INTERVAL = 60 * SECONDS  # stderr hears of a failing log file this often

# Shapes of credentials that must go even when we were not told their value.
_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{12,})"  # OpenAI-style keys
    r"|((?<=Bearer )[A-Za-z0-9._\-]{12,})"  # bearer tokens
    r"|(EAA[A-Za-z0-9]{20,})"  # Meta access tokens
)
# Fields a record may carry as structured context (`extra={"ctx": {...}}`).
CONTEXT_FIELD = "ctx"
# A worker's JSON line, as its parent received it (see `forward`).
FORWARDED_FIELD = "forwarded_line"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


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
    def __init__(self, redact: Redactor, worker: str | None = None) -> None:
        super().__init__()
        self.redact = redact
        self.worker = worker  # `node/N` on each line, under WORKERS=N

    def format(self, record: logging.LogRecord) -> str:
        forwarded = getattr(record, FORWARDED_FIELD, None)
        if isinstance(forwarded, str):
            return forwarded  # a worker's line, redacted and formatted there
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        context = getattr(record, CONTEXT_FIELD, None)
        if isinstance(context, dict):
            entry.update(context)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


class ReadableFormatter(logging.Formatter):
    def __init__(self, redact: Redactor, worker: str | None = None) -> None:
        prefix = f"[{worker}] " if worker else ""
        super().__init__(prefix + "%(levelname)-7s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = getattr(record, CONTEXT_FIELD, None)
        if isinstance(context, dict) and context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return self.redact(line)


class FileFailures:
    """What the log files' failures have been: counted, and told on stderr at most once per
    `FILE_FAILURE_NOTICE_INTERVAL` (`clock` in seconds, monotonic)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        stream: Callable[[], TextIO] = lambda: sys.stderr,
    ) -> None:
        self.clock = clock
        self.stream = stream
        self.count = 0
        self.last_reason: str | None = None
        self.last_at: float | None = None  # by `clock`
        self._told_at: float | None = None

    def failed(self, path: str, exc: BaseException | None) -> None:
        now = self.clock()
        self.count += 1
        self.last_reason = _reason(exc)
        self.last_at = now
        if self._told_at is not None and now - self._told_at < FILE_FAILURE_NOTICE_INTERVAL:
            return
        self._told_at = now
        with contextlib.suppress(OSError, ValueError):  # stderr gone too: nobody to tell
            stream = self.stream()
            stream.write(
                f"ia-comercial: cannot write the log file {path} ({self.last_reason});"
                " log lines go to stderr only until it works again"
                f" (said at most once a minute; {self.count} failed so far)\n"
            )
            stream.flush()

    def recent(self, within: float = FILE_FAILURE_NOTICE_INTERVAL) -> str | None:
        """The reason of a failure within `within` seconds, else None (for health)."""
        if self.last_at is None or self.clock() - self.last_at > within:
            return None
        return self.last_reason


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__ if exc is not None else "unknown error"


# The process's log files (one set per process, like the root logger they serve).
file_failures = FileFailures()


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A rotated log file whose write errors go to `FileFailures` instead of printing a
    "--- Logging error ---" traceback for every record."""

    def __init__(self, path: Path, failures: FileFailures) -> None:
        super().__init__(
            path, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        self.failures = failures

    def handleError(self, record: logging.LogRecord) -> None:
        self.failures.failed(self.baseFilename, sys.exc_info()[1])


def setup_logging(
    log_dir: Path,
    level: str = "INFO",
    secrets: Iterable[str] = (),
    failures: FileFailures | None = None,
) -> None:
    """Configure the root logger once for the process (idempotent: replaces our handlers).
    Raises OSError when the folder or a file cannot be created at all."""
    redact = Redactor(secrets)
    failures = file_failures if failures is None else failures
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    close_logging()
    root.setLevel(level)

    combined = QuietFileHandler(log_dir / "combined.log", failures)
    combined.setFormatter(JsonFormatter(redact))
    errors = QuietFileHandler(log_dir / "error.log", failures)
    errors.setLevel(logging.ERROR)
    errors.setFormatter(JsonFormatter(redact))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(ReadableFormatter(redact))
    # A worker's lines reached stderr (the journal) from the worker itself.
    console.addFilter(lambda record: not hasattr(record, FORWARDED_FIELD))
    for handler in (combined, errors, console):
        root.addHandler(handler)
    _quiet_third_parties()


def setup_worker_logging(
    worker: str, level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """A worker under `WORKERS=N`: JSON lines to its parent on `stream` (stdout), which
    writes them to the log files (one writer, so one rotation); readable lines on stderr."""
    redact = Redactor(secrets)
    root = logging.getLogger()
    close_logging()
    root.setLevel(level)
    to_parent = _ToParent(sys.stdout if stream is None else stream)
    to_parent.setFormatter(JsonFormatter(redact, worker))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(ReadableFormatter(redact, worker))
    for handler in (to_parent, console):
        root.addHandler(handler)
    _quiet_third_parties()


class _ToParent(logging.StreamHandler):  # type: ignore[type-arg]
    """A worker's pipe to its parent: once the parent is gone the lines still reach stderr,
    and the broken pipe prints no traceback per record."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def forward(line: str) -> None:
    """A worker's JSON log line into this process's files (error.log too at error and
    above). A line that is not ours (something printed) is logged as text."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        entry = None
    if not isinstance(entry, dict):
        logging.getLogger("worker").info("%s", line)
        return
    level = LEVELS.get(str(entry.get("level")), logging.INFO)
    record = logging.LogRecord(str(entry.get("logger", "worker")), level, "", 0, "", (), None)
    setattr(record, FORWARDED_FIELD, line)
    logging.getLogger().handle(record)


def _quiet_third_parties() -> None:
    """Third-party chatter that would log request URLs or headers at INFO."""
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)


def close_logging() -> None:
    """Remove and close every root handler (files flushed and closed)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
