"""Errors of the sales rules and their configuration.

ConfigProblem        settings or business config invalid (file, field, reason)
InjectedFault        a failpoint fired (tests and drills only)
"""

from __future__ import annotations


class ConfigProblem(Exception):
    """One or more configuration problems, each as (file, field path, reason)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {p}: {r}" for f, p, r in problems))

    def lines(self) -> list[str]:
        return [f"{file}: {path}: {reason}" for file, path, reason in self.problems]


class InjectedFault(Exception):
    """Raised by a failpoint that the settings switched on."""
