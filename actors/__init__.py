"""The suite's actors, each with a `run(..., stop, *, task_status)` entry point."""
