"""Logging setup: every line names the service, the machine and the request."""

from __future__ import annotations

import json
import logging
import sys

from shared.web.middleware import request_id_var


class _ContextFilter(logging.Filter):
    def __init__(self, service: str, machine_id: int) -> None:
        super().__init__()
        self.service = service
        self.machine_id = machine_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.machine_id = self.machine_id
        record.request_id = request_id_var.get()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
            "service": getattr(record, "service", "-"), "machine_id": getattr(record, "machine_id", -1),
            "request_id": getattr(record, "request_id", "-"), "msg": record.getMessage(),
        })


def setup_logging(service: str, machine_id: int, level: str = "info", json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service, machine_id))
    handler.setFormatter(
        _JsonFormatter() if json_logs else logging.Formatter(
            "%(asctime)s %(levelname)s [%(service)s/%(machine_id)s %(request_id)s] %(name)s: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
