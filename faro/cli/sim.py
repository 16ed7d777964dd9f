"""``faro sim``: the simulated Kubernetes API server, on 127.0.0.1, until interrupted.

The contract (docs/cli.md, "faro sim"): serve HTTPS with a CA of its own (kubectl sends a
kubeconfig's token only over HTTPS; this needs the ``cryptography`` package from
``faro[sim]``) or plain HTTP with ``--http`` (a warning on stderr), write a kubeconfig for
it (``--kubeconfig-out``), print ``Simulated Kubernetes API server listening on URL`` and
``Press Ctrl-C to stop.`` on stdout, and on the first SIGINT or SIGTERM stop, print
``Stopped.`` and exit 0 (a second signal exits 1). A bad flag value is a usage error (exit
2); a port in use, an unwritable kubeconfig path or HTTPS without ``cryptography`` is one
``faro sim: error:`` line and exit 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from faro.cli._process import signals_to_main_thread


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               version: str) -> None:
    sim = commands.add_parser(
        "sim",
        help="run a simulated Kubernetes API server on 127.0.0.1",
        description="Serve a simulated Kubernetes API server on 127.0.0.1 until Ctrl-C. "
        "kubectl, the kubernetes client and faro accept it through the kubeconfig it writes. "
        "It serves HTTPS with a CA of its own (written into the kubeconfig), because kubectl "
        "sends a kubeconfig's token only over HTTPS.",
    )
    sim.add_argument("--version", action="version", version=version)
    sim.add_argument("--port", type=int, default=0,
                     help="TCP port to listen on (default: 0, a free port)")
    sim.add_argument("--kubeconfig-out", metavar="PATH", default="faro-sim.kubeconfig",
                     help="where to write the kubeconfig (default: ./faro-sim.kubeconfig)")
    sim.add_argument("--http", action="store_true",
                     help="serve plain HTTP instead of HTTPS: for clients that send tokens "
                     "over HTTP, such as the kubernetes Python client; kubectl is refused "
                     "(default: HTTPS, which needs the 'cryptography' package from faro[sim])")
    sim.add_argument("--token", help="bearer token to require (default: random)")
    sim.add_argument("--history-size", type=int, default=10_000, metavar="N",
                     help="changes remembered for watch resumption (default: 10000)")
    sim.add_argument("--bookmark-interval", type=float, default=60.0, metavar="SECONDS",
                     help="seconds between watch bookmarks (default: 60)")
    sim.set_defaults(command_parser=sim)


def have_cryptography() -> bool:
    """Whether the ``cryptography`` package (for HTTPS) can be imported."""
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


def command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from faro.testing import SimulatedCluster

    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: must be between 0 and 65535, got {args.port}")
    if args.history_size < 1:
        parser.error(f"argument --history-size: must be at least 1, got {args.history_size}")
    if not args.bookmark_interval > 0:
        parser.error("argument --bookmark-interval: must be positive, "
                     f"got {args.bookmark_interval}")
    if not args.http and not have_cryptography():
        print("faro sim: error: serving HTTPS needs the 'cryptography' package: "
              "pip install 'faro[sim]', or use --http", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise SystemExit(1)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    cluster = SimulatedCluster(
        port=args.port, tls=not args.http, token=args.token,
        kubeconfig_path=args.kubeconfig_out, history_size=args.history_size,
        bookmark_interval=args.bookmark_interval,
    )
    try:
        with signals_to_main_thread():
            cluster.start()
    except OSError as error:
        if error.filename is not None:
            print(f"faro sim: error: cannot write the kubeconfig to {args.kubeconfig_out}: "
                  f"{error.strerror}", file=sys.stderr)
        else:
            print(f"faro sim: error: cannot listen on 127.0.0.1:{args.port}: "
                  f"{error.strerror}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"faro sim: error: {error}", file=sys.stderr)
        return 1
    try:
        if args.http:
            print("faro sim: warning: serving plain HTTP: kubectl sends credentials only over "
                  "HTTPS and will be refused (401); drop --http to use kubectl",
                  file=sys.stderr, flush=True)
        print(f"Simulated Kubernetes API server listening on {cluster.url}")
        print(f"Kubeconfig written to {args.kubeconfig_out}")
        print("Try:")
        if args.http:
            print(f"  kubernetes.config.load_kube_config({args.kubeconfig_out!r})")
        else:
            print(f"  kubectl --kubeconfig {args.kubeconfig_out} api-resources")
            print(f"  kubectl --kubeconfig {args.kubeconfig_out} get namespaces")
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    finally:
        cluster.stop()
        print("Stopped.", flush=True)
    return 0
