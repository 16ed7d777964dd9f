"""Errors faro raises, shared by its modules.

:class:`ApiStatusError` carries what the API server said about a failed
request (HTTP status, its ``Status`` object's reason and message, and
``Retry-After``), so callers can decide what to do without parsing text.
"""

from __future__ import annotations

from typing import Any

import orjson


class FaroError(Exception):
    """Base class of faro's own errors."""


class ApiStatusError(FaroError):
    """The API server answered a request with an error status.

    ``status`` is the HTTP status (or the ``code`` of an in-stream ERROR
    event), ``reason`` the Status object's machine-readable reason
    (``Expired``, ``Timeout``, ``NotFound``...), ``message`` its text,
    ``causes`` the reasons listed in its details, and ``retry_after`` the
    seconds the server asked the client to wait, if it did.
    """

    def __init__(self, status: int, reason: str = "", message: str = "", *,
                 causes: tuple[str, ...] = (), retry_after: float | None = None,
                 request: str = "") -> None:
        self.status = status
        """The HTTP status, or the ``code`` of an in-stream ERROR event."""
        self.reason = reason
        """The Status object's machine-readable reason (``Expired``, ``NotFound``...), or ""."""
        self.message = message
        """The Status object's message, or ""."""
        self.causes = causes
        """The reasons listed in the Status object's ``details.causes``."""
        self.retry_after = retry_after
        """Seconds the server asked the client to wait (``Retry-After``), or None."""
        self.request = request
        """The request that failed (``"GET /api/v1/pods"``), or ""; it ends the message."""
        text = f"HTTP {status}"
        if reason:
            text += f" {reason}"
        if message:
            text += f": {message}"
        if request:
            text += f" ({request})"
        super().__init__(text)

    @property
    def is_expired(self) -> bool:
        """410 Gone / Expired: the resourceVersion or continue token is too old."""
        return self.status == 410

    @property
    def is_too_large_resource_version(self) -> bool:
        """The server has not reached the requested resourceVersion yet (client-go's rule)."""
        return ("ResourceVersionTooLarge" in self.causes
                or "Too large resource version" in self.message)

    @property
    def is_unauthorized(self) -> bool:
        """401 or 403: the credentials were rejected or lack permission."""
        return self.status in (401, 403)

    @classmethod
    def from_status(cls, status: int, body: bytes | dict[str, Any] | None, *,
                    retry_after: str | None = None, request: str = "") -> ApiStatusError:
        """Build the error from an HTTP status and a (possibly absent or non-JSON) Status body."""
        reason = message = ""
        causes: tuple[str, ...] = ()
        data: Any = body
        if isinstance(body, bytes | bytearray):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = None
                message = bytes(body[:200]).decode("utf-8", "replace").strip()
        if isinstance(data, dict):
            reason = str(data.get("reason") or "")
            message = str(data.get("message") or "")
            status = int(data.get("code") or status)
            details = data.get("details")
            if isinstance(details, dict) and isinstance(details.get("causes"), list):
                causes = tuple(str(c.get("reason", "")) for c in details["causes"]
                               if isinstance(c, dict))
        return cls(status, reason, message, causes=causes,
                   retry_after=_parse_retry_after(retry_after), request=request)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
