"""Task functions by name: modules register theirs at import with `@task("name")`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.runtime import Runtime

Checkpoint = Callable[[dict[str, Any], int, "int | None"], Awaitable[None]]


@dataclass
class TaskContext:
    """What a running task sees."""

    task_id: int
    name: str
    params: dict[str, Any]
    state: dict[str, Any] | None
    runtime: Runtime
    _checkpoint: Checkpoint

    async def checkpoint(self, state: dict[str, Any], done: int, total: int | None = None) -> None:
        """Save `state` (JSON) and progress; a resumed run starts from the last saved state."""
        self.state = state
        await self._checkpoint(state, done, total)


TaskFunction = Callable[[TaskContext], Awaitable["dict[str, Any] | None"]]

_REGISTRY: dict[str, TaskFunction] = {}


class UnknownTask(KeyError):
    """No function is registered under that task name (its module was not imported)."""


def task(name: str) -> Callable[[TaskFunction], TaskFunction]:
    """Register the decorated function as the task `name` (names are unique)."""

    def register(function: TaskFunction) -> TaskFunction:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"task name {name!r} is already registered by {existing.__qualname__}")
        _REGISTRY[name] = function
        return function

    return register


def lookup(name: str) -> TaskFunction:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTask(name) from None

