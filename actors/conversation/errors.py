"""Errors of the conversation actor's brains.

BrainError
├── LLMUnavailable       the model could not be reached or refused, after retries
│   └── LLMTransient     one attempt failed in a way worth retrying (429, 5xx, network)
└── LLMInvalidOutput     the model's answer was not the JSON we asked for, even repaired
"""

from __future__ import annotations


class BrainError(Exception):
    """The brain could not produce a reply; the turn gets the fallback reply."""


class LLMUnavailable(BrainError):
    pass


class LLMTransient(LLMUnavailable):
    pass


class LLMInvalidOutput(BrainError):
    pass
