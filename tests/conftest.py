"""Shared test harness: settings in a temporary folder, the suite in-process, system deps."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
import trio
from quart import Quart

from sales.business import load_business
from sales.settings import Settings, load_settings
from store.backends import PostgresStore, SqliteStore, Store
from store.db import Database, open_database
from supervisor.startup import load_rules
from supervisor.suite import Suite
from tests.fakes.graph_server import FakeGraph, serve_graph
from tests.fakes.openai_server import FakeOpenAI, serve_fake
from tests.repo_guard import snapshot, written

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
KNOWN_SECRET = "sk-test-KNOWN-SECRET-0123456789abcdef"


def require_system(path: str, package: str) -> str:
    """The path of a Debian-provided program, or skip (fail under REQUIRE_SYSTEM_DEPS=1)."""
    if Path(path).exists() or shutil.which(path):
        return path
    reason = f"needs Debian package {package!r} ({path} not found); apt-get install {package}"
    if os.environ.get("REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@functools.cache
def _postgres_problem() -> str | None:
    """Why no PostgreSQL server answers at TEST_DATABASE_URL (asked once per run)."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return None


def require_postgres() -> str:
    """TEST_DATABASE_URL when a PostgreSQL server answers there, or skip (fail under
    REQUIRE_SYSTEM_DEPS=1, where .ci/run has started one)."""
    problem = _postgres_problem()
    if problem is not None:
        reason = (
            f"needs a PostgreSQL server at TEST_DATABASE_URL={POSTGRES_URL} ({problem});"
            " .ci/run starts one"
        )
        if os.environ.get("REQUIRE_SYSTEM_DEPS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES_URL


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections see only a new schema of their own, dropped after: tests
    are independent and may run in parallel on one server."""
    base = require_postgres()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def fresh_store_and_env(
    backend: str, tmp_path: Path, pool_size: int = 4
) -> Iterator[tuple[Store, dict[str, str]]]:
    """A fresh, migrated store on `backend`, closed after, and the environment that points
    a CLI or a suite at it (DATABASE_PATH is `make_settings`'s and the CLI helpers')."""
    if backend == "sqlite":
        sqlite = SqliteStore(open_database(tmp_path / "db" / "leads.db"))
        try:
            yield sqlite, {}
        finally:
            sqlite.close()
        return
    with postgres_schema() as url:
        postgres = PostgresStore.open(url, pool_size=pool_size)
        try:
            yield postgres, {"DATABASE_URL": url}
        finally:
            postgres.close()


@contextmanager
def open_test_store(backend: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated store on `backend`, closed after."""
    with fresh_store_and_env(backend, tmp_path) as (store, _env):
        yield store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on each backend in turn: SQLite, then PostgreSQL."""
    with open_test_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def db(store: Store) -> Iterator[Database]:
    """One connection of `store` for the whole test."""
    with store.connection() as connection:
        yield connection


def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "HOST": "127.0.0.1",
        "PORT": "0",
        "DATABASE_PATH": str(tmp_path / "db" / "leads.db"),
        "LOG_DIR": str(tmp_path / "logs"),
        # Relative by default (db/backups): a suite whose clock passes BACKUP_TIME would
        # otherwise leave backups, with test leads in them, in the repository.
        "BACKUP_DIR": str(tmp_path / "db" / "backups"),
        "BUSINESS_CONFIG": str(ROOT / "config" / "business.json"),
        "SYSTEM_PROMPT_PATH": str(ROOT / "prompts" / "systemPrompt.txt"),
        # Off unless a test is about it: it would otherwise depend on the hour tests run.
        "DAILY_SUMMARY_AT": "off",
        # Health notices to operations only where a test is about them (tests/ingress/
        # test_ops_notices.py): others would find an extra e-mail in their fake SMTP.
        "OPS_CHECK_INTERVAL": "600",
    }
    return load_settings({**base, **env}, env_file=tmp_path / "no.env")


@asynccontextmanager
async def running_suite(settings: Settings) -> AsyncIterator[tuple[Suite, httpx.AsyncClient]]:
    business = load_business(settings.business_config)
    rules = load_rules(settings.system_prompt_path)
    async with trio.open_nursery() as nursery:
        suite: Suite = await nursery.start(Suite(settings, business, rules).run)
        async with httpx.AsyncClient(base_url=suite.url, timeout=30) as client:
            try:
                yield suite, client
            finally:
                suite.shutdown()


def suite_app(suite: Suite) -> Quart:
    """The running suite's web app as its ingress builds it (to walk its routes)."""
    from actors.ingress.app import create_app
    from actors.ingress.context import IngressContext

    assert suite.db is not None
    return create_app(
        IngressContext(
            suite.settings, suite.db, suite.business, suite.channels.inbound_messages.send, suite
        )
    )


async def wait_for(predicate: Callable[[], object], seconds: float = 10) -> None:
    """Liveness: `predicate` becomes true within `seconds` (generous; not a speed bound)."""
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.05)


@pytest.fixture(scope="session", autouse=True)
def repository_untouched() -> Iterator[None]:
    """`make test` writes only in temporary folders: a database, backup or log that a test
    leaves in the repository fails the run. REPO_WRITE_GUARD=strict also counts edits to
    source files (for CI, where nobody edits during the run), =0 turns the guard off;
    UPDATE_SCREENSHOTS=1 may write docs/."""
    mode = os.environ.get("REPO_WRITE_GUARD", "")
    if mode == "0":
        yield
        return
    root = Path(os.environ.get("REPO_GUARD_ROOT") or ROOT)  # another root: the guard's test
    before = snapshot(root)
    yield
    allowed = ("docs/",) if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ()
    if leaked := written(before, snapshot(root), allowed, strict=mode == "strict"):
        shown = "\n  ".join(leaked[:20]) + ("\n  ..." if len(leaked) > 20 else "")
        pytest.fail(
            f"the tests wrote into the repository {root} (point them at tmp_path):\n  {shown}",
            pytrace=False,
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def fake_llm(nursery: trio.Nursery) -> FakeOpenAI:
    return await serve_fake(nursery, FakeOpenAI())


@pytest.fixture
async def fake_graph(nursery: trio.Nursery) -> FakeGraph:
    return await serve_graph(nursery, FakeGraph())
