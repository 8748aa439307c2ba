"""The classifier actor: after every user turn, the lead's fields, class, score and reasons."""

from .actor import ClassifierContext, ClassifierStatistics, run

__all__ = ["ClassifierContext", "ClassifierStatistics", "run"]
