"""Latency of a kind of call, kept as fixed histogram buckets (for /metrics) and the most
recent samples (for p50/p95 in /health/detailed). Cheap enough for every call."""

from __future__ import annotations

import bisect
import statistics
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
RECENT = 500


@dataclass
class Latencies:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    total: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BOUNDS, seconds)] += 1
        self.total += seconds
        self.recent.append(seconds)

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound, observations at or below it), +Inf last."""
        running, out = 0, []
        for bound, count in zip((*map(str, BOUNDS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def percentiles(self) -> dict[str, float | None]:
        samples = sorted(self.recent)
        if len(samples) < 2:
            only = samples[0] * 1000 if samples else None
            return {"p50Ms": only, "p95Ms": only}
        cuts = statistics.quantiles(samples, n=20, method="inclusive")
        return {"p50Ms": round(cuts[9] * 1000, 1), "p95Ms": round(cuts[18] * 1000, 1)}
