"""Recurring work that runs on machine 0 only (the admin service, or the embedded default)."""
