"""WAL checkpoints off the event loop.

SQLite's automatic checkpoint runs inside whichever commit crosses the threshold and fsyncs
the database file: on the trio thread that is a stall of tens of milliseconds for every
request in flight. The suite's connection turns it off (`open_database`) and this child of
the supervisor checkpoints on its own connection in a worker thread instead."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import apsw
import trio

from .db import BUSY_TIMEOUT_MS

log = logging.getLogger("store.maintenance")

SECONDS = 1.0
CHECKPOINT_INTERVAL = 2 * SECONDS


@dataclass
class CheckpointStatistics:
    checkpoints: int = 0
    last_wal_frames: int = 0


def checkpoint(path: Path) -> tuple[int, int]:
    """A passive checkpoint (never blocks writers); returns (WAL frames, frames copied)."""
    connection = apsw.Connection(str(path))
    try:
        connection.set_busy_timeout(BUSY_TIMEOUT_MS)
        row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if row is None:
            return 0, 0
        _busy, frames, copied = row
        return int(frames), int(copied)
    finally:
        connection.close()


async def run(
    path: Path,
    stats: CheckpointStatistics,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    while not stop.is_set():
        with trio.move_on_after(CHECKPOINT_INTERVAL):
            await stop.wait()
        frames, _copied = await trio.to_thread.run_sync(checkpoint, path)
        stats.checkpoints += 1
        stats.last_wal_frames = frames
