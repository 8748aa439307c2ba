"""Failpoints: named places where a drill or a test can make the suite crash on purpose.

Armed only through `IA_FAILPOINTS`, a comma-separated list of `name[@item][:Error][=N]`:

- `name` fires every time the code passes the place; `name=N` fires the first N times.
- `name@item` fires only for that item (the places that handle one item at a time pass its
  id: a webhook's message or receipt id); the item may not hold `,`, `:` or `=`.
- `name:Error` raises that exception instead of `InjectedFault`: a built-in one
  (`TypeError`, `OverflowError`: a bug of ours) or an apsw one (`BusyError`, `FullError`:
  a store that cannot write), raised as the store raises it (store/errors.py: a
  `StoreUnavailable` of that kind).

Several rules for one place are tried in the order written; the first that matches and has
firings left fires ("webhook.store:BusyError=1,webhook.store:TypeError=1": busy, then a bug).
Unarmed, a failpoint is a dictionary lookup."""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass

import apsw

from store.sqlite import translate

from .errors import ConfigProblem, InjectedFault


@dataclass
class _Rule:
    item: str | None
    left: int | None  # None: every time
    error: type[Exception]


def _error(name: str) -> type[Exception] | None:
    """A built-in exception or an apsw error, by its name."""
    found = getattr(builtins, name, None) or getattr(apsw, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


class Failpoints:
    def __init__(self, spec: str = "") -> None:
        self._armed: dict[str, list[_Rule]] = {}
        problems: list[tuple[str, str, str]] = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            try:
                self._arm(item)
            except ConfigProblem as exc:
                problems += exc.problems
        if problems:
            raise ConfigProblem(problems)

    def _arm(self, item: str) -> None:
        def bad(reason: str) -> ConfigProblem:
            return ConfigProblem([("environment", "IA_FAILPOINTS", f"{reason} in {item!r}")])

        head, _, count = item.partition("=")
        if count and not count.isdigit():
            raise bad("bad count")
        place, colon, error_name = head.partition(":")
        error: type[Exception] = InjectedFault
        if colon:
            found = _error(error_name.strip())
            if found is None:
                raise bad(
                    f"unknown error {error_name.strip()!r} (name a built-in exception such as"
                    " TypeError, or an apsw error such as BusyError or FullError)"
                )
            error = found
        name, at, key = (part.strip() for part in place.partition("@"))
        if not name:
            raise bad("no failpoint name")
        if at and not key:
            raise bad("no item after '@'")
        rule = _Rule(key or None, int(count) if count else None, error)
        self._armed.setdefault(name, []).append(rule)

    def stall(self, name: str, seconds: float) -> None:
        """Block the calling thread (the event loop, in a drill that tests the watchdog)."""
        try:
            self.hit(name)
        except Exception:
            time.sleep(seconds)

    def hit(self, name: str, item: str | None = None) -> None:
        """Raise if `name` is armed (for `item`, when the rule names one) and has firings left."""
        rules = self._armed.get(name)
        if rules is None:
            return
        for rule in rules:
            if rule.item is not None and rule.item != item:
                continue
            if rule.left is not None:
                if rule.left <= 0:
                    continue
                rule.left -= 1
            error = rule.error(f"failpoint {name} fired" + (f" for {item}" if item else ""))
            if isinstance(error, apsw.Error):
                translate(error)
            raise error
