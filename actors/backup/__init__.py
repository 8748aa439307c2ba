"""The backup actor: a daily online backup of the store, checked and pruned."""

from .actor import BackupContext, BackupStatistics, backup_health, next_run, run

__all__ = ["BackupContext", "BackupStatistics", "backup_health", "next_run", "run"]
