"""API errors of the simulated server, rendered as Kubernetes ``Status`` objects."""

from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error answered with HTTP ``code`` and a ``Status`` body.

    ``reason`` defaults to the reason kube-apiserver uses for the code.
    ``retry_after`` (seconds) becomes a ``Retry-After`` header and
    ``details.retryAfterSeconds``.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        # An explicitly empty ``details`` is kept ({}): the real server's generic errors
        # (unknown resource, method not allowed) carry an empty StatusDetails.
        self.empty_details = details is not None and not details
        self.details = dict(details or {})
        self.retry_after = retry_after
        if retry_after is not None:
            self.details["retryAfterSeconds"] = retry_after
        self.list_continue = ""  # metadata.continue of the Status (a 410 for a stale token)
        self.headers: list[tuple[str, str]] = []  # more response headers

    def status(self) -> dict[str, Any]:
        """The ``Status`` object describing this error, its fields in the real server's order."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {"continue": self.list_continue} if self.list_continue else {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.reason == "Unknown":  # Go's StatusReasonUnknown is "", which JSON omits
            del status["reason"]
        if self.details or self.empty_details:
            status["details"] = self.details
        status["code"] = self.code
        return status


def qualified(plural: str, group: str) -> str:
    """``configmaps`` or ``deployments.apps``: how messages name a resource."""
    return f"{plural}.{group}" if group else plural


def status_details(name: str, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    """StatusDetails about one object; empty fields are omitted, as Go's encoding does.

    ``kind`` is what the real server puts there: the resource plural for most
    errors, the kind for Invalid. ``extra`` adds fields such as ``uid`` or ``causes``.
    """
    details = {"name": name, "group": group, "kind": kind, **extra}
    return {k: v for k, v in details.items() if v}


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{qualified(plural, group)} "{name}" not found',
        details=status_details(name, group, plural),
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{qualified(plural, group)} "{name}" already exists',
        reason="AlreadyExists",
        details=status_details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        details=status_details(name, group, plural),
    )


_CAUSE_TYPES = (
    ("Required value", "FieldValueRequired"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Forbidden", "FieldValueForbidden"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Not found", "FieldValueNotFound"),
)


def _cause_type(message: str) -> str:
    """The StatusCause reason of a field error, from its message's leading type text."""
    for prefix, cause in _CAUSE_TYPES:
        if message.startswith(prefix):
            return cause
    return "FieldValueInvalid"


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (field, message) pairs.

    As apimachinery's ``NewInvalid``: the message names the group-qualified kind
    (``Deployment.apps "x" is invalid: ...``), several errors are bracketed, and
    each cause's reason is the field error type (``FieldValueRequired``, ...).
    """
    texts = list(dict.fromkeys(f"{field}: {message}" for field, message in causes))
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = status_details(name, group, kind, causes=[
        {"reason": _cause_type(message), "message": message, "field": field}
        for field, message in causes
    ])
    return ApiError(422, f'{qualified(kind, group)} "{name}" is invalid: {text}',
                    details=details)


def expired(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")


def not_found_generic() -> ApiError:
    """The 404 of a path the API handlers do not serve (unknown resource or version)."""
    return ApiError(404, "the server could not find the requested resource", details={})


def method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource",
                    details={})


def too_large_resource_version(requested: int, current: int) -> ApiError:
    return ApiError(
        504,
        f"Timeout: Too large resource version: {requested}, current: {current}",
        reason="Timeout",
        details={
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ]
        },
        retry_after=1,
    )
