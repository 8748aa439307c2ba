"""Heartbeats: each live process of a cluster says here, every few seconds, that it lives
and how its actors are (the cluster actor writes; health and `ia-comercial status` read)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import Row
from .db import Database, utc_after, utc_now

LIVE_WITHIN = 10.0  # seconds: a process that has not beaten for this long is taken for dead


@dataclass(frozen=True)
class Heartbeat:
    worker: str  # the identity's name, node/worker
    node: str
    pid: int
    started_at: str
    beat_at: str
    actors: dict[str, Any]  # actor name → its state as the process last saw it


def beat(
    db: Database, worker: str, node: str, pid: int, started_at: str, actors: Mapping[str, Any]
) -> None:
    db.execute(
        "INSERT INTO heartbeats (worker, node, pid, started_at, beat_at, actors)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker) DO UPDATE SET node = excluded.node,"
        " pid = excluded.pid, started_at = excluded.started_at, beat_at = excluded.beat_at,"
        " actors = excluded.actors",
        (worker, node, pid, started_at, utc_now(), json.dumps(dict(actors), ensure_ascii=False)),
    )


def end(db: Database, worker: str) -> None:
    """A clean stop: the process is no longer counted."""
    db.execute("DELETE FROM heartbeats WHERE worker = ?", (worker,))


def of(db: Database, worker: str) -> Heartbeat | None:
    """The last heartbeat under `worker`'s name, live or not."""
    row = db.one(
        "SELECT worker, node, pid, started_at, beat_at, actors FROM heartbeats WHERE worker = ?",
        (worker,),
    )
    return None if row is None else _heartbeat(row)


def live(db: Database, within: float = LIVE_WITHIN) -> list[Heartbeat]:
    """The processes that beat within the last `within` seconds, by node and worker."""
    return [
        _heartbeat(r)
        for r in db.all(
            "SELECT worker, node, pid, started_at, beat_at, actors FROM heartbeats"
            " WHERE beat_at > ? ORDER BY node, worker",
            (utc_after(-within),),
        )
    ]


def _heartbeat(r: Row) -> Heartbeat:
    return Heartbeat(
        str(r["worker"]),
        str(r["node"]),
        int(r["pid"]),
        str(r["started_at"]),
        str(r["beat_at"]),
        json.loads(r["actors"]),
    )
