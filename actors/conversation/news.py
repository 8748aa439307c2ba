"""How a web request that waits on another process's turn hears that it may go on.

In a cluster, a web message that reaches a process while another holds its conversation
waits (actors/conversation/lanes.py) until that one has stored the reply or let the
conversation go. The process that answers tells it after each answered batch and when it
releases the lease (`tell`):

- on PostgreSQL with `NOTIFY ia_conversation, '<id>'` (sent on commit, to every listening
  process); each process LISTENs on a connection of its own, in a worker thread, and wakes
  the requests waiting on that conversation at once. A notice missed (the listening
  connection lost and reopened meanwhile) costs at most `FALLBACK` seconds: a waiting
  request looks in the store that often anyway;
- on SQLite, which has no notifications, a waiting request looks every `POLL` seconds (the
  processes share one file on one machine: a look is a read of a page in memory)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import trio

from store.db import Database
from store.errors import StoreError
from store.pg_loop import connect

log = logging.getLogger("conversation.news")

SECONDS = 1.0
CHANNEL = "ia_conversation"
POLL = 0.05 * SECONDS  # SQLite: how often a waiting request looks in the store
FALLBACK = 1 * SECONDS  # PostgreSQL: how often it looks even without a notice
RECONNECT_DELAY = 1 * SECONDS  # after the listening connection is lost
NOTIFIES_TIMEOUT = 0.5 * SECONDS  # the listening thread checks it should stop this often


def tell(db: Database, conversation_id: int) -> None:
    """Whoever waits on this conversation may look again (after a commit: its reply is
    stored, or its lease is free). Nothing to send on SQLite: the waiters poll."""
    if db.backend == "postgresql":
        db.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(conversation_id)))


class News:
    """This process's waiters by conversation, woken by notices (PostgreSQL) or by time."""

    def __init__(self, url: str | None = None, fallback: float = FALLBACK) -> None:
        self.url = url  # PostgreSQL's; None: SQLite, poll
        self.fallback = fallback
        self.listening = False  # the LISTEN connection is up: wait for notices
        self.heard = 0  # notices received (health, tests)
        self._waiting: dict[int, set[trio.Event]] = {}

    async def wait(self, conversation_id: int) -> None:
        """Until a notice for this conversation, or the time to look again."""
        if not self.listening:
            await trio.sleep(POLL)
            return
        woken = trio.Event()
        self._waiting.setdefault(conversation_id, set()).add(woken)
        try:
            with trio.move_on_after(self.fallback):
                await woken.wait()
        finally:
            events = self._waiting.get(conversation_id)
            if events is not None:
                events.discard(woken)
                if not events:
                    del self._waiting[conversation_id]

    def _heard(self, payload: str) -> None:
        self.heard += 1
        if payload.isdigit():
            for woken in self._waiting.pop(int(payload), ()):
                woken.set()

    async def listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """LISTEN for as long as it runs (PostgreSQL only), reconnecting after a loss;
        started at once (until the first connection, waiters poll)."""
        task_status.started()
        if self.url is None:
            return
        token = trio.lowlevel.current_trio_token()
        stop = threading.Event()
        try:
            while True:
                try:
                    await trio.to_thread.run_sync(
                        self._listen_until_lost, token, stop, abandon_on_cancel=True
                    )
                except (StoreError, psycopg.Error) as exc:
                    log.warning("listening for conversation notices failed: %s; polling", exc)
                self.listening = False
                await trio.sleep(RECONNECT_DELAY)
        finally:
            stop.set()  # the thread ends within NOTIFIES_TIMEOUT and closes its connection
            self.listening = False

    def _listen_until_lost(self, token: trio.lowlevel.TrioToken, stop: threading.Event) -> None:
        assert self.url is not None
        with connect(self.url, "notices") as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            run: Callable[..., Any] = trio.from_thread.run_sync
            run(self._started, trio_token=token)
            while not stop.is_set():
                for notice in conn.notifies(timeout=NOTIFIES_TIMEOUT):
                    if stop.is_set():
                        return
                    try:
                        run(self._heard, notice.payload, trio_token=token)
                    except trio.RunFinishedError:
                        return

    def _started(self) -> None:
        self.listening = True
