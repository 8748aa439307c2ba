"""Settings from the environment and a `.env` file.

The environment wins over `.env`; the original Node.js system's variable names are accepted as
aliases so a business can keep the `.env` it had. Every problem is reported with the variable
name and a reason, never with a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from store.postgres import location

from .errors import ConfigProblem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECONDS = 1.0

# Our name -> the original system's names that mean the same thing.
ALIASES: dict[str, tuple[str, ...]] = {
    "DATABASE_PATH": ("DB_PATH",),
    "OPENAI_BASE_URL": ("OPENAI_API_BASE",),
    "BUSINESS_CONFIG": ("BUSINESS_CONFIG_PATH",),
    "LOG_LEVEL": ("LOGLEVEL",),
    "WHATSAPP_ACCESS_TOKEN": ("WHATSAPP_API_TOKEN", "WHATSAPP_TOKEN"),
    "META_APP_SECRET": ("APP_SECRET", "FACEBOOK_APP_SECRET"),
    "INSTAGRAM_ACCESS_TOKEN": ("INSTAGRAM_TOKEN", "INSTAGRAM_PAGE_ACCESS_TOKEN"),
    "SMTP_USER": ("EMAIL_USER",),
    "SMTP_PASSWORD": ("EMAIL_PASS", "EMAIL_PASSWORD"),
    # Ours before the limit adapted: a fixed cap someone set stays a cap.
    "LLM_MAX_CONCURRENCY": ("LLM_CONCURRENCY",),
}
GMAIL_HOST = "smtp.gmail.com"
# Settings a process is given by its parent, never read from the environment or .env.
NOT_FROM_ENVIRONMENT = ("listen_fd",)
MAX_WORKERS = 64
SMTP_SECURITY = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class Settings:
    """Everything the suite reads from its environment, typed and defaulted."""

    host: str = "127.0.0.1"
    port: int = 3000
    # Worker processes on this server (`WORKERS`, `auto`: one per core), each the whole suite
    # on one shared listening socket, under a parent supervisor.
    workers: int = 1
    database_path: Path = Path("db/leads.db")
    # postgresql://user:password@host:port/db: the store on PostgreSQL instead of the file.
    database_url: str | None = None
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    backup_dir: Path = Path("db/backups")
    business_config: Path = Path("config/business.json")
    system_prompt_path: Path = Path("prompts/systemPrompt.txt")
    public_dir: Path = PROJECT_ROOT / "public"
    openai_api_key: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout: float = 30 * SECONDS
    openai_max_retries: int = 3
    openai_temperature: float = 0.7
    openai_max_tokens: int = 500
    llm_max_concurrency: int = 512  # the model gate's ceiling; it starts lower and adapts
    history_max_tokens: int = 6000
    failpoints: str = ""
    meta_app_secret: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_verify_token: str | None = None
    instagram_access_token: str | None = None
    instagram_account_id: str | None = None
    instagram_verify_token: str | None = None
    meta_graph_url: str = "https://graph.facebook.com/v21.0"
    instagram_graph_url: str = "https://graph.instagram.com/v21.0"
    debounce_seconds: float = 2 * SECONDS
    owner_email: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    email_from: str | None = None
    webhook_url: str | None = None
    whatsapp_followup_template: str | None = None
    whatsapp_template_language: str = "es"
    whatsapp_template_params: tuple[str, ...] = ()
    scheduler_interval: float = 60 * SECONDS
    # The notifier looks at the outbox and the owner's notifications this often even without
    # a notice (notices wake it at once): what a lost notice waits at most.
    notifier_poll_interval: float = 1 * SECONDS
    daily_summary_at: str | None = "08:00"  # business time; None: no daily summary
    backup_time: str | None = "03:00"  # business time; None: no scheduled backup
    backup_keep_days: int = 7
    disk_min_free_mb: int = 200  # less free on the database's disk: /health/detailed degraded
    metrics_token: str | None = None
    # Who hears when /health/detailed turns degraded or failing, and when it recovers (None:
    # the owner's OWNER_EMAIL / WEBHOOK_URL); how often it is evaluated; the least time
    # between two notices of one process.
    ops_email: str | None = None
    ops_webhook_url: str | None = None
    ops_check_interval: float = 30 * SECONDS
    ops_notice_min_interval: float = 15 * 60 * SECONDS
    # The model's price in USD per million tokens (gpt-4o-mini's list price by default), for
    # ia_llm_cost_usd_total.
    llm_price_input_per_mtok: float = 0.15
    llm_price_output_per_mtok: float = 0.60
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks allowed to set X-Forwarded-*
    admin_password: str | None = None
    admin_password_hash: str | None = None  # argon2, from `ia-comercial hash-password`
    session_idle: float = 30 * 60 * SECONDS
    session_max: float = 12 * 3600 * SECONDS
    demo_mode: bool = False  # a public demo server: /demo and /api/simulate without a login
    # Sites that may embed the chat (widget.js) and call the chat API from the browser.
    allowed_origins: tuple[str, ...] = ()
    # Not read from the environment: a worker's listening socket, inherited from its parent
    # under WORKERS=N (supervisor/workers.py).
    listen_fd: int | None = None

    @property
    def offline(self) -> bool:
        return not self.openai_api_key

    @property
    def chat_timeout(self) -> float:
        """How long a web chat request may wait: the LLM budget plus time to store and answer."""
        return self.openai_timeout + 5 * SECONDS

    @property
    def whatsapp_configured(self) -> bool:
        return bool(self.whatsapp_access_token and self.whatsapp_phone_number_id)

    @property
    def instagram_configured(self) -> bool:
        return bool(self.instagram_access_token)

    @property
    def admin_configured(self) -> bool:
        return bool(self.admin_password or self.admin_password_hash)

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def sender(self) -> str:
        return self.email_from or self.smtp_user or "ia-comercial@localhost"

    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line, a health answer or an error."""
        candidates = (
            self.openai_api_key,
            self.meta_app_secret,
            self.whatsapp_access_token,
            self.whatsapp_verify_token,
            self.instagram_access_token,
            self.instagram_verify_token,
            self.smtp_password,
            self.webhook_url,  # Slack and similar put their key in the URL
            self.metrics_token,
            self.ops_webhook_url,
            self.admin_password,
            self.admin_password_hash,
            self.database_url,
            database_password(self.database_url),
        )
        return tuple(s for s in candidates if s)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> Settings:
    """Read settings; raise `ConfigProblem` listing every bad variable at once."""
    environ = os.environ if environ is None else environ
    env_path = env_file if env_file is not None else Path(".env")
    from_file: dict[str, str] = {}
    if env_path.is_file():
        from_file = {k: v for k, v in dotenv_values(env_path).items() if v is not None}
    merged = {**from_file, **environ}
    reader = _Reader(merged, str(env_path) if from_file else "environment")
    smtp = _smtp(reader)
    # Read in this order (arguments are evaluated left to right): problems are listed so.
    settings = Settings(
        **_server(reader),
        **_model(reader),
        **_channels(reader),
        **_owner_alerts(reader, smtp),
        **_schedules(reader),
        **_monitoring(reader),
        **_access(reader),
    )
    if reader.problems:
        raise ConfigProblem(reader.problems)
    return settings


def _server(reader: _Reader) -> dict[str, Any]:
    return {
        "host": reader.text("HOST", "127.0.0.1"),
        "port": reader.integer("PORT", 3000, low=0, high=65535),
        "workers": reader.workers("WORKERS"),
        "database_path": reader.path("DATABASE_PATH", Path("db/leads.db")),
        "database_url": reader.postgres_url("DATABASE_URL"),
        "log_dir": reader.path("LOG_DIR", Path("logs")),
        "log_level": reader.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        "backup_dir": reader.path("BACKUP_DIR", Path("db/backups")),
        "business_config": reader.path("BUSINESS_CONFIG", Path("config/business.json")),
        "system_prompt_path": reader.path("SYSTEM_PROMPT_PATH", Path("prompts/systemPrompt.txt")),
        "public_dir": reader.path("PUBLIC_DIR", PROJECT_ROOT / "public"),
    }


def _model(reader: _Reader) -> dict[str, Any]:
    return {
        "openai_api_key": reader.optional("OPENAI_API_KEY"),
        "openai_model": reader.text("OPENAI_MODEL", "gpt-4o-mini"),
        "openai_base_url": reader.optional("OPENAI_BASE_URL"),
        "openai_timeout": reader.duration("OPENAI_TIMEOUT", 30 * SECONDS),
        "openai_max_retries": reader.integer("OPENAI_MAX_RETRIES", 3, low=1, high=10),
        "openai_temperature": reader.number("OPENAI_TEMPERATURE", 0.7, low=0.0, high=2.0),
        "openai_max_tokens": reader.integer("OPENAI_MAX_TOKENS", 500, low=16, high=16384),
        # The OpenAI client keeps at most 1,000 connections: a higher limit would queue there.
        "llm_max_concurrency": reader.integer("LLM_MAX_CONCURRENCY", 512, low=1, high=1000),
        "history_max_tokens": reader.integer("HISTORY_MAX_TOKENS", 6000, low=200, high=200_000),
        "failpoints": reader.text("IA_FAILPOINTS", ""),
    }


def _channels(reader: _Reader) -> dict[str, Any]:
    return {
        "meta_app_secret": reader.optional("META_APP_SECRET"),
        "whatsapp_access_token": reader.optional("WHATSAPP_ACCESS_TOKEN"),
        "whatsapp_phone_number_id": reader.optional("WHATSAPP_PHONE_NUMBER_ID"),
        "whatsapp_verify_token": reader.optional("WHATSAPP_VERIFY_TOKEN"),
        "instagram_access_token": reader.optional("INSTAGRAM_ACCESS_TOKEN"),
        "instagram_account_id": reader.optional("INSTAGRAM_ACCOUNT_ID"),
        "instagram_verify_token": reader.optional("INSTAGRAM_VERIFY_TOKEN"),
        "meta_graph_url": reader.url("META_GRAPH_URL", "https://graph.facebook.com/v21.0"),
        "instagram_graph_url": reader.url(
            "INSTAGRAM_GRAPH_URL", "https://graph.instagram.com/v21.0"
        ),
        "debounce_seconds": reader.duration("DEBOUNCE_SECONDS", 2 * SECONDS, low=0),
    }


def _owner_alerts(reader: _Reader, smtp: tuple[str | None, int, str]) -> dict[str, Any]:
    host, default_port, security = smtp
    return {
        "owner_email": reader.email("OWNER_EMAIL"),
        "smtp_host": host,
        "smtp_port": reader.integer("SMTP_PORT", default_port, low=1, high=65535),
        "smtp_security": security,
        "smtp_user": reader.optional("SMTP_USER"),
        "smtp_password": reader.optional("SMTP_PASSWORD"),
        "email_from": reader.email("EMAIL_FROM"),
        "webhook_url": reader.optional_url("WEBHOOK_URL"),
    }


def _schedules(reader: _Reader) -> dict[str, Any]:
    """Follow-ups, the daily summary, backups, and what health and metrics watch."""
    return {
        "whatsapp_followup_template": reader.optional("WHATSAPP_FOLLOWUP_TEMPLATE"),
        "whatsapp_template_language": reader.text("WHATSAPP_TEMPLATE_LANGUAGE", "es"),
        "whatsapp_template_params": reader.names(
            "WHATSAPP_TEMPLATE_PARAMS", ("nombre", "servicio", "negocio")
        ),
        "scheduler_interval": reader.duration("SCHEDULER_INTERVAL", 60 * SECONDS, low=0.05),
        "notifier_poll_interval": reader.duration("NOTIFIER_POLL_INTERVAL", 1 * SECONDS),
        "daily_summary_at": reader.time_or_off("DAILY_SUMMARY_AT", "08:00"),
        "backup_time": reader.time_or_off("BACKUP_TIME", "03:00"),
        "backup_keep_days": reader.integer("BACKUP_KEEP_DAYS", 7, low=1, high=3650),
        "disk_min_free_mb": reader.integer("DISK_MIN_FREE_MB", 200, low=0, high=100_000_000),
    }


def _monitoring(reader: _Reader) -> dict[str, Any]:
    """What /metrics prices and guards, and who is told when the suite degrades."""
    return {
        "metrics_token": reader.optional("METRICS_TOKEN"),
        "llm_price_input_per_mtok": reader.number(
            "LLM_PRICE_INPUT_PER_MTOK", 0.15, low=0.0, high=10_000.0
        ),
        "llm_price_output_per_mtok": reader.number(
            "LLM_PRICE_OUTPUT_PER_MTOK", 0.60, low=0.0, high=10_000.0
        ),
        "ops_email": reader.email("OPS_EMAIL"),
        "ops_webhook_url": reader.optional_url("OPS_WEBHOOK_URL"),
        "ops_check_interval": reader.duration("OPS_CHECK_INTERVAL", 30 * SECONDS, low=0.05),
        "ops_notice_min_interval": reader.number(
            "OPS_NOTICE_MIN_INTERVAL", 15 * 60 * SECONDS, low=0.0, high=7 * 24 * 3600.0
        ),
    }


def _access(reader: _Reader) -> dict[str, Any]:
    """Who may reach what: proxies, the dashboard's password and sessions, the demo, CORS."""
    return {
        "trusted_proxies": reader.networks("TRUSTED_PROXIES"),
        "admin_password": reader.optional("ADMIN_PASSWORD"),
        "admin_password_hash": reader.argon2_hash("ADMIN_PASSWORD_HASH"),
        "session_idle": reader.minutes("SESSION_IDLE_MINUTES", 30),
        "session_max": reader.minutes("SESSION_MAX_MINUTES", 12 * 60),
        "demo_mode": reader.flag("DEMO_MODE", False),
        "allowed_origins": reader.origins("ALLOWED_ORIGINS"),
    }


def _smtp(reader: _Reader) -> tuple[str | None, int, str]:
    """Host, default port and security. The original's `EMAIL_SERVICE=gmail` (its default
    when only EMAIL_USER was set) means Gmail over STARTTLS with an app password; its
    `SMTP_SECURE=true` means SSL."""
    host = reader.optional("SMTP_HOST")
    service = (reader.optional("EMAIL_SERVICE") or "").lower()
    if host is None and (service == "gmail" or (not service and reader.optional("SMTP_USER"))):
        host = GMAIL_HOST
    security = reader.choice_lower("SMTP_SECURITY", "", SMTP_SECURITY)
    if not security:
        secure = (reader.optional("SMTP_SECURE") or "").lower()
        security = "ssl" if secure in ("true", "1", "yes") else "starttls"
    return host, 465 if security == "ssl" else 587, security


_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _postgres_url_problem(raw: str) -> str | None:
    """What is wrong with a DATABASE_URL, in words that never repeat it; None when nothing."""
    shape = "must be a postgresql://user:password@host:port/database URL"
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises for a port that is not a number or out of range
    except ValueError:
        return f"{shape} (its host or port cannot be read; the port is 1-65535)"
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        return shape
    if port == 0:
        return "its port must be 1-65535"
    if re.search(r"(^|&)password=", parts.query):
        return "put the password in the URL's user part (user:password@host), not in ?password="
    return None


def database_password(url: str | None) -> str | None:
    """The password inside a DATABASE_URL (as the server gets it), to keep it out of logs."""
    return location(url).password if url else None


def web_origin(text: str) -> str | None:
    """`text` as the browser writes the origin (`https://www.example.cl`, lower case, no
    default port, no trailing slash), or None when it is not one. Exact origins only: no
    wildcard, since a CORS answer names the one origin it allows."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if (
        parts.scheme not in _DEFAULT_PORTS
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "?" in text
        or "#" in text
    ):
        return None
    if ":" in host:  # IPv6, written in brackets
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        host = f"[{host}]"
    elif not _HOSTNAME.fullmatch(host):
        return None
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_PLACEHOLDER_KEY = re.compile(r"^(tu_|your_|sk-\.\.\.|changeme)", re.IGNORECASE)


class _Reader:
    """Reads one variable at a time, collecting problems instead of stopping at the first."""

    def __init__(self, values: Mapping[str, str], source: str) -> None:
        self.values = values
        self.source = source
        self.problems: list[tuple[str, str, str]] = []

    def _raw(self, name: str) -> str | None:
        for candidate in (name, *ALIASES.get(name, ())):
            value = self.values.get(candidate)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    def _problem(self, name: str, reason: str) -> None:
        self.problems.append((self.source, name, reason))

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def optional(self, name: str) -> str | None:
        value = self._raw(name)
        # The original's .env.example shipped "tu_clave_de_openai_aqui": treat it as unset.
        if value is None or _PLACEHOLDER_KEY.match(value):
            return None
        return value

    def path(self, name: str, default: Path) -> Path:
        raw = self._raw(name)
        return Path(raw) if raw else default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.upper() not in allowed:
            self._problem(name, f"must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return raw.upper()

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self._problem(name, f"must be a whole number, got {raw!r}")
            return default
        if not low <= value <= high:
            self._problem(name, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def workers(self, name: str) -> int:
        """A count of processes, or `auto`: one per core this process may run on."""
        raw = self._raw(name)
        if raw is not None and raw.lower() == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        if raw is not None and not raw.isdigit():
            self._problem(name, f"must be a number of processes or auto, got {raw!r}")
            return 1
        return self.integer(name, 1, low=1, high=MAX_WORKERS)

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._problem(name, f"must be a number, got {raw!r}")
            return default
        if not low <= value <= high:
            self._problem(name, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def choice_lower(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in allowed:
            self._problem(name, f"must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return raw.lower()

    def email(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", raw):
            self._problem(name, f"must be an e-mail address, got {raw!r}")
            return None
        return raw

    def postgres_url(self, name: str) -> str | None:
        """A postgresql:// URL; its problems are said without echoing it (it holds a
        password)."""
        raw = self._raw(name)
        if raw is None:
            return None
        problem = _postgres_url_problem(raw)
        if problem is not None:
            self._problem(name, problem)
            return None
        return raw

    def optional_url(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is not None and not re.match(r"^https?://[^\s/]+", raw):
            # The value may hold a key (Slack puts one in the path): never echo it.
            self._problem(name, "must be an http(s) URL")
            return None
        return raw

    def time_or_off(self, name: str, default: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in ("off", "no", "false", "0"):
            return None
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", raw):
            self._problem(name, f"must be a time HH:MM or off, got {raw!r}")
            return default
        return raw

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        self._problem(name, f"must be 1 or 0 (true/false), got {raw!r}")
        return default

    def argon2_hash(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is not None and not raw.startswith("$argon2"):
            self._problem(name, "must be an argon2 hash (ia-comercial hash-password makes one)")
            return None
        return raw

    def minutes(self, name: str, default: int) -> float:
        return 60.0 * self.integer(name, default, low=1, high=60 * 24 * 30)

    def networks(self, name: str) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        items = tuple(p.strip() for p in raw.split(",") if p.strip())
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                self._problem(name, f"{item!r} is not an IP address or network")
                return ()
        return items

    def origins(self, name: str) -> tuple[str, ...]:
        """Comma-separated web origins, each as a browser sends it in `Origin`."""
        raw = self._raw(name)
        if raw is None:
            return ()
        found: list[str] = []
        for item in (p.strip() for p in raw.split(",") if p.strip()):
            origin = web_origin(item)
            if origin is None:
                self._problem(
                    name,
                    f"{item!r} is not an origin such as https://www.example.cl"
                    " (http or https, a host, an optional port; no path)",
                )
                return ()
            found.append(origin)
        return tuple(dict.fromkeys(found))

    def names(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        items = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
        unknown = [p for p in items if p not in allowed]
        if unknown:
            self._problem(name, f"unknown field(s) {', '.join(unknown)}; use {', '.join(allowed)}")
            return ()
        return items

    def url(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if not re.match(r"^https?://[^\s/]+", raw):
            self._problem(name, f"must be an http(s) URL, got {raw!r}")
            return default
        return raw.rstrip("/")

    def duration(self, name: str, default: float, *, low: float = 0.05) -> float:
        """Seconds: "30", "30s", "1.5" or "30000ms". A bare number of 1000 or more is read as
        milliseconds, the unit the original system used for the same variable."""
        raw = self._raw(name)
        if raw is None:
            return default
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s)?", raw)
        if not match:
            self._problem(name, f"must be a duration such as 30, 30s or 30000ms, got {raw!r}")
            return default
        value, unit = float(match.group(1)), match.group(2)
        if unit == "ms" or (unit is None and value >= 1000):
            value /= 1000
        if not low <= value <= 600:
            self._problem(name, f"must be between {low:g} s and 600 s, got {value:g} s")
            return default
        return value
