"""Small pieces every actor's main loop uses."""

from __future__ import annotations

import trio


async def cancel_when_set(stop: trio.Event, scope: trio.CancelScope) -> None:
    """Cancel `scope` once the supervisor asks the actor to stop."""
    await stop.wait()
    scope.cancel()
