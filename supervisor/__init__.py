"""The trio supervisor, its settings, logging, systemd notification and the CLI."""
