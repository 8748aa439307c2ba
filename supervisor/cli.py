"""`ia-comercial`: run the suite, or check its configuration."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import gc
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import trio

from sales.business import BusinessConfig
from sales.errors import ConfigProblem
from sales.identity import current as current_identity
from sales.settings import Settings, load_settings
from store import backups, legacy_import, pg_backups, postgres, store_import
from store.backends import CONNECT_TIMEOUT, Store, open_store
from store.backups import BackupError
from store.errors import StoreError

from . import control, logview, workers
from .errors import SupervisorGaveUp
from .logs import setup_logging, setup_worker_logging
from .systemd import SystemdNotifier

if TYPE_CHECKING:
    from .suite import Suite

log = logging.getLogger("cli")

EXIT_OK = 0
EXIT_GAVE_UP = 1
EXIT_CONFIG = 2
EXIT_FAILED = 1
# Each visitor waiting for a reply holds a connection, each call to the model another: a
# burst of 2,000 visitors needs some 2,300 descriptors, past the usual soft limit of 1,024.
OPEN_FILES_WANTED = 65536
PARENT_CHECK_INTERVAL = 1.0  # seconds: how soon a worker sees its parent is gone

E = TypeVar("E", bound=BaseException)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ia-comercial", description="AI sales assistant (a suite of supervised actors)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the suite (HTTP on HOST:PORT)")
    commands.add_parser("check-config", help="validate settings, business.json and the prompt")
    commands.add_parser("backup", help="take a backup now (also while the suite runs)")
    restore = commands.add_parser("restore", help="restore the database from a backup file")
    restore.add_argument(
        "file", type=Path, help="a backup (leads-YYYYMMDD-HHMMSS.db; .dump on PostgreSQL)"
    )
    commands.add_parser("status", help="the running suite's actors, like `pm2 list`")
    restart_actor = commands.add_parser("restart", help="restart one actor of the running suite")
    restart_actor.add_argument(
        "actor", help="store, backup, notifier, classifier, ...; worker-N under WORKERS"
    )
    logs = commands.add_parser("logs", help="show the log files readably, like `pm2 logs`")
    logs.add_argument("--errors", action="store_true", help="error.log only")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (50)")
    legacy = commands.add_parser(
        "import-legacy", help="import the original system's database (leads, conversations)"
    )
    legacy.add_argument("path", type=Path, help="the original's db/leads.db")
    legacy.add_argument("--dry-run", action="store_true", help="only say what would happen")
    moving = commands.add_parser(
        "import-store",
        help="copy a SQLite store of ours into the empty PostgreSQL store at DATABASE_URL",
    )
    moving.add_argument("path", type=Path, help="the SQLite store (db/leads.db)")
    moving.add_argument("--dry-run", action="store_true", help="only count what would be copied")
    hash_password = commands.add_parser(
        "hash-password", help="print an argon2 ADMIN_PASSWORD_HASH for a password read from stdin"
    )
    del hash_password
    args = parser.parse_args(argv)
    if args.command == "import-legacy":
        return cmd_import_legacy(args.path, dry_run=args.dry_run)
    if args.command == "import-store":
        return cmd_import_store(args.path, dry_run=args.dry_run)
    if args.command == "hash-password":
        return cmd_hash_password()
    if args.command == "status":
        return cmd_status()
    if args.command == "restart":
        return cmd_restart(args.actor)
    if args.command == "logs":
        return cmd_logs(errors=args.errors, follow=args.follow, lines=args.lines)
    if args.command == "check-config":
        return cmd_check_config()
    if args.command == "backup":
        return cmd_backup()
    if args.command == "restore":
        return cmd_restore(args.file)
    return cmd_run()


def _settings_only() -> Settings | int:
    try:
        return load_settings()
    except ConfigProblem as exc:
        _print_problems(exc)
        return EXIT_CONFIG


def cmd_backup() -> int:
    settings = _settings_only()
    if isinstance(settings, int):
        return settings
    url = settings.database_url
    if not url and not settings.database_path.exists():
        print(f"ia-comercial: {settings.database_path}: no such database", file=sys.stderr)
        return EXIT_CONFIG
    store = _open_store(settings)  # a file that is no database is told here, not raised
    if isinstance(store, int):
        return store
    try:
        if url:
            result, checked = pg_backups.take(url, settings.backup_dir), "pg_restore --list ok"
        else:
            result = backups.take(settings.database_path, settings.backup_dir)
            checked = "integrity ok"
        with store.connection() as db:
            backups.record(db, result)
    finally:
        store.close()
    return _backup_done(settings, result, checked)


def _backup_done(settings: Settings, result: backups.BackupResult, checked: str) -> int:
    if not result.ok:
        print(f"ia-comercial: backup failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED
    removed = backups.prune(settings.backup_dir, settings.backup_keep_days, datetime.now(UTC))
    print(
        f"backup {result.path} ({result.size_bytes} bytes, {result.duration_ms} ms,"
        f" {checked}); {len(removed)} old backup(s) removed"
    )
    return EXIT_OK


def _ask(message: dict[str, object], worker: int | None = None) -> dict[str, object] | int:
    """Ask a running suite: this worker's (IA_COMERCIAL_WORKER, else 1), `worker`'s, or with
    `worker=0` the parent of the workers."""
    settings = _settings_only()
    if isinstance(settings, int):
        return settings
    number = current_identity().worker if worker is None else worker
    path = (
        control.parent_socket_path(settings.database_path)
        if number == 0
        else control.socket_path(settings.database_path, number)
    )
    try:
        return control.request(path, message)
    except control.NotRunning as exc:
        print(f"ia-comercial: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _parent_status() -> dict[str, object] | None:
    """The parent's answer when this node runs WORKERS above 1, else None."""
    settings = _settings_only()
    if isinstance(settings, int):
        return None
    path = control.parent_socket_path(settings.database_path)
    try:
        return control.request(path, {"command": "status"})
    except control.NotRunning:
        return None


def cmd_status() -> int:
    """The actors, like `pm2 list`; under WORKERS=N every worker and its actors."""
    parent = _parent_status()
    if parent is None:
        answer = _ask({"command": "status"})
        if isinstance(answer, int):
            return answer
        _print_actors(answer)
        return EXIT_OK
    rows = parent.get("actors")
    pids = parent.get("pids")
    assert isinstance(rows, list) and isinstance(pids, dict)
    print(
        f"ia-comercial {parent.get('version')}  {len(rows)} workers  parent pid"
        f" {parent.get('pid')}  since {parent.get('startedAt')}"
    )
    print(f"{'worker':<14}{'pid':>8}  {'state':<13}{'restarts':>9}  {'uptime':>10}  last error")
    for row in rows:
        print(
            f"{row['name']:<14}{pids.get(row['name']) or '—':>8}  {row['state']:<13}"
            f"{row['restarts']:>9}  {_uptime(row):>10}  {row['lastError'] or '—'}"
        )
    for row in rows:
        number = int(str(row["name"]).removeprefix("worker-"))
        print(f"\n{row['name']}")
        answer = _ask({"command": "status"}, worker=number)
        if not isinstance(answer, int):
            _print_actors(answer, heading=False)
    return EXIT_OK


def _print_actors(answer: dict[str, object], *, heading: bool = True) -> None:
    rows = answer.get("actors")
    assert isinstance(rows, list)
    if heading:
        version, pid, since = answer.get("version"), answer.get("pid"), answer.get("startedAt")
        print(f"ia-comercial {version}  pid {pid}  since {since}")
    print(f"{'actor':<14}{'state':<13}{'restarts':>9}  {'uptime':>10}  last error")
    for row in rows:
        print(
            f"{row['name']:<14}{row['state']:<13}{row['restarts']:>9}  {_uptime(row):>10}"
            f"  {row['lastError'] or '—'}"
        )


def _uptime(row: dict[str, object]) -> str:
    uptime = row["uptimeSeconds"]
    return "—" if uptime is None else _duration(float(str(uptime)))


def cmd_restart(actor: str) -> int:
    """One actor of this worker, or under WORKERS=N a whole worker (`worker-2`)."""
    worker = 0 if actor.startswith("worker-") else None
    answer = _ask({"command": "restart", "actor": actor}, worker=worker)
    if isinstance(answer, int):
        return answer
    if not answer.get("ok"):
        print(f"ia-comercial: {answer.get('error')}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{actor} restarted")
    return EXIT_OK


def cmd_logs(*, errors: bool, follow: bool, lines: int) -> int:
    settings = _settings_only()
    if isinstance(settings, int):
        return settings
    path = settings.log_dir / ("error.log" if errors else "combined.log")
    if not path.exists():
        print(f"ia-comercial: {path}: no log yet", file=sys.stderr)
        return EXIT_FAILED
    try:
        for line in logview.tail(path, lines):
            print(logview.readable(line), flush=True)
        if follow:
            for line in logview.follow(path):
                print(logview.readable(line), flush=True)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def cmd_import_legacy(path: Path, *, dry_run: bool) -> int:
    settings = _settings_only()
    if isinstance(settings, int):
        return settings
    store = _open_store(settings)
    if isinstance(store, int):
        return store
    try:
        with store.connection() as db:
            report = legacy_import.import_legacy(db, path, dry_run=dry_run)
    except legacy_import.LegacyError as exc:
        print(f"ia-comercial: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"ia-comercial: store {store.location}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    print(("dry run, nothing written: " if dry_run else "") + f"from {path}")
    for line in report.lines():
        print(f"  {line}")
    return EXIT_OK


def cmd_import_store(path: Path, *, dry_run: bool) -> int:
    """Move the SQLite store at `path` into the PostgreSQL store at DATABASE_URL."""
    settings = _settings_only()
    if isinstance(settings, int):
        return settings
    if not settings.database_url:
        print(
            "ia-comercial: import-store copies into PostgreSQL: set DATABASE_URL", file=sys.stderr
        )
        return EXIT_CONFIG
    store = _open_store(settings)
    if isinstance(store, int):
        return store
    try:
        with store.connection() as db:
            assert isinstance(db, postgres.PostgresDatabase)
            report = store_import.import_store(db, path, dry_run=dry_run)
    except store_import.StoreImportError as exc:
        print(f"ia-comercial: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"ia-comercial: store {store.location}: {exc}; nothing was written", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    print(("dry run, nothing written: " if dry_run else "") + f"into {store.location}")
    for line in report.lines():
        print(f"  {line}")
    return EXIT_OK


def cmd_hash_password() -> int:
    from argon2 import PasswordHasher

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 10:
        print("ia-comercial: use at least 10 characters", file=sys.stderr)
        return EXIT_CONFIG
    print(PasswordHasher().hash(password))
    return EXIT_OK


def cmd_restore(file: Path) -> int:
    settings = _settings_only()
    if isinstance(settings, int):
        return settings
    url = settings.database_url
    target = postgres.location(url) if url else settings.database_path
    try:
        if url:
            kept: Path | None = pg_backups.restore(url, file, settings.backup_dir)
        else:
            kept = backups.restore(settings.database_path, file)
    except BackupError as exc:
        print(f"ia-comercial: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    aside = f"; the replaced database is kept as {kept}" if kept else ""
    print(f"restored {target} from {file}{aside}")
    return EXIT_OK


def _load(
    report: Callable[[ConfigProblem], int] | None = None,
) -> tuple[Settings, BusinessConfig, str] | int:
    """Settings, business and rules, or the exit code once `report` told the problems."""
    report = report or _listed
    try:
        settings = load_settings()
        from .startup import check_config  # the actors load only for commands that need them

        business, rules = check_config(settings)
    except ConfigProblem as exc:
        return report(exc)
    except (OSError, UnicodeDecodeError) as exc:  # a .env that cannot be read
        return report(ConfigProblem([(".env", "(file)", f"cannot be read: {exc}")]))
    return settings, business, rules


def cmd_check_config() -> int:
    loaded = _load()
    if isinstance(loaded, int):
        return loaded
    settings, business, _rules = loaded
    brain = (
        f"OpenAI-compatible ({settings.openai_model})"
        if not settings.offline
        else "offline (no OPENAI_API_KEY)"
    )
    print(
        f"OK  {settings.business_config}: {business.business.name}, "
        f"{len(business.services)} services, timezone {business.schedule.timezone}"
    )
    print(f"OK  {settings.system_prompt_path}")
    for channel, ready, needs in (
        (
            "whatsapp",
            settings.whatsapp_configured,
            "WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID",
        ),
        ("instagram", settings.instagram_configured, "INSTAGRAM_ACCESS_TOKEN"),
    ):
        webhooks = "webhook ready" if settings.meta_app_secret else "webhook needs META_APP_SECRET"
        state = f"configured, {webhooks}" if ready else f"not configured (needs {needs})"
        print(f"    {channel}: {state}")
    owner = settings.owner_email or business.notifications.ownerEmail
    if owner and settings.email_configured:
        email = (
            f"e-mail to {owner} via {settings.smtp_host}:{settings.smtp_port}"
            f" ({settings.smtp_security})"
        )
    else:
        email = (
            "e-mail not configured (needs SMTP_HOST and OWNER_EMAIL or notifications.ownerEmail)"
        )
    hook = "webhook configured" if settings.webhook_url else "no webhook"  # never its URL
    print(f"    owner alerts on {', '.join(business.notifications.notifyOn)}: {email}; {hook}")
    rules = business.leadRules.followUps
    template = settings.whatsapp_followup_template or "none (outside 24 h: skipped)"
    print(
        f"    follow-ups: hot after {rules.hotAfterHours:g} h, warm after"
        f" {rules.warmAfterHours:g} h, at most {rules.maxCount}; WhatsApp template {template}"
    )
    reachable, store_line = _store_state(settings)
    print(store_line)
    where = f"http://{settings.host}:{settings.port}"
    print(f"    log folder {settings.log_dir}, serving {where}, brain {brain}")
    return EXIT_OK if reachable else EXIT_FAILED


def _store_state(settings: Settings) -> tuple[bool, str]:
    """Which store is in use and whether it answers (never the URL's password)."""
    if settings.database_url is None:
        state = "exists" if settings.database_path.exists() else "created on first run"
        return True, f"OK  store: SQLite {settings.database_path} ({state})"
    where = postgres.location(settings.database_url)
    try:
        version = postgres.reach(settings.database_url, CONNECT_TIMEOUT)
    except StoreError as exc:
        return False, f"FAIL store: PostgreSQL {where}: not reachable ({exc})"
    schema = f"schema version {version}" if version else "empty (migrated on first use)"
    return True, f"OK  store: PostgreSQL {where}, reachable, {schema}"


def _open_store(settings: Settings) -> Store | int:
    """The configured store, or the exit code once the reason was told."""
    try:
        return open_store(settings.database_path, settings.database_url)
    except StoreError as exc:
        url = settings.database_url
        where = f"PostgreSQL {postgres.location(url)}" if url else str(settings.database_path)
        print(f"ia-comercial: store {where}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def cmd_run() -> int:
    """Start the suite. Whatever stops it from starting is told in one line per problem on
    stderr, naming the setting to change, with exit code 2 (no traceback). With `WORKERS`
    above 1 this process becomes the parent of that many workers (supervisor/workers.py)."""
    loaded = _load(_refuse)
    if isinstance(loaded, int):
        return loaded
    settings, business, rules = loaded
    inherited = os.environ.get(workers.LISTEN_FD_VARIABLE, "")
    if inherited.isdigit():  # a worker: its parent checked, bound and logs for it
        settings = dataclasses.replace(settings, listen_fd=int(inherited), workers=1)
    elif settings.workers > 1:
        return _run_workers(settings)
    from .startup import startup_problem

    try:
        if not settings.database_url:  # SQLite only: PostgreSQL has no file to claim
            with backups.held(settings.database_path, current_identity().worker):
                pass  # the suite takes the claim for good once it runs
        if settings.listen_fd is None:
            _check_port(settings)
    except (OSError, BackupError) as exc:
        return _refuse(startup_problem("DATABASE_PATH", settings.database_path, exc))
    except ConfigProblem as exc:
        return _refuse(exc)
    try:
        if settings.listen_fd is not None:
            setup_worker_logging(current_identity().name, settings.log_level, settings.secrets())
        else:
            setup_logging(settings.log_dir, settings.log_level, settings.secrets())
    except OSError as exc:
        return _refuse(startup_problem("LOG_DIR", settings.log_dir, exc))
    raise_open_files_limit()
    return _supervised(lambda notifier: _run_suite(settings, business, rules, notifier))


def _run_suite(
    settings: Settings, business: BusinessConfig, rules: str, notifier: SystemdNotifier
) -> None:
    from .suite import Suite

    trio.run(_serve, Suite(settings, business, rules, notifier))


def _run_workers(settings: Settings) -> int:
    """The parent of `settings.workers` workers: it binds the port for all of them."""
    from .startup import startup_problem

    try:
        listener = workers.listening_socket(settings.host, settings.port)
    except socket.gaierror as exc:
        return _refuse(ConfigProblem([("HOST", settings.host, f"not an address: {exc.strerror}")]))
    except OSError as exc:
        return _refuse(_bind_problem(settings, exc))
    try:
        try:
            setup_logging(settings.log_dir, settings.log_level, settings.secrets())
        except OSError as exc:
            return _refuse(startup_problem("LOG_DIR", settings.log_dir, exc))
        raise_open_files_limit()  # the workers inherit it
        return _supervised(
            lambda notifier: trio.run(
                workers.WorkerPool(settings, settings.workers, notifier, listener).run
            )
        )
    finally:
        listener.close()


def _supervised(main: Callable[[SystemdNotifier], None]) -> int:
    """Run `main` (a suite, or the parent of workers); the exit code."""
    notifier = SystemdNotifier()
    code = EXIT_OK
    try:
        main(notifier)
    except* ConfigProblem as group:  # the database or its folder, found unusable at start
        code = _refuse(*_leaves(group, ConfigProblem))
    except* SupervisorGaveUp as group:
        log.critical("giving up: %s", _leaves(group, SupervisorGaveUp)[0])
        code = EXIT_GAVE_UP
    finally:
        notifier.close()
    if code == EXIT_OK:
        log.info("stopped")
    return code


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files toward the hard one (never lower it); the limit
    in force. Past it a burst waits in the listen backlog, unaccepted, or is refused."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files: cannot raise the soft limit %d to %d: %s", soft, wanted, exc)
        else:
            log.info("open files: soft limit raised from %d to %d", soft, wanted)
            soft = wanted
    if soft != resource.RLIM_INFINITY and soft < OPEN_FILES_WANTED // 16:
        log.warning(
            "open files limited to %d (the hard limit): a burst of more visitors waits"
            " unaccepted; raise it (systemd: LimitNOFILE=%d)",
            soft,
            OPEN_FILES_WANTED,
        )
    return soft


def _check_port(settings: Settings) -> None:
    """Bind HOST:PORT once (as hypercorn will) so that a taken port is one clear line, not an
    ingress actor failing until the supervisor gives up."""
    if settings.port == 0:
        return
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise ConfigProblem([("HOST", settings.host, f"not an address: {exc.strerror}")]) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise _bind_problem(settings, exc) from None


def _bind_problem(settings: Settings, exc: OSError) -> ConfigProblem:
    """HOST:PORT cannot be bound: which setting to change."""
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigProblem(
            [("HOST", settings.host, "not an address of this machine; change HOST")]
        )
    why = (
        "already in use (another ia-comercial, or another server); change PORT"
        if exc.errno == errno.EADDRINUSE
        else f"{exc.strerror}; change PORT"
    )
    return ConfigProblem([("PORT", f"{settings.host}:{settings.port}", why)])


def _listed(problem: ConfigProblem) -> int:
    _print_problems(problem)
    return EXIT_CONFIG


def _refuse(*problems: ConfigProblem) -> int:
    """Each problem on a line of its own that says the suite did not start."""
    for problem in problems:
        for line in problem.lines():
            print(f"ia-comercial: cannot start: {line}", file=sys.stderr)
    return EXIT_CONFIG


def _leaves(group: BaseExceptionGroup[E], kind: type[E]) -> list[E]:
    """The exceptions of `kind` inside a (nested) exception group."""
    found: list[E] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc, kind)
        elif isinstance(exc, kind):
            found.append(exc)
    return found


async def _serve(suite: Suite) -> None:
    """Run until SIGTERM/SIGINT, then stop in order: ingress drains first, the rest follow."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("%s received: stopping", signal.Signals(signum).name)
                    suite.shutdown()

            async def run_suite(*, task_status: trio.TaskStatus[Suite]) -> None:
                await suite.run(task_status=task_status)
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            parent = os.environ.get(workers.PARENT_VARIABLE, "")
            if suite.settings.listen_fd is not None and parent.isdigit():
                nursery.start_soon(_stop_with_parent, suite, int(parent), nursery.cancel_scope)
            await nursery.start(run_suite)
            # What start-up loaded (modules, config, clients) lives as long as the process:
            # freeze it so that full collections stop walking it. A full collection took
            # 130 ms on the trio thread with the OpenAI client loaded (bench/, open loop).
            gc.collect()
            gc.freeze()


async def _stop_with_parent(suite: Suite, parent: int, everything: trio.CancelScope) -> None:
    """A worker whose parent is gone (killed: it could not pass on a SIGTERM) stops as if
    told to, instead of serving on alone, unsupervised; still starting, it just ends."""
    while True:
        if os.getppid() != parent:
            break
        await trio.sleep(PARENT_CHECK_INTERVAL)
    log.warning("the parent supervisor (pid %d) is gone: stopping", parent)
    if suite.supervisor is None:
        everything.cancel()
    else:
        suite.shutdown()


def _print_problems(problem: ConfigProblem) -> None:
    print("Configuration problems:", file=sys.stderr)
    for line in problem.lines():
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
