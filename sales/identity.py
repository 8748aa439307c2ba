"""Who this process is: the node (server) it runs on and its worker number there.

`ia-comercial run` with `WORKERS=N` starts N worker processes and gives each its number in
`IA_COMERCIAL_WORKER` (1..N); a suite started alone is worker 1. The node is `NODE_NAME`
when set (several servers behind a load balancer), else the host name. Leases in the store,
heartbeats, `/health/detailed` and the `/metrics` labels name a process by these two."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

WORKER_VARIABLE = "IA_COMERCIAL_WORKER"
NODE_VARIABLE = "NODE_NAME"


@dataclass(frozen=True)
class Identity:
    node: str
    worker: int

    @property
    def name(self) -> str:
        """`node/worker`: unique across a cluster, the owner recorded on a lease."""
        return f"{self.node}/{self.worker}"


def current(environ: os._Environ[str] | dict[str, str] | None = None) -> Identity:
    env = os.environ if environ is None else environ
    node = (env.get(NODE_VARIABLE) or "").strip() or socket.gethostname()
    raw = (env.get(WORKER_VARIABLE) or "").strip()
    worker = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    return Identity(node, worker)
