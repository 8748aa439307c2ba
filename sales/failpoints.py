"""Failpoints: named places where a drill or a test can make the suite crash on purpose.

Armed only through `IA_FAILPOINTS` ("conversation.turn=1,other"): `name=N` fires N times,
a bare name fires every time. Unarmed, a failpoint is a dictionary lookup."""

from __future__ import annotations

import time

from .errors import ConfigProblem, InjectedFault


class Failpoints:
    def __init__(self, spec: str = "") -> None:
        self._remaining: dict[str, int | None] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, count = item.partition("=")
            if count and not count.isdigit():
                raise ConfigProblem([("environment", "IA_FAILPOINTS", f"bad count in {item!r}")])
            self._remaining[name] = int(count) if count else None

    def stall(self, name: str, seconds: float) -> None:
        """Block the calling thread (the event loop, in a drill that tests the watchdog)."""
        try:
            self.hit(name)
        except InjectedFault:
            time.sleep(seconds)

    def hit(self, name: str) -> None:
        if name not in self._remaining:
            return
        left = self._remaining[name]
        if left is not None:
            if left <= 0:
                return
            self._remaining[name] = left - 1
        raise InjectedFault(f"failpoint {name} fired")
