"""The classifier actor: classifies the answered turns the turn path could not."""

from .actor import ClassifierContext, run, sweep

__all__ = ["ClassifierContext", "run", "sweep"]
