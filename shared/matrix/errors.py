"""One error type for every Matrix error response: `{"errcode": ..., "error": ...}`."""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error that becomes a Matrix JSON error response with `status`."""

    def __init__(
        self,
        status: int,
        errcode: str,
        error: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


class NotFound(MatrixError):
    def __init__(self, error: str = "Media not found") -> None:
        super().__init__(404, "M_NOT_FOUND", error)


class Unrecognized(MatrixError):
    def __init__(self, error: str = "Unrecognized request", status: int = 404) -> None:
        super().__init__(status, "M_UNRECOGNIZED", error)


class MissingToken(MatrixError):
    def __init__(self, error: str = "Missing access token") -> None:
        super().__init__(401, "M_MISSING_TOKEN", error)


class UnknownToken(MatrixError):
    def __init__(self, error: str = "Unrecognised access token") -> None:
        super().__init__(401, "M_UNKNOWN_TOKEN", error, extra={"soft_logout": False})


class Unauthorized(MatrixError):
    def __init__(self, error: str) -> None:
        super().__init__(401, "M_UNAUTHORIZED", error)


class Forbidden(MatrixError):
    def __init__(self, error: str) -> None:
        super().__init__(403, "M_FORBIDDEN", error)


class GuestAccessForbidden(MatrixError):
    def __init__(self, error: str = "Guest access is not allowed here") -> None:
        super().__init__(403, "M_GUEST_ACCESS_FORBIDDEN", error)


class TooLarge(MatrixError):
    def __init__(self, error: str = "Content too large", status: int = 413) -> None:
        super().__init__(status, "M_TOO_LARGE", error)


class BadRequest(MatrixError):
    def __init__(self, error: str, errcode: str = "M_UNKNOWN") -> None:
        super().__init__(400, errcode, error)


class InvalidParam(MatrixError):
    def __init__(self, error: str) -> None:
        super().__init__(400, "M_INVALID_PARAM", error)


class MissingParam(MatrixError):
    def __init__(self, error: str) -> None:
        super().__init__(400, "M_MISSING_PARAM", error)


class CannotOverwrite(MatrixError):
    def __init__(self, error: str = "Media already has content") -> None:
        super().__init__(409, "M_CANNOT_OVERWRITE_MEDIA", error)


class NotYetUploaded(MatrixError):
    def __init__(self, error: str = "Media has not been uploaded yet") -> None:
        super().__init__(504, "M_NOT_YET_UPLOADED", error)


class LimitExceeded(MatrixError):
    def __init__(self, retry_after_seconds: float, error: str = "Too many requests") -> None:
        retry_ms = max(int(retry_after_seconds * 1000), 1)
        super().__init__(
            429,
            "M_LIMIT_EXCEEDED",
            error,
            headers={"Retry-After": str(max(int(retry_after_seconds + 0.999), 1))},
            extra={"retry_after_ms": retry_ms},
        )


class UpstreamError(MatrixError):
    """A remote server or a backing service failed: 502."""

    def __init__(self, error: str, errcode: str = "M_UNKNOWN") -> None:
        super().__init__(502, errcode, error)


class ServiceUnavailable(MatrixError):
    """This process cannot do the request right now but will recover by itself: 503."""

    def __init__(self, error: str, retry_after_seconds: float = 5.0) -> None:
        super().__init__(
            503, "M_UNKNOWN", error,
            headers={"Retry-After": str(max(int(retry_after_seconds + 0.999), 1))},
            extra={"retry_after_ms": max(int(retry_after_seconds * 1000), 1)},
        )


class UnknownHost(MatrixError):
    """The request's Host names no homeserver this deployment serves."""

    def __init__(self, host: str) -> None:
        super().__init__(
            404, "M_NOT_FOUND", f"This media repository does not serve the homeserver {host!r}"
        )
