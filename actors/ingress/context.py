"""What the ingress actor is given by the suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from actors.ack_first import AckFirst
from actors.messages import InboundMessage, NotifierNotice
from actors.statistics import LLMStatistics, NotifierStatistics
from sales.business import BusinessConfig
from sales.failpoints import Failpoints
from sales.settings import Settings
from store.db import Database
from store.readers import Readers, readers_for
from supervisor.supervisor import ActorStatistics


class SuiteStatus(Protocol):
    """The running suite as the ingress sees it (the supervisor's view)."""

    version: str
    started_at: str
    llm_stats: LLMStatistics
    notifier_stats: NotifierStatistics
    # This worker's /metrics figures as JSON, set by the ingress, asked by peer workers.
    figures: Callable[[], dict[str, Any]] | None

    def is_running(self, name: str) -> bool: ...

    @property
    def ready(self) -> bool: ...

    def actors(self) -> tuple[ActorStatistics, ...]: ...

    def brain(self) -> str: ...

    def work(self) -> dict[str, object]: ...

    def problems(self) -> list[str]: ...

    def queues(self) -> dict[str, dict[str, int]]: ...

    def llm_report(self) -> dict[str, object]: ...

    def cluster_report(self) -> dict[str, object]: ...

    file_rules: str
    rules: str

    async def use_rules(self, text: str | None = None, strategy: str | None = None) -> None: ...

    async def use_business(self, config: BusinessConfig) -> None: ...

    def last_backup(self) -> dict[str, object] | None: ...


@dataclass
class IngressContext:
    settings: Settings
    db: Database
    business: BusinessConfig
    inbound_messages: trio.MemorySendChannel[InboundMessage]
    suite: SuiteStatus
    notifier_notices: trio.MemorySendChannel[NotifierNotice] | None = None
    plain_chat_answers: int = 0  # chat turns answered by the plain-ASGI path (fast_chat.py)
    ack_first: AckFirst = field(default_factory=AckFirst)  # the suite's, shared
    failpoints: Failpoints = field(default_factory=Failpoints)  # the suite's (drills, tests)
    readers: Readers | None = None  # the owner's reads, off the loop (opened when first used)

    def owner_reads(self) -> Readers:
        """Read connections in worker threads for the dashboard's lists, searches and
        figures (store/readers.py), opened on first use; the ingress closes them."""
        if self.readers is None:
            self.readers = readers_for(self.settings.database_path, self.settings.database_url)
        return self.readers
