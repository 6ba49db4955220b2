"""Logging setup: every line names the service, the machine and the request."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from pathlib import Path

from shared.config import RepoConfig
from shared.web.middleware import homeserver_var, request_id_var


class _ContextFilter(logging.Filter):
    def __init__(self, service: str, machine_id: int) -> None:
        super().__init__()
        self.service = service
        self.machine_id = machine_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.machine_id = self.machine_id
        record.request_id = request_id_var.get()
        record.homeserver = homeserver_var.get()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
            "service": getattr(record, "service", "-"), "machine_id": getattr(record, "machine_id", -1),
            "request_id": getattr(record, "request_id", "-"),
            "homeserver": getattr(record, "homeserver", "-"), "msg": record.getMessage(),
            **({"exc": self.formatException(record.exc_info)} if record.exc_info else {}),
        })


_TEXT_FORMAT = (
    "%(asctime)s %(levelname)s [%(service)s/%(machine_id)s %(request_id)s %(homeserver)s] "
    "%(name)s: %(message)s"
)
_LEVEL_COLOURS = {"DEBUG": "36", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "35"}


class _ColourFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        colour = _LEVEL_COLOURS.get(record.levelname)
        return f"\x1b[{colour}m{text}\x1b[0m" if colour else text


def _formatter(repo: RepoConfig, colours: bool) -> logging.Formatter:
    if repo.json_logs:
        return _JsonFormatter()
    return _ColourFormatter(_TEXT_FORMAT) if colours else logging.Formatter(_TEXT_FORMAT)


def setup_logging(service: str, machine_id: int, repo: RepoConfig) -> None:
    """Log to stderr (coloured when `repo.logColors`) and, with `repo.logDirectory`, to a file
    per process named after its service and machine, so processes sharing a directory never
    write to one file."""
    context = _ContextFilter(service, machine_id)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_formatter(repo, colours=repo.log_colors))
    handlers: list[logging.Handler] = [console]
    if repo.log_directory:
        directory = Path(repo.log_directory)
        directory.mkdir(parents=True, exist_ok=True)
        file = logging.handlers.WatchedFileHandler(directory / f"mmr-{service}-{machine_id}.log")
        file.setFormatter(_formatter(repo, colours=False))
        handlers.append(file)
    for handler in handlers:
        handler.addFilter(context)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(repo.log_level.upper())
