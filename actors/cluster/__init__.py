"""The cluster actor: this process's heartbeat, its leases kept, and the leader lease."""

from .actor import BEAT_INTERVAL, ClusterContext, ClusterState, ClusterStatistics, report, run

__all__ = ["BEAT_INTERVAL", "ClusterContext", "ClusterState", "ClusterStatistics", "report", "run"]
