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
BUSY_CHECKPOINT_INTERVAL = 0.25 * SECONDS
RESTART_FRAMES = 4096  # WAL frames (16 MiB of 4 KiB pages) past which the WAL starts over
RESTART_WAIT_MS = 200  # how long a RESTART checkpoint waits for the write lock


@dataclass
class CheckpointStatistics:
    checkpoints: int = 0
    last_wal_frames: int = 0


def checkpoint(path: Path) -> tuple[int, int]:
    """A passive checkpoint (never blocks writers); returns (WAL frames, frames copied).

    Under a steady stream of commits a passive checkpoint never catches up with the last
    frame, so the WAL is never started over and grows without end (measured: 470 MB after
    a minute of 470 web turns a second, ~180 KB of frames a turn); on a virtual disk the
    kernel then throttles the writes of new dirty pages and the suite's throughput halved.
    So past RESTART_FRAMES a RESTART checkpoint follows: it waits for the write lock (at
    most RESTART_WAIT_MS, else it tries again next time), copies the few frames written
    since, and lets the next commit write the WAL from its start, over pages already in
    the page cache (and cuts the file back to JOURNAL_SIZE_LIMIT, `open_database`). Writers
    wait for it meanwhile: the frames left to copy are the last interval's, a few hundred
    distinct pages. Returns 0 frames once restarted."""
    connection = apsw.Connection(str(path))
    try:
        connection.set_busy_timeout(BUSY_TIMEOUT_MS)
        row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if row is None:
            return 0, 0
        _busy, frames, copied = row
        if int(frames) > RESTART_FRAMES:
            connection.set_busy_timeout(RESTART_WAIT_MS)
            restarted = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if restarted is not None and not restarted[0]:
                return 0, int(copied)  # the next commit writes the WAL from its start
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
    interval = CHECKPOINT_INTERVAL
    while not stop.is_set():
        with trio.move_on_after(interval):
            await stop.wait()
        frames, _copied = await trio.to_thread.run_sync(checkpoint, path)
        # Under a stream of commits, look again soon: the WAL grows by megabytes a second.
        interval = BUSY_CHECKPOINT_INTERVAL if frames > RESTART_FRAMES else CHECKPOINT_INTERVAL
        stats.checkpoints += 1
        stats.last_wal_frames = frames
