"""What the commands that talk to a cluster share (``faro run`` and ``faro discover``).

The contract: :func:`add_cluster_flags` adds ``--kubeconfig PATH`` and ``--context NAME``
(``KubernetesClient.from_environment`` takes them; by default the in-cluster service
account, then ``$KUBECONFIG``, then ``~/.kube/config``); :func:`cannot_reach` turns an
error from reaching the API server into the one line the command prints, naming the
server, the innermost useful reason (``connection refused``, a TLS failure, the server's
own status) and where the configuration came from.
"""

from __future__ import annotations

import argparse
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faro.client import KubernetesClient


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig file (default: in-cluster service account, then "
                        "$KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME",
                        help="kubeconfig context (default: its current-context)")


def reason(error: BaseException) -> str:
    """The innermost useful words of a connection error (``connection refused``)."""
    from faro.errors import ApiStatusError

    seen: set[int] = set()
    current: BaseException | None = error
    found = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ApiStatusError):
            return str(current)
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return f"TLS failed: {current.reason or current}"
        if isinstance(current, TimeoutError):
            found = "timed out"
        elif isinstance(current, OSError) and current.strerror:
            found = current.strerror[:1].lower() + current.strerror[1:]
        current = current.__cause__ or current.__context__
    return found or str(error)


def cannot_reach(error: BaseException, client: KubernetesClient) -> str:
    """One line for a cluster that cannot be reached, or that refused discovery."""
    from faro.errors import ApiStatusError

    host = str(getattr(client.api_client.configuration, "host", "") or "?")
    why = reason(error)
    chain: BaseException | None = error
    while chain is not None and not isinstance(chain, ApiStatusError):
        chain = chain.__cause__
    if chain is not None:
        return f"the Kubernetes API server at {host} refused: {why} (from {client.source})"
    return f"cannot reach the Kubernetes API server at {host}: {why} (from {client.source})"
