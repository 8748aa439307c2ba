"""Errors of the supervision machinery.

SupervisorGaveUp     restarts exceeded the intensity; the process must exit non-zero
"""

from __future__ import annotations


class SupervisorGaveUp(Exception):
    """More restarts than the intensity allows inside the period."""
