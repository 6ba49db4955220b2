"""Prometheus metrics: definitions (`definitions`), what the services record (`record`) and the
per-process listener that serves them (`listener`).

Every metric carries `service` and `machine_id` labels. They are labels rather than constant
labels because one Python process can hold several apps (the tests do), all sharing the
process-wide registry.
"""
