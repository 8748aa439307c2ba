"""Errors of the conversation actor's brains.

BrainError
├── LLMUnavailable       the model could not be reached or refused, after retries
│   └── LLMTransient     one attempt failed in a way worth retrying (network, a broken answer)
│       └── LLMOverloaded    the model server is overloaded (429, 5xx, a timeout): the model
│                            gate backs off, and waits out its `Retry-After`
└── LLMInvalidOutput     the model's answer was not the JSON we asked for, even repaired
"""

from __future__ import annotations


class BrainError(Exception):
    """The brain could not produce a reply; the turn gets the fallback reply."""


class LLMUnavailable(BrainError):
    pass


class LLMTransient(LLMUnavailable):
    pass


class LLMOverloaded(LLMTransient):
    def __init__(self, message: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # "429", "503", "timeout": what the gate's backoff says
        self.retry_after = retry_after  # seconds the server asked for, when it did


class LLMInvalidOutput(BrainError):
    pass
