"""Errors of the suite's own machinery.

SuiteError
├── ConfigProblem        settings or business config invalid (file, field, reason)
├── SupervisorGaveUp     restarts exceeded the intensity; the process must exit non-zero
└── InjectedFault        a failpoint fired (tests and drills only)
"""

from __future__ import annotations


class SuiteError(Exception):
    """Base of the suite's own errors."""


class ConfigProblem(SuiteError):
    """One or more configuration problems, each as (file, field path, reason)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {p}: {r}" for f, p, r in problems))

    def lines(self) -> list[str]:
        return [f"{file}: {path}: {reason}" for file, path, reason in self.problems]


class SupervisorGaveUp(SuiteError):
    """More restarts than the intensity allows inside the period."""


class InjectedFault(SuiteError):
    """Raised by a failpoint that the settings switched on."""
