"""`WORKERS=N`: a parent supervisor of N worker processes, each the whole trio suite, all
accepting on one listening socket (PM2's cluster mode, done as an OTP supervisor of
processes).

The parent binds HOST:PORT once and hands the socket to every worker (inherited, its number
in `IA_COMERCIAL_LISTEN_FD`); the kernel spreads the connections over the workers that
accept. Each worker is a child of the same `Supervisor` that runs the actors, one
`ChildSpec` per worker: permanent, started one at a time and awaited until it says
`READY=1`, restarted with the same backoff (100 ms x 1.5 to 15 s) and intensity (5 in 30 s,
then the parent exits 1 and systemd decides) when it dies. The parent is what systemd sees:

- each worker talks sd_notify to a datagram socket of the parent's, not to systemd; the
  parent says `READY=1` once every worker is ready, and `STATUS=` lines;
- with a watchdog set, each worker pings the parent from its event loop; a worker whose
  pings stop for a whole `WatchdogSec` is hung: killed and restarted. The parent pings
  systemd from its own loop;
- SIGTERM (or SIGINT) is passed to every worker at once, so they drain together; the parent
  returns when all have stopped (past `WORKER_SHUTDOWN_TIMEOUT`, a worker is killed);
- the workers' log lines come to the parent as JSON on their stdout and are written to the
  one set of log files (`combined.log`, `error.log`), so rotation has one writer;
- `ia-comercial status` asks the parent's control socket for the workers and each worker's
  for its actors; `ia-comercial restart worker-2` restarts one worker (it drains first)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from sales.identity import WORKER_VARIABLE
from sales.settings import Settings
from store.db import utc_now

from . import control, logs
from .specs import SECONDS, ActorStatistics, ChildSpec
from .startup import suite_version
from .supervisor import Supervisor
from .systemd import SystemdNotifier

log = logging.getLogger("supervisor.workers")

LISTEN_FD_VARIABLE = "IA_COMERCIAL_LISTEN_FD"  # the inherited listening socket
WORKERS_VARIABLE = "IA_COMERCIAL_WORKERS"  # how many workers this node runs (for /metrics)
PARENT_VARIABLE = "IA_COMERCIAL_PARENT"  # the parent's pid: a worker stops when it is gone
# A worker drains its requests (10 s) and stops its actors in order; systemd waits 90 s.
WORKER_SHUTDOWN_TIMEOUT = 75 * SECONDS
# Waiting for a worker to say READY=1 (the suite opens its store and starts every actor).
WORKER_START_TIMEOUT = 60 * SECONDS
BACKLOG = 4096
NOTIFY_MAX = 4096


class WorkerExited(Exception):
    """A worker process ended without being asked to."""


class WorkerHung(Exception):
    """A worker's event loop stopped pinging its watchdog."""


class WorkerNotReady(Exception):
    """A worker did not say READY=1 in time."""


def listening_socket(host: str, port: int) -> socket.socket:
    """HOST:PORT bound and listening, inheritable by the workers."""
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def worker_command() -> list[str]:
    """How a worker is started: this Python, this program, `run`."""
    return [sys.executable, "-m", "supervisor.cli", "run"]


@dataclass
class WorkerState:
    """What the parent knows of one worker's current process."""

    number: int
    process: trio.Process | None = None
    ready: trio.Event = field(default_factory=trio.Event)
    pinged_at: float = 0.0  # trio time of the last WATCHDOG=1

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class WorkerPool:
    """The parent: supervises `count` workers and speaks for them to systemd."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        notifier: SystemdNotifier,
        listener: socket.socket,
        command: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.count = count
        self.notifier = notifier
        self.listener = listener
        self.command = list(command or worker_command())
        self.version = suite_version()
        self.started_at = utc_now()
        self.workers = {n: WorkerState(n) for n in range(1, count + 1)}
        self.stopping = False
        self.supervisor = Supervisor(
            [
                ChildSpec(
                    f"worker-{n}",
                    partial(self._worker, n),
                    shutdown_timeout=WORKER_SHUTDOWN_TIMEOUT,
                )
                for n in self.workers
            ],
            on_status=notifier.status,
        )
        # A worker pings this often when systemd watches the parent (None: no watchdog).
        self.watchdog_interval = notifier.watchdog_interval

    # -- control (`ia-comercial status`, `restart worker-N`) --------------------------------

    def actors(self) -> tuple[ActorStatistics, ...]:
        return self.supervisor.statistics()

    async def restart_actor(self, name: str) -> None:
        await self.supervisor.restart(name)

    def pids(self) -> dict[str, int | None]:
        return {f"worker-{n}": w.pid for n, w in self.workers.items()}

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Until SIGTERM/SIGINT: every worker up, restarted when it dies; then all drain."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._stop_on_signal, signals)
                path = control.parent_socket_path(self.settings.database_path)
                await nursery.start(
                    partial(control.serve, path, self, logs.Redactor(self.settings.secrets()))
                )
                await nursery.start(self._supervise, nursery.cancel_scope)
                where = f"{self.settings.host}:{self.listener.getsockname()[1]}"
                self.notifier.notify("READY=1", f"STATUS={self.count} workers serving on {where}")
                log.info("%d workers ready on %s", self.count, where)
                nursery.start_soon(self.notifier.keep_watchdog_fed)

    async def _supervise(
        self, done: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        await self.supervisor.run(task_status=task_status)
        done.cancel()  # every worker has stopped: end the watchdog and the control socket

    async def _stop_on_signal(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            log.info("%s received: stopping %d workers", signal.Signals(signum).name, self.count)
            self.shutdown()

    def shutdown(self) -> None:
        """Every worker is told at once (they drain side by side), then the supervisor stops
        them in order, which now only waits for each to end."""
        if self.stopping:
            return
        self.stopping = True
        self.notifier.notify("STOPPING=1", "STATUS=Stopping")
        for state in self.workers.values():
            process = state.process
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
        self.supervisor.shutdown()

    # -- one worker ------------------------------------------------------------------------

    async def _worker(
        self, number: int, stop: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """One incarnation of worker `number`: its process, from start to end."""
        state = self.workers[number]
        state.ready = trio.Event()
        notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"ia-comercial-{os.getpid()}-{number}-{uuid.uuid4().hex[:8]}"
        await notify.bind("\0" + address)  # abstract: nothing left on disk
        try:
            process = await trio.lowlevel.open_process(
                self.command,
                env=self._environment(number, address),
                pass_fds=(self.listener.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                # Signals come from the parent only: a Ctrl-C in a terminal reaches the
                # parent, which passes it on once, to every worker at the same moment.
                start_new_session=True,
            )
            state.process, state.pinged_at = process, trio.current_time()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._hear, notify, state)
                    assert process.stdout is not None
                    nursery.start_soon(_forward_logs, process.stdout)
                    await self._until_ready(state, process, stop)
                    log.info("worker %d ready (pid %d)", number, process.pid)
                    task_status.started()
                    await self._until_ended(state, process, stop)
                    nursery.cancel_scope.cancel()
            finally:
                if process.returncode is None:  # cancelled past the shutdown timeout
                    process.kill()
                    with trio.CancelScope(shield=True):
                        await process.wait()
        finally:
            notify.close()

    def _environment(self, number: int, notify_address: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_PID")}
        env.pop("WATCHDOG_USEC", None)
        env.update(
            {
                WORKER_VARIABLE: str(number),
                WORKERS_VARIABLE: str(self.count),
                LISTEN_FD_VARIABLE: str(self.listener.fileno()),
                PARENT_VARIABLE: str(os.getpid()),
                "NOTIFY_SOCKET": "@" + notify_address,
            }
        )
        if self.watchdog_interval is not None:  # the worker pings every interval
            env["WATCHDOG_USEC"] = str(int(self.watchdog_interval * 2 * 1_000_000))
        return env

    async def _until_ready(
        self, state: WorkerState, process: trio.Process, stop: trio.Event
    ) -> None:
        async with trio.open_nursery() as race:
            race.start_soon(_then_cancel, state.ready.wait, race.cancel_scope)
            race.start_soon(_then_cancel, process.wait, race.cancel_scope)
            race.start_soon(_then_cancel, stop.wait, race.cancel_scope)
            race.start_soon(
                _then_cancel, partial(trio.sleep, WORKER_START_TIMEOUT), race.cancel_scope
            )
        if process.returncode is not None:
            raise WorkerExited(
                f"worker {state.number} (pid {process.pid}) ended before it was ready,"
                f" {_how(process.returncode)}"
            )
        if not state.ready.is_set() and not stop.is_set():
            raise WorkerNotReady(
                f"worker {state.number} (pid {process.pid}) not ready after"
                f" {WORKER_START_TIMEOUT:g} s"
            )

    async def _until_ended(
        self, state: WorkerState, process: trio.Process, stop: trio.Event
    ) -> None:
        """Returns once the process ended after a stop; raises when it died or hung."""
        async with trio.open_nursery() as race:
            race.start_soon(_then_cancel, process.wait, race.cancel_scope)
            race.start_soon(_then_cancel, stop.wait, race.cancel_scope)
            race.start_soon(_then_cancel, partial(self._watch, state), race.cancel_scope)
        asked = stop.is_set() or self.stopping  # the pool's SIGTERM may come first
        if process.returncode is None and not asked:  # its pings stopped
            process.kill()
            await process.wait()
            raise WorkerHung(
                f"worker {state.number} (pid {process.pid}) stopped pinging its watchdog"
                f" for {self._hung_after():g} s: killed"
            )
        if process.returncode is not None and not asked:
            raise WorkerExited(
                f"worker {state.number} (pid {process.pid}) {_how(process.returncode)}"
            )
        if process.returncode is None and not self.stopping:
            # An operator's restart of this one. (When the pool stops, `shutdown` told every
            # worker once: a second SIGTERM could reach one past its trio run, where the
            # default action kills it.)
            process.send_signal(signal.SIGTERM)
        await process.wait()
        log.info("worker %d stopped (%s)", state.number, _how(process.returncode))

    def _hung_after(self) -> float:
        assert self.watchdog_interval is not None
        return self.watchdog_interval * 2

    async def _watch(self, state: WorkerState) -> None:
        """Returns when the worker's pings have stopped for a whole watchdog period (not
        while the pool stops: a draining worker's loop pings no more)."""
        if self.watchdog_interval is None:
            await trio.sleep_forever()
        while True:
            due = state.pinged_at + self._hung_after()  # each ping moves it on
            if self.stopping:
                await trio.sleep_forever()
            if trio.current_time() >= due:
                return
            await trio.sleep_until(due)

    async def _hear(self, notify: trio.socket.SocketType, state: WorkerState) -> None:
        """The worker's sd_notify lines."""
        while True:
            data = await notify.recv(NOTIFY_MAX)
            for line in data.decode(errors="replace").splitlines():
                if line == "READY=1":
                    state.ready.set()
                elif line == "WATCHDOG=1":
                    state.pinged_at = trio.current_time()
                # STATUS= lines are the worker's own: systemd shows the parent's.


async def _then_cancel(wait: object, scope: trio.CancelScope) -> None:
    await wait()  # type: ignore[operator]
    scope.cancel()


def _how(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


async def _forward_logs(stream: trio.abc.ReceiveStream) -> None:
    """A worker's JSON log lines into this process's log files."""
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line:
                logs.forward(line.decode(errors="replace"))
    if pending:
        logs.forward(pending.decode(errors="replace"))


def peers_sockets(database_path: Path, me: int) -> list[Path]:
    """The control sockets of this node's other workers."""
    raw = os.environ.get(WORKERS_VARIABLE, "")
    count = int(raw) if raw.isdigit() else 1
    return [control.socket_path(database_path, n) for n in range(1, count + 1) if n != me]
