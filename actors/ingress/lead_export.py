"""The CSV export as a stream from a process of its own (store/lead_csv.py, issue 17): the
rows are read and written by another interpreter, and the event loop only passes its output
on, a chunk at a time. At most EXPORTS_AT_ONCE run at once; an owner who goes away ends
the process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio
from quart import Response

import store
from sales.settings import Settings
from store import lead_csv
from store.lead_reports import LeadFilter

from .responses import error_response

log = logging.getLogger("ingress.export")

EXPORTS_AT_ONCE = 1  # a second owner's export waits for the first
CHUNK = 1 << 16  # bytes
STOP_GRACE = 2.0  # seconds for the process to end once killed
_ROOT = Path(store.__file__).resolve().parent.parent  # where `store` is imported from


class LeadExports:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.limiter = trio.CapacityLimiter(EXPORTS_AT_ONCE)

    async def response(self, f: LeadFilter) -> Response:
        """The CSV of the leads `f` keeps, streamed; 503 when the process cannot start or
        fails before its first rows (the store cannot be read)."""
        token = object()
        await self.limiter.acquire_on_behalf_of(token)
        process: trio.Process | None = None
        try:
            process = await self._start(f)
            first = await _read(process)
            if not first:
                await _ended(process, at_end=True)
                self.limiter.release_on_behalf_of(token)
                return error_response(503, "No se pudo leer los leads ahora; reintenta")
        except BaseException:
            if process is not None:
                await _ended(process, at_end=False)
            self.limiter.release_on_behalf_of(token)
            raise
        response = Response(
            self._rest(process, first, token), content_type="text/csv; charset=utf-8"
        )
        response.timeout = None  # as long as the rows take
        response.headers["Content-Disposition"] = 'attachment; filename="leads.csv"'
        return response

    async def _start(self, f: LeadFilter) -> trio.Process:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(_ROOT),
               os.environ.get("PYTHONPATH"))))}  # fmt: skip
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "store.lead_csv"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        asked = lead_csv.request(f, self._settings.database_path, self._settings.database_url)
        assert process.stdin is not None
        async with process.stdin:
            await process.stdin.send_all(asked)
        return process

    async def _rest(
        self, process: trio.Process, first: bytes, token: object
    ) -> AsyncIterator[bytes]:
        at_end = False
        try:
            yield first
            while chunk := await _read(process):
                yield chunk
            at_end = True
        finally:
            await _ended(process, at_end=at_end)
            self.limiter.release_on_behalf_of(token)


async def _read(process: trio.Process) -> bytes:
    assert process.stdout is not None
    return bytes(await process.stdout.receive_some(CHUNK))


async def _ended(process: trio.Process, *, at_end: bool) -> None:
    """The process stopped: waited for when its output ended (a failure logged by its kind,
    its one line of stderr, never a row), killed when the owner went away first."""
    if not at_end:
        process.kill()
    with trio.move_on_after(STOP_GRACE, shield=True):
        await process.wait()
    if process.returncode is None:  # ended its output but not itself
        process.kill()
        with trio.move_on_after(STOP_GRACE, shield=True):
            await process.wait()
    elif at_end and process.returncode != 0 and process.stderr is not None:
        with trio.move_on_after(STOP_GRACE, shield=True):
            said = bytes(await process.stderr.receive_some(400)).decode(errors="replace")
            log.error("CSV export failed (%s)", " ".join(said.split()[-2:]) or "no reason")
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()
