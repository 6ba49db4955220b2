"""`with group:` for the test's own server groups: started on entry, stopped on exit, and a
start that fails half-way stops what it did start before the error goes on."""

from __future__ import annotations

from typing import Self


class StoppedOnFailedStart:
    """Gives `with` to a class with `start() -> Self` and a `stop()` that copes with parts
    never started."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()  # what did start must not outlive a failed start
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()
