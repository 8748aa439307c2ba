"""The local control path, as `pm2 list` / `pm2 restart` give: a Unix socket beside the
database (mode 0600, so only the suite's user), one JSON request and one JSON answer per
connection. Never on the network.

    {"command": "status"}                       -> {"ok": true, "actors": [...], ...}
    {"command": "restart", "actor": "notifier"} -> {"ok": true} | {"ok": false, "error": ...}
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import trio

from .logs import Redactor
from .supervisor import ActorStatistics

MAX_REQUEST = 4096
CLIENT_TIMEOUT = 60.0


class Controlled(Protocol):
    version: str
    started_at: str

    def actors(self) -> tuple[ActorStatistics, ...]: ...

    async def restart_actor(self, name: str) -> None: ...


def socket_path(database_path: Path, worker: int = 1) -> Path:
    """Beside the database, one per worker (several may share the folder)."""
    name = "control.sock" if worker == 1 else f"control-{worker}.sock"
    return database_path.parent / name


def parent_socket_path(database_path: Path) -> Path:
    """The parent supervisor's, with `WORKERS` above 1: its rows are the workers."""
    return database_path.parent / "control-workers.sock"


def actor_rows(actors: tuple[ActorStatistics, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "state": str(a.state),
            "restarts": a.restarts,
            "uptimeSeconds": None if a.uptime_seconds is None else round(a.uptime_seconds, 1),
            "lastError": None
            if a.last_error is None
            else f"{a.last_error.type}: {a.last_error.message} ({a.last_error.at})",
        }
        for a in actors
    ]


async def serve(
    path: Path,
    suite: Controlled,
    redact: Redactor,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    _clear(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    sock.listen(8)
    listener = trio.SocketListener(sock)
    try:
        task_status.started()
        await trio.serve_listeners(partial(_one, suite=suite, redact=redact), [listener])
    finally:
        _clear(path)


def _clear(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a process that was killed (we hold the database's lock)


async def _one(stream: trio.SocketStream, *, suite: Controlled, redact: Redactor) -> None:
    async with stream:
        data = b""
        with trio.move_on_after(5):
            while b"\n" not in data and len(data) < MAX_REQUEST:
                chunk = await stream.receive_some(MAX_REQUEST)
                if not chunk:
                    break
                data += chunk
        answer = await _answer(data, suite)
        await stream.send_all(redact(json.dumps(answer, ensure_ascii=False)).encode() + b"\n")


async def _answer(data: bytes, suite: Controlled) -> dict[str, Any]:
    try:
        request = json.loads(data.decode() or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"ok": False, "error": "the request is not JSON"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "the request must be a JSON object"}
    command = request.get("command")
    if command == "status":
        return {
            "ok": True,
            "version": suite.version,
            "startedAt": suite.started_at,
            "pid": os.getpid(),
            "actors": actor_rows(suite.actors()),
            **({"pids": pids()} if (pids := getattr(suite, "pids", None)) else {}),
        }
    if command == "figures":  # this worker's /metrics figures, for a peer's page
        source = getattr(suite, "figures", None)
        if source is None:
            return {"ok": False, "error": "no figures yet (the ingress is starting)"}
        return {"ok": True, "figures": source()}
    if command == "restart":
        name = request.get("actor")
        if not isinstance(name, str):
            return {"ok": False, "error": "the actor's name is missing"}
        try:
            await suite.restart_actor(name)
        except (KeyError, RuntimeError) as exc:
            return {"ok": False, "error": str(exc).strip("'\"")}
        return {"ok": True, "restarted": name}
    return {"ok": False, "error": f"unknown command: {command!r}"}


async def ask(path: Path, message: dict[str, Any], within: float) -> dict[str, Any] | None:
    """Ask a running suite from async code (a peer worker); None when it does not answer
    `within` seconds or answers nonsense."""
    with trio.move_on_after(within):
        try:
            stream = await trio.open_unix_socket(str(path))
            async with stream:
                await stream.send_all(json.dumps(message).encode() + b"\n")
                data = b""
                async for chunk in stream:
                    data += chunk
            answer = json.loads(data.decode())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return answer if isinstance(answer, dict) else None
    return None


class NotRunning(Exception):
    pass


def request(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """Ask the running suite (blocking: the CLI's side)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.connect(str(path))
            client.sendall(json.dumps(message).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(f"the suite is not running (nothing answers on {path})") from None
    result: dict[str, Any] = json.loads(answer.decode())
    return result
