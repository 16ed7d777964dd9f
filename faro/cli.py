"""The ``faro`` command line.

Subcommands:
  faro sim   run the simulated Kubernetes API server until interrupted; it serves
             HTTPS (kubectl sends tokens only over TLS) unless --http is given

Exit codes: 0 success, 1 runtime failure, 2 usage error. Signal handlers are
installed here, never by the library.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
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
        "kubectl, the kubernetes client and faro accept it through the kubeconfig it writes. "
        "It serves HTTPS with a CA of its own (written into the kubeconfig), because kubectl "
        "sends a kubeconfig's token only over HTTPS.",
    )
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
    return parser


def _have_cryptography() -> bool:
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _signals_to_main_thread() -> Iterator[None]:
    """Block SIGINT and SIGTERM in the threads started inside (and their threads).

    The kernel may deliver a process signal to any thread that does not block
    it; Python runs the handler only in the main thread, and a main thread
    blocked waiting on a lock is not woken when another thread took the signal.
    So the server's threads must not take them.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows: signals go to the main thread
        yield
        return
    stops = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _run_sim(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from faro.testing import SimulatedCluster

    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: must be between 0 and 65535, got {args.port}")
    if args.history_size < 1:
        parser.error(f"argument --history-size: must be at least 1, got {args.history_size}")
    if not args.bookmark_interval > 0:
        parser.error("argument --bookmark-interval: must be positive, "
                     f"got {args.bookmark_interval}")
    if not args.http and not _have_cryptography():
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
        with _signals_to_main_thread():
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the faro command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        return _run_sim(args.command_parser, args)
    parser.print_help(sys.stderr)
    return 2
