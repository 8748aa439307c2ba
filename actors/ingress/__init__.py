"""The ingress actor: HTTP in (quart-trio served by hypercorn)."""

from .context import IngressContext
from .server import run

__all__ = ["IngressContext", "run"]
