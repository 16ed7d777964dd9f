"""Raw requests through the official client's urllib3 pool (informers, discovery, Leases).

The host, TLS, client certificates, bearer token and proxy all come from the
:class:`kubernetes.client.ApiClient`; urllib3's retries are off, so every wait
and retry is the caller's own.
"""

from __future__ import annotations

from typing import Any

import orjson
import urllib3
from kubernetes.client import ApiClient

from faro.errors import ApiStatusError


def get(api_client: ApiClient, path: str, *, query: list[tuple[str, str]] | None = None,
        timeout: tuple[float, float], preload_content: bool) -> Any:
    """Send ``GET path`` and return urllib3's response (any status); connection errors raise.

    ``timeout`` is (connect, read) in seconds.
    """
    method, url, headers, _body, _post = api_client.param_serialize(
        "GET", path, query_params=query or [],
        header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
    # Straight to the client's urllib3 pool, with its retries off: call_api leaves the
    # pool's default Retry(3), which sleeps whatever Retry-After a 429 or 503 asks for
    # inside the request (uncapped, deaf to stop(), never seen by health()) and retries
    # connection errors without backoff. faro's callers do both themselves.
    try:
        return api_client.rest_client.pool_manager.request(
            method, url, headers=headers, preload_content=preload_content, retries=False,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
    except ValueError as error:
        raise without_credentials(error) from None


def send_json(api_client: ApiClient, method: str, path: str, body: Any, *,
              timeout: float) -> tuple[int, bytes]:
    """Send ``method path`` with ``body`` (None: no body) as JSON, wait at most ``timeout``
    seconds in all, and return (status, body read). Connection errors, timeouts and a bad
    header raise (a header's value never appears in the error)."""
    method, url, headers, _body, _post = api_client.param_serialize(
        method, path, header_params={"Accept": "application/json",
                                     "Content-Type": "application/json"},
        auth_settings=["BearerToken"])
    try:
        response = api_client.rest_client.pool_manager.request(
            method, url, headers=headers,
            body=orjson.dumps(body) if body is not None else None, retries=False,
            timeout=urllib3.Timeout(total=timeout))
    except ValueError as error:
        raise without_credentials(error) from None
    return int(response.status), bytes(response.data)


def without_credentials(error: ValueError) -> ValueError:
    """``error``, or when it quotes a header value, one that does not.

    http.client quotes the whole offending value, which for faro's requests is the
    Authorization header: a bearer token must never reach a log line or an error message.
    """
    if "Invalid header value" not in str(error):
        return error
    return ValueError("a request header has an invalid value (a line break or control "
                      "character in the bearer token?); the value is not shown, as it may be "
                      "a credential")


def status_error(response: Any, body: bytes, path: str) -> ApiStatusError:
    """The error an answer with a failure status stands for (``body``: what was read of it)."""
    return ApiStatusError.from_status(
        response.status, body, retry_after=response.headers.get("Retry-After"),
        request=f"GET {path}")
