"""The ``faro`` command line.

Subcommands:
  faro sim   run the simulated Kubernetes API server until interrupted

Exit codes: 0 success, 1 runtime failure, 2 usage error. Signal handlers are
installed here, never by the library.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from faro import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faro",
        description="Watch Kubernetes resources the way client-go informers do.",
    )
    parser.add_argument("--version", action="version", version=f"faro {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = commands.add_parser(
        "sim",
        help="run a simulated Kubernetes API server on 127.0.0.1",
        description="Serve a simulated Kubernetes API server on 127.0.0.1 until Ctrl-C. "
        "kubectl, the kubernetes client and faro accept it through the kubeconfig it writes.",
    )
    sim.add_argument("--port", type=int, default=0,
                     help="TCP port to listen on (default: 0, a free port)")
    sim.add_argument("--kubeconfig-out", metavar="PATH", default="faro-sim.kubeconfig",
                     help="where to write the kubeconfig (default: ./faro-sim.kubeconfig)")
    sim.add_argument("--tls", action="store_true",
                     help="serve HTTPS with a generated CA (needs the 'cryptography' package)")
    sim.add_argument("--token", help="bearer token to require (default: random)")
    sim.add_argument("--history-size", type=int, default=10_000, metavar="N",
                     help="changes remembered for watch resumption (default: 10000)")
    sim.add_argument("--bookmark-interval", type=float, default=60.0, metavar="SECONDS",
                     help="seconds between watch bookmarks (default: 60)")
    return parser


def _run_sim(args: argparse.Namespace) -> int:
    from faro.testing import SimulatedCluster

    if not 0 <= args.port <= 65535:
        print(f"faro sim: error: --port must be between 0 and 65535, got {args.port}",
              file=sys.stderr)
        return 2
    if args.history_size < 1:
        print("faro sim: error: --history-size must be at least 1", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise SystemExit(1)
        stop.set()

    cluster = SimulatedCluster(
        port=args.port, tls=args.tls, token=args.token, kubeconfig_path=args.kubeconfig_out,
        history_size=args.history_size, bookmark_interval=args.bookmark_interval,
    )
    try:
        cluster.start()
    except OSError as error:
        print(f"faro sim: error: cannot listen on 127.0.0.1:{args.port}: {error.strerror}",
              file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"faro sim: error: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(f"Simulated Kubernetes API server listening on {cluster.url}")
        print(f"Kubeconfig written to {args.kubeconfig_out}")
        print("Try:")
        print(f"  kubectl --kubeconfig {args.kubeconfig_out} api-resources")
        print(f"  kubectl --kubeconfig {args.kubeconfig_out} get namespaces")
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    finally:
        cluster.stop()
        print("Stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the faro command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        return _run_sim(args)
    parser.print_help()
    return 2
