"""The ``faro`` command line (docs/cli.md describes every command).

Commands:
  faro run       watch what a configuration names until SIGINT/SIGTERM or auto-shutdown
                 (``faro --config FILE ...`` without a command, and the Go original's
                 ``-config=FILE`` single-dash flags, mean ``faro run``)
  faro validate  check a configuration and print the informers it asks for (no cluster)
  faro discover  list the resources a cluster serves that faro can watch
  faro sim       run the simulated Kubernetes API server until interrupted; it serves
                 HTTPS (kubectl sends tokens only over TLS) unless --http is given
  faro demo      run faro against an in-process simulator, change objects, show the events

Exit codes: 0 success (also after a stop by a signal or by auto-shutdown), 1 runtime failure
(the cluster cannot be reached or refuses, no usable kubeconfig, the metrics port is taken,
threads left running after the stop timeout), 2 usage or configuration error (arguments, the
configuration file, a resource the cluster does not serve). Errors are one line on stderr,
``faro: error: ...``, never a traceback.

Signal handlers are installed here, never by the library: the first SIGINT or SIGTERM stops
the controller gracefully (``Controller.stop(timeout=30)``), a second one during that stop
exits at once with status 1. Every thread faro starts blocks both signals, so the kernel
delivers them to the main thread, the only one where Python runs handlers.

:func:`main` also takes ``configure``: a callable given the :class:`~faro.Controller` of
``faro run`` before it starts, so a program can run the faro command with handlers of its own
(``sys.exit(faro.cli.main(configure=lambda c: c.add_event_handler(my_handler)))``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from faro import __version__

if TYPE_CHECKING:
    from faro.client import KubernetesClient
    from faro.config import Config, NormalizedConfig
    from faro.controller import Controller
    from faro.events import MatchedEvent
    from faro.gvr import GroupVersionResource
    from faro.logs import LoggingSetup
    from faro.testing import SimulatedCluster

logger = logging.getLogger("faro.cli")
demo_logger = logging.getLogger("faro.demo")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # SIGINT before the signal handlers are installed (128 + 2)

STOP_TIMEOUT = 30.0
"""Seconds ``faro run`` gives ``Controller.stop()`` after a signal or auto-shutdown."""

DEMO_OUTPUT_DIR = "faro-demo-output"
"""Where ``faro demo`` writes its configuration, log file and JSON events by default."""

_POLL = 0.1
"""Seconds between the main thread's checks for a signal while it waits (its only latency)."""

_COMMANDS = ("run", "validate", "discover", "sim", "demo")

Configure = Callable[["Controller"], object]
"""A hook given the controller of ``faro run`` before it starts (see :func:`main`)."""


# ---------------------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faro",
        description="Watch Kubernetes resources the way client-go informers do. "
        "'faro --config FILE [flags]' without a command is 'faro run'; the Go original's "
        "single-dash flags (-config=FILE, -output-dir DIR, -log-level L, -auto-shutdown N) "
        "are accepted too.",
        epilog="Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. "
        "See docs/cli.md.",
    )
    version = f"faro {__version__}"
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run", allow_abbrev=False,
        help="watch the resources a configuration names, until SIGINT/SIGTERM",
        description="Load the configuration, connect to the cluster, start the informers and "
        "log every matched event (logger faro.events) until SIGINT or SIGTERM (a second one "
        "during the stop exits at once) or auto-shutdown. Flags override the file's settings. "
        "'faro is ready' is logged once every informer has listed.",
        epilog="Exit codes: 0 stopped cleanly, 1 runtime failure (cluster unreachable, no "
        "usable kubeconfig, metrics port taken, stop timed out), 2 usage or configuration "
        "error (also a resource the cluster does not serve).",
    )
    run.add_argument("--version", action="version", version=version)
    run.add_argument("--config", required=True, metavar="FILE",
                     help="the YAML configuration (docs/config.md)")
    run.add_argument("--output-dir", metavar="DIR",
                     help="directory for the log file and the JSON events (overrides output_dir)")
    run.add_argument("--log-level", metavar="LEVEL",
                     help="debug, info, warning, error or fatal (overrides log_level)")
    run.add_argument("--auto-shutdown", type=float, metavar="SECONDS",
                     help="stop after this many seconds, exit 0; 0 runs until a signal "
                     "(overrides auto_shutdown_sec)")
    run.add_argument("--json-export", action=argparse.BooleanOptionalAction, default=None,
                     help="write every matched event to {output_dir}/events-*.json, or not "
                     "(overrides json_export)")
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics and /healthz, /readyz on this port "
                     "(0: a free one); enables metrics (overrides metrics.port and "
                     "metrics.enabled)")
    _add_cluster_flags(run)
    run.set_defaults(command_parser=run)

    validate = commands.add_parser(
        "validate", allow_abbrev=False,
        help="check a configuration and print the informers it asks for (no cluster needed)",
        description="Validate a configuration file and print its plan: the list/watch request "
        "of every informer (resource, namespace, server-side selectors), which entries share "
        "one, the client-side filters, and the settings. Exit 0 when valid, 2 when not (the "
        "problem on stderr).",
    )
    validate.add_argument("--version", action="version", version=version)
    validate.add_argument("file", metavar="FILE", help="the YAML configuration")
    validate.add_argument("-o", "--output", choices=("text", "json"), default="text",
                          help="text for people (default) or json for programs")
    validate.set_defaults(command_parser=validate)

    discover = commands.add_parser(
        "discover", allow_abbrev=False,
        help="list the resources a cluster serves that faro can watch",
        description="List every resource the cluster serves with both list and watch (what an "
        "informer needs), every served version, as the group/version/resource strings a "
        "configuration uses, with scope, kind and short names. Exit 1 when the cluster "
        "cannot be reached.",
    )
    discover.add_argument("--version", action="version", version=version)
    _add_cluster_flags(discover)
    discover.add_argument("-o", "--output", choices=("text", "json"), default="text",
                          help="a table (default) or json")
    discover.set_defaults(command_parser=discover)

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

    demo = commands.add_parser(
        "demo", allow_abbrev=False,
        help="run faro against a built-in simulated cluster and show its events",
        description="Start the simulated API server in this process (HTTPS when the "
        "'cryptography' package is installed, else HTTP), run faro with a sample "
        "configuration in both formats, create, update and delete objects (some that the "
        "configuration filters out), stream the event lines, then stop and say where the "
        "JSON events and the log file are. Exits by itself: 0 when every expected event "
        "arrived.",
    )
    demo.add_argument("--version", action="version", version=version)
    demo.add_argument("--output-dir", metavar="DIR", default=DEMO_OUTPUT_DIR,
                      help=f"where the configuration, log file and JSON events go "
                      f"(default: {DEMO_OUTPUT_DIR})")
    demo.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                      help="how long to wait for readiness, and then for the expected events "
                      "(default: 30)")
    demo.add_argument("--linger", type=float, default=0.0, metavar="SECONDS",
                      help="after the scripted changes, keep faro and the simulator running "
                      "this long (Ctrl-C ends it early) to try kubectl against the printed "
                      "kubeconfig (default: 0)")
    demo.set_defaults(command_parser=demo)
    return parser


def _add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig file (default: in-cluster service account, then "
                        "$KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME",
                        help="kubeconfig context (default: its current-context)")


# The long flags of `faro run` that may be written Go-style, with one dash.
_GO_FLAGS = frozenset({"config", "output-dir", "log-level", "auto-shutdown", "kubeconfig",
                       "context", "metrics-port", "json-export", "no-json-export"})


def _go_style(args: Sequence[str]) -> list[str]:
    """``-config=F`` → ``--config=F``, ``-log-level L`` → ``--log-level L`` (Go's flag syntax).

    Only the run flags are translated, so ``-h`` and values that merely start with ``-``
    stay; nothing after ``--`` is touched.
    """
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            out.extend(args[index:])
            break
        if arg.startswith("-") and not arg.startswith("--") and \
                arg[1:].split("=", 1)[0] in _GO_FLAGS:
            arg = "-" + arg
        out.append(arg)
    return out


def _with_implied_run(argv: Sequence[str]) -> list[str]:
    """The arguments with ``run`` inserted when they start with a flag of ``faro run``."""
    if not argv:
        return []
    first = argv[0]
    if first == "run":
        return ["run", *_go_style(argv[1:])]
    if first in _COMMANDS:
        return list(argv)
    translated = _go_style(argv)
    if translated[0].startswith("--") and translated[0][2:].split("=", 1)[0] in _GO_FLAGS:
        return ["run", *translated]
    return list(argv)


# --------------------------------------------------------------------------------- signals


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


class _Shutdown:
    """SIGINT/SIGTERM for a long-running command: the first asks for a stop, the next exits.

    The handler only records the signal (it runs between two bytecodes of the main thread,
    which may hold any lock); the main thread polls for it while it waits. A second signal
    exits at once with :func:`_exit_at_once`: worker threads are not daemons, so raising
    SystemExit would leave the interpreter waiting for them.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # main() called from another thread: the embedding program owns signals
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None or self.stopping:
            _exit_at_once(f"received {name} again while stopping: exiting at once")
        self.received = signum

    @property
    def reason(self) -> str:
        return f"received {signal.Signals(self.received).name}" if self.received else ""

    def wait(self, seconds: float | None = None,
             until: Callable[[], bool] | None = None) -> bool:
        """Wait for a signal (True), ``seconds`` (None or 0: no limit) or ``until()`` (False)."""
        deadline = time.monotonic() + seconds if seconds else None
        while self.received is None:
            if until is not None and until():
                return False
            remaining = _POLL if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL, remaining))
        return True


def _handlers_of(log: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``log`` reaches (its own and its ancestors', as propagation)."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = log
    while current is not None:
        handlers.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    return handlers


def _exit_at_once(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Log ``message``, flush every handler and the standard streams, and ``os._exit(code)``.

    Called from a signal handler too, where the interrupted code may be inside a handler:
    their locks are re-entrant for this thread, and waited for at most a second each when
    another thread holds one.
    """
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), None)
    handlers = _handlers_of(logger)
    for handler in handlers:
        if record.levelno < handler.level:
            continue
        lock = handler.lock
        if lock is not None and not lock.acquire(timeout=1.0):
            continue
        try:
            handler.handle(record)
            handler.flush()
        except Exception:  # exiting anyway: nothing must stop it
            pass
        finally:
            if lock is not None:
                lock.release()
    if not handlers:
        with contextlib.suppress(OSError):
            os.write(2, f"faro: {message}\n".encode())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# ---------------------------------------------------------------------------------- errors


def _fail(message: str, code: int) -> int:
    """Print ``faro: error: message`` on stderr and log it to the log files only; return code.

    The console handler (stderr) is skipped so that the error shows once.
    """
    message = re.sub(r"\s*\n\s*", " ", message.strip())  # a YAML error spans lines
    print(f"faro: error: {message}", file=sys.stderr, flush=True)
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in _handlers_of(logger):
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)
    return code


def _unexpected(error: BaseException, logs: LoggingSetup | None) -> int:
    """A bug, not a condition: the traceback goes to the log file, one line to stderr."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "unexpected error",
                               (), (type(error), error, error.__traceback__))
    for handler in _handlers_of(logger):
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    where = f" (traceback in {logs.log_file})" if logs is not None else ""
    print(f"faro: error: unexpected {type(error).__name__}: {error}{where}",
          file=sys.stderr, flush=True)
    return EXIT_FAILURE


def _reason(error: BaseException) -> str:
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


def _cannot_reach(error: BaseException, client: KubernetesClient) -> str:
    """One line for a cluster that cannot be reached, or that refused discovery."""
    from faro.errors import ApiStatusError

    host = str(getattr(client.api_client.configuration, "host", "") or "?")
    reason = _reason(error)
    chain: BaseException | None = error
    while chain is not None and not isinstance(chain, ApiStatusError):
        chain = chain.__cause__
    if chain is not None:
        return f"the Kubernetes API server at {host} refused: {reason} (from {client.source})"
    return f"cannot reach the Kubernetes API server at {host}: {reason} (from {client.source})"


@contextlib.contextmanager
def _console_warnings() -> Iterator[None]:
    """faro's warnings as ``faro: warning: ...`` on stderr, for commands without a log setup."""
    faro_logger = logging.getLogger("faro")
    if faro_logger.handlers:  # configured by the embedding program
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_LowerLevelFormatter("faro: %(levelname)s: %(message)s"))
    faro_logger.addHandler(handler)
    try:
        yield
    finally:
        faro_logger.removeHandler(handler)


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace(f"{record.levelname}:",
                                              f"{record.levelname.lower()}:", 1)


# ------------------------------------------------------------------------------------- run


_FLAG_OF = {"output_dir": "--output-dir", "log_level": "--log-level",
            "auto_shutdown_sec": "--auto-shutdown", "json_export": "--json-export",
            "metrics": "--metrics-port"}


def _with_flags(parser: argparse.ArgumentParser, config: Config,
                args: argparse.Namespace) -> Config:
    """The configuration with the command line's overrides (flags win); bad values exit 2."""
    from faro.config import ConfigError

    changes: dict[str, Any] = {
        "output_dir": args.output_dir, "log_level": args.log_level,
        "auto_shutdown_sec": args.auto_shutdown, "json_export": args.json_export}
    if args.metrics_port is not None:
        changes["metrics"] = dataclasses.replace(config.metrics, enabled=True,
                                                 port=args.metrics_port)
    for key, value in changes.items():
        if value is None:
            continue
        try:
            config = config.with_overrides(**{key: value})
        except ConfigError as error:
            parser.error(f"argument {_FLAG_OF[key]}: {error.problem}")
    return config


def _setup_logging(config: Config) -> LoggingSetup:
    from faro.logs import setup_logging

    with _signals_to_main_thread():
        return setup_logging(config)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace,
         configure: Configure | None) -> int:
    from faro.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return _fail(str(error), EXIT_USAGE)
    config = _with_flags(parser, config, args)
    try:
        logs = _setup_logging(config)
    except OSError as error:
        return _fail(f"cannot write the log file under {config.output_dir}: "
                     f"{error.strerror or error}", EXIT_FAILURE)
    shutdown = _Shutdown()
    shutdown.install()
    try:
        return _serve(config, args, logs, shutdown, configure)
    except Exception as error:
        return _unexpected(error, logs)
    finally:
        shutdown.restore()
        logs.close()


def _serve(config: Config, args: argparse.Namespace, logs: LoggingSetup,
           shutdown: _Shutdown, configure: Configure | None) -> int:
    from faro.client import ClientConfigError, KubernetesClient
    from faro.controller import Controller

    logger.info("faro %s starting: config %s, output dir %s, log file %s", __version__,
                config.source, config.output_dir, logs.log_file)
    try:
        client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                   context=args.context)
    except ClientConfigError as error:
        return _fail(str(error), EXIT_FAILURE)
    try:
        logger.info("cluster: %s at %s", client.source, client.api_client.configuration.host)
        controller = Controller(client, config)
        try:
            if configure is not None:
                configure(controller)
            controller.set_ready_callback(lambda: _announce_ready(controller))
            failed = _start(controller, client)
            if failed is not None:
                return failed
            if shutdown.wait(config.auto_shutdown_sec, until=lambda: controller.stopped):
                reason = shutdown.reason
            elif controller.stopped:
                reason = "the controller was stopped (by a handler)"
            else:
                reason = f"auto shutdown after {config.auto_shutdown_sec:g} s"
            return _stop(controller, shutdown, reason)
        except BaseException:  # a bug: stop the worker threads, or the exit would wait
            shutdown.stopping = True
            if not controller.stop(timeout=STOP_TIMEOUT):
                _exit_at_once("faro did not stop after an unexpected error")
            raise
    finally:
        client.close()


def _announce_ready(controller: Controller) -> None:
    active = controller.get_active_informers()
    address = controller.metrics_address
    metrics = f", metrics on port {address[1]}" if address else ""
    logger.info("faro is ready: %d informers%s", active.config_driven + active.dynamic, metrics)


def _start(controller: Controller, client: KubernetesClient) -> int | None:
    """Start the controller; None when it runs, else the exit code (after one error line)."""
    import urllib3

    from faro.config import ConfigError
    from faro.discovery import DiscoveryError
    from faro.errors import ApiStatusError, FaroError

    try:
        with _signals_to_main_thread():
            controller.start()
    except ConfigError as error:
        message, code = str(error), EXIT_USAGE
    except (DiscoveryError, ApiStatusError, urllib3.exceptions.HTTPError) as error:
        message, code = _cannot_reach(error, client), EXIT_FAILURE
    except OSError as error:  # with a file name: the JSON event file; else the network
        message = f"cannot create {error.filename}: {error.strerror}" if error.filename \
            else _cannot_reach(error, client)
        code = EXIT_FAILURE
    except FaroError as error:  # the metrics server could not start, and the like
        message, code = str(error), EXIT_FAILURE
    else:
        if controller.events_file is not None:
            logger.info("writing matched events as JSON lines to %s", controller.events_file)
        return None
    controller.stop(timeout=5)  # what start() left (nothing, usually): before the error line
    return _fail(message, code)


def _stop(controller: Controller, shutdown: _Shutdown, reason: str) -> int:
    shutdown.stopping = True  # from here a signal exits at once
    logger.info("%s: stopping (waiting up to %g s; a second SIGINT or SIGTERM exits at once)",
                reason, STOP_TIMEOUT)
    if not controller.stop(timeout=STOP_TIMEOUT):
        # Worker threads are still running a handler and are not daemons: a normal exit
        # would wait for them forever.
        _exit_at_once(f"faro did not stop within {STOP_TIMEOUT:g} s (see above); exiting "
                      "with threads still running")
    logger.info("faro stopped")
    return EXIT_OK


# -------------------------------------------------------------------------------- validate


@dataclasses.dataclass
class _PlannedInformer:
    """One list/watch request the controller will make, and the entries it serves."""

    gvr: GroupVersionResource
    namespace: str | None
    namespace_pattern: str | None
    label_selector: str | None
    field_selector: str | None
    entries: list[NormalizedConfig]

    @property
    def cluster_scoped(self) -> bool:
        return bool(self.entries) and all(_cluster_scoped(e) for e in self.entries)

    def target(self) -> str:
        if self.namespace is not None:
            return f"in namespace {self.namespace}"
        if self.namespace_pattern is not None:
            return (f"in namespaces matching {self.namespace_pattern!r} (resolved at runtime: "
                    "one informer per matching namespace)")
        return "cluster-wide (Cluster-scoped)" if self.cluster_scoped else "in all namespaces"

    def entry_notes(self, entry: NormalizedConfig) -> list[str]:
        notes: list[str] = []
        if self.cluster_scoped and (entry.namespace or entry.namespace_pattern):
            notes.append("its namespace filter does not apply: the resource is cluster-scoped "
                         "(watched cluster-wide, as the controller warns)")
        elif entry.namespace is not None and self.namespace is None:
            notes.append(f"only namespace {entry.namespace} (filtered by faro)")
        if entry.namespace_pattern is not None and self.namespace_pattern is None:
            notes.append(f"only namespaces matching {entry.namespace_pattern!r} (resolved at "
                         "runtime, filtered by faro)")
        if entry.name_pattern is not None:
            notes.append(f"names matching {entry.name_pattern!r} (client-side)")
        if entry.scope is not None:
            notes.append(f"scope {entry.scope}")
        return notes


# Kubernetes' own cluster-scoped resources that a configuration may name: what validate knows
# of scope without a cluster (an entry's `scope: Cluster` says so for others).
_CLUSTER_SCOPED = frozenset({
    "v1/namespaces", "v1/nodes", "v1/persistentvolumes", "v1/componentstatuses",
    "rbac.authorization.k8s.io/v1/clusterroles",
    "rbac.authorization.k8s.io/v1/clusterrolebindings",
    "storage.k8s.io/v1/storageclasses", "storage.k8s.io/v1/csidrivers",
    "storage.k8s.io/v1/csinodes", "storage.k8s.io/v1/volumeattachments",
    "apiextensions.k8s.io/v1/customresourcedefinitions",
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "apiregistration.k8s.io/v1/apiservices", "scheduling.k8s.io/v1/priorityclasses",
    "node.k8s.io/v1/runtimeclasses", "networking.k8s.io/v1/ingressclasses",
    "certificates.k8s.io/v1/certificatesigningrequests",
    "flowcontrol.apiserver.k8s.io/v1/flowschemas",
    "flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
})


def _cluster_scoped(entry: NormalizedConfig) -> bool:
    return entry.scope == "Cluster" or str(entry.gvr) in _CLUSTER_SCOPED


def _plan(config: Config) -> list[_PlannedInformer]:
    """The informers ``config`` asks for, as far as known without a cluster.

    Entries with the same resource, namespace (or pattern) and server-side selectors share
    one; an entry for one namespace (or a pattern) shares the all-namespaces informer of the
    same request when there is one, as the controller does. At runtime a pattern becomes
    one informer per matching namespace, and a cluster-scoped resource one cluster-wide
    informer whatever the namespace filter.
    """
    informers: dict[tuple[Any, ...], _PlannedInformer] = {}
    for entry in config.normalized:
        scoped = not _cluster_scoped(entry)
        key = (entry.gvr, entry.namespace if scoped else None,
               entry.namespace_pattern if scoped else None, entry.label_selector,
               entry.field_selector)
        informers.setdefault(key, _PlannedInformer(*key, entries=[])).entries.append(entry)
    for key, informer in list(informers.items()):
        base = (key[0], None, None, key[3], key[4])
        if key != base and base in informers:
            informers[base].entries.extend(informer.entries)
            del informers[key]
    order = {id(entry): index for index, entry in enumerate(config.normalized)}
    for informer in informers.values():
        informer.entries.sort(key=lambda entry: order[id(entry)])
    return list(informers.values())


def _settings(config: Config) -> dict[str, Any]:
    output = config.output_dir
    metrics = config.metrics
    port = str(metrics.port) if metrics.port else "<a free port>"
    host = f"[{metrics.bind_addr}]" if ":" in metrics.bind_addr else metrics.bind_addr
    return {
        "output_dir": output,
        "log_file": os.path.join(output, "logs", "faro-YYYYMMDD-HHMMSS.log"),
        "log_level": config.log_level,
        "json_export": config.json_export,
        "events_file": os.path.join(output, "events-YYYYMMDD-HHMMSS.json")
        if config.json_export else None,
        "export": dataclasses.asdict(config.export),
        "metrics": dataclasses.asdict(metrics) | {
            "url": f"http://{host}:{port}{metrics.path}" if metrics.enabled else None},
        "auto_shutdown_sec": config.auto_shutdown_sec,
        "workers": config.workers,
        "max_retries": config.max_retries,
        "unhealthy_after_sec": config.unhealthy_after_sec,
    }


def _plan_text(config: Config, plan: list[_PlannedInformer]) -> list[str]:
    entries = len(config.normalized)
    lines = [f"{config.source}: valid: {entries} {_plural(entries, 'entry', 'entries')}, "
             f"{len(plan)} {_plural(len(plan), 'informer', 'informers')}"]
    if not plan:
        lines.append("It watches nothing (a program can add resources at runtime with "
                     "Controller.add_resources).")
    else:
        lines += ["", "Informers (one list and watch request each):"]
    for number, informer in enumerate(plan, 1):
        shared = f", shared by {len(informer.entries)} entries" \
            if len(informer.entries) > 1 else ""
        lines.append(f"  [{number}] {informer.gvr} {informer.target()}{shared}")
        if informer.label_selector:
            lines.append(f"      label selector (server-side): {informer.label_selector}")
        if informer.field_selector:
            lines.append(f"      field selector (server-side): {informer.field_selector}")
        for entry in informer.entries:
            notes = informer.entry_notes(entry)
            lines.append(f"      entry {entry.source}" + (f": {'; '.join(notes)}"
                                                          if notes else ""))
    if any(i.namespace is None and i.namespace_pattern is None and not i.cluster_scoped
           for i in plan):
        lines.append("  (Without a cluster faro knows the scope of Kubernetes' own resources "
                     "only: 'in all namespaces' is one cluster-wide informer if the resource "
                     "is cluster-scoped; 'scope: Cluster' in an entry says so.)")
    settings = _settings(config)
    export = config.export
    if config.json_export:
        rotation = (f"rotated at {_size(export.max_bytes)}, {export.backups} kept"
                    if export.max_bytes else "never rotated")
        json_line = f"on: {settings['events_file']} ({rotation})"
    else:
        json_line = "off"
    metrics_line = f"{settings['metrics']['url']} (and /healthz, /readyz)" \
        if config.metrics.enabled else "off"
    shutdown = f"after {config.auto_shutdown_sec:g} s" if config.auto_shutdown_sec else \
        "never (runs until SIGINT or SIGTERM)"
    lines += [
        "",
        "Settings:",
        f"  output dir:     {config.output_dir}",
        f"  log file:       {settings['log_file']} (level {config.log_level})",
        f"  JSON export:    {json_line}",
        f"  metrics:        {metrics_line}",
        f"  auto shutdown:  {shutdown}",
        f"  workers:        {config.workers} (a failing handler is retried up to "
        f"{config.max_retries} times per event)",
    ]
    return lines


def _size(count: int) -> str:
    """``100 MiB``, ``1.5 KiB``, ``512 bytes``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= factor:
            return f"{count / factor:.4g} {unit}"
    return f"{count} bytes"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _validate(args: argparse.Namespace) -> int:
    from faro.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as error:
        if args.output == "json":
            print(json.dumps({"source": error.source, "valid": False, "error": {
                "path": error.path, "problem": error.problem, "message": str(error)}},
                indent=2))
        return _fail(str(error), EXIT_USAGE)
    plan = _plan(config)
    if args.output == "json":
        document = {
            "source": config.source,
            "valid": True,
            "informers": [{
                "gvr": str(i.gvr), "namespace": i.namespace,
                "namespace_pattern": i.namespace_pattern, "label_selector": i.label_selector,
                "field_selector": i.field_selector, "cluster_scoped": i.cluster_scoped,
                "entries": [{"source": e.source, "scope": e.scope, "namespace": e.namespace,
                             "namespace_pattern": e.namespace_pattern,
                             "name_pattern": e.name_pattern} for e in i.entries],
            } for i in plan],
            "settings": _settings(config),
            "config": config.to_dict(),
        }
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(_plan_text(config, plan)))
    return EXIT_OK


# -------------------------------------------------------------------------------- discover


def _discover(args: argparse.Namespace) -> int:
    from faro.client import ClientConfigError, KubernetesClient
    from faro.discovery import DiscoveryError

    with _console_warnings():
        try:
            client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                       context=args.context)
        except ClientConfigError as error:
            return _fail(str(error), EXIT_FAILURE)
        try:
            with _signals_to_main_thread():  # discovery fetches on a thread pool
                resources = client.discovery.resources()
        except DiscoveryError as error:
            return _fail(_cannot_reach(error, client), EXIT_FAILURE)
        finally:
            client.close()
    ordered = sorted(resources, key=lambda r: (r.gvr.group, r.gvr.resource, r.gvr.version))
    if args.output == "json":
        print(json.dumps([{
            "gvr": str(r.gvr), "group": r.gvr.group, "version": r.gvr.version,
            "resource": r.gvr.resource, "kind": r.kind, "scope": r.scope,
            "short_names": list(r.short_names), "preferred": r.preferred,
            "verbs": sorted(r.verbs)} for r in ordered], indent=2))
        return EXIT_OK
    rows = [("GVR", "SCOPE", "KIND", "SHORTNAMES")]
    rows += [(str(r.gvr), r.scope, r.kind, ",".join(r.short_names)) for r in ordered]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("   ".join([*cells, row[3]]).rstrip())
    return EXIT_OK


# ------------------------------------------------------------------------------------- sim


def _have_cryptography() -> bool:
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


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


# ------------------------------------------------------------------------------------ demo


DEMO_CONFIG = """\
# faro demo: both configuration formats in one file (docs/config.md).
output_dir: {output_dir}
log_level: info
json_export: true                 # every matched event as one JSON line: events-*.json
metrics: {{enabled: true, port: 0, bind_addr: 127.0.0.1}}    # port 0: a free port

namespaces:                       # namespace-centric: what to watch in a namespace
  - name_selector: demo           # an exact name: the API server filters
    resources:
      "v1/configmaps": {{label_selector: "tier=web"}}     # server-side label selector
      "apps/v1/deployments": {{}}
  - name_selector: "team-.*"      # a regular expression: namespaces as they come and go
    resources:
      "v1/configmaps": {{name_selector: settings}}        # exact name: server-side

resources:                        # resource-centric: where to watch a resource
  - gvr: v1/namespaces            # cluster-scoped
    scope: Cluster
    name_selector: "demo|team-.*"   # not a plain name: a regular expression, client-side
"""

DEMO_MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
"""

# (gvr, key) -> the event types faro must report, in order.
DEMO_EXPECTED: dict[tuple[str, str], list[str]] = {
    ("v1/namespaces", "demo"): ["ADDED"],
    ("apps/v1/deployments", "demo/web"): ["ADDED", "UPDATED"],
    ("v1/configmaps", "demo/settings"): ["ADDED", "UPDATED", "DELETED"],
    ("v1/namespaces", "team-a"): ["ADDED"],
    ("v1/configmaps", "team-a/settings"): ["ADDED"],
}

# What the demo changes that the configuration filters out, and why.
DEMO_FILTERED = (
    "ConfigMap demo/scratch (no tier=web label)",
    "ConfigMap team-a/other (name is not 'settings')",
    "Namespace sandbox (name does not match 'demo|team-.*')",
)


class _DemoRecorder:
    """A handler recording the demo's events, which the main thread waits for."""

    def __init__(self, expected: dict[tuple[str, str], list[str]]) -> None:
        self.expected = expected
        self.seen: dict[tuple[str, str], list[str]] = {}
        self._changed = threading.Condition()

    def __call__(self, event: MatchedEvent) -> None:
        with self._changed:
            self.seen.setdefault((event.gvr, event.key), []).append(event.event_type.value)
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], deadline: float,
             shutdown: _Shutdown) -> bool:
        """Wait until ``predicate()`` (True), the monotonic ``deadline`` or a signal (False).

        Wakes at each event, and every _POLL seconds to notice a signal (whose handler
        must not touch this lock).
        """
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or shutdown.received is not None:
                    return False
                self._changed.wait(min(_POLL, remaining))
            return True

    def has(self, gvr: str, key: str, event_type: str) -> bool:
        return event_type in self.seen.get((gvr, key), ())

    def missing(self) -> list[str]:
        """``gvr key: TYPE`` for every expected event not seen (in order, per object)."""
        out: list[str] = []
        for key, types in self.expected.items():
            seen = iter(self.seen.get(key, []))
            out += [f"{key[0]} {key[1]}: {t}" for t in types if t not in seen]
        return out

    def unexpected(self) -> list[str]:
        return [f"{gvr} {key}" for gvr, key in self.seen if (gvr, key) not in self.expected]

    @property
    def total(self) -> int:
        return sum(map(len, self.seen.values()))


def _configmap(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {"color": "blue"}}


def _demo_steps(cluster: SimulatedCluster
                ) -> list[tuple[str, Callable[[], object], tuple[str, str, str] | None]]:
    """What a user would do to the cluster: (narration, change, the event it must cause)."""
    ns = {"apiVersion": "v1", "kind": "Namespace"}
    return [
        ("creating ConfigMap demo/settings with label tier=web (watched)",
         lambda: cluster.create(_configmap("settings", "demo", tier="web")),
         ("v1/configmaps", "demo/settings", "ADDED")),
        ("changing ConfigMap demo/settings",
         lambda: cluster.patch("v1", "ConfigMap", "settings", {"data": {"color": "green"}},
                               namespace="demo"),
         ("v1/configmaps", "demo/settings", "UPDATED")),
        ("creating ConfigMap demo/scratch without the label (the API server filters it out)",
         lambda: cluster.create(_configmap("scratch", "demo")), None),
        ("scaling Deployment demo/web to 3 replicas",
         lambda: cluster.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 3}},
                               namespace="demo"),
         ("apps/v1/deployments", "demo/web", "UPDATED")),
        ("creating Namespace team-a (matches 'team-.*': faro starts informers for it)",
         lambda: cluster.create({**ns, "metadata": {"name": "team-a"}}),
         ("v1/namespaces", "team-a", "ADDED")),
        ("creating ConfigMaps team-a/settings (watched) and team-a/other (not that name)",
         lambda: [cluster.create(_configmap(name, "team-a")) for name in ("settings", "other")],
         ("v1/configmaps", "team-a/settings", "ADDED")),
        ("creating Namespace sandbox (its name does not match: faro filters it out)",
         lambda: cluster.create({**ns, "metadata": {"name": "sandbox"}}), None),
        ("deleting ConfigMap demo/settings",
         lambda: cluster.delete("v1", "ConfigMap", "settings", namespace="demo"),
         ("v1/configmaps", "demo/settings", "DELETED")),
    ]


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from faro.config import ConfigError, load_config
    from faro.testing import SimulatedCluster

    if not args.timeout > 0:
        parser.error(f"argument --timeout: must be positive, got {args.timeout:g}")
    if not args.linger >= 0:
        parser.error(f"argument --linger: must not be negative, got {args.linger:g}")
    output_dir = args.output_dir
    config_path = os.path.join(output_dir, "faro-demo.yaml")
    try:
        os.makedirs(output_dir, exist_ok=True)
        Path(config_path).write_text(DEMO_CONFIG.format(output_dir=json.dumps(output_dir)),
                                     encoding="utf-8")
        config = load_config(config_path)
    except OSError as error:
        return _fail(f"cannot write {config_path}: {error.strerror or error}", EXIT_FAILURE)
    except ConfigError as error:  # an --output-dir the configuration refuses (empty)
        return _fail(str(error), EXIT_USAGE)
    try:
        logs = _setup_logging(config)
    except OSError as error:
        return _fail(f"cannot write the log file under {output_dir}: "
                     f"{error.strerror or error}", EXIT_FAILURE)
    shutdown = _Shutdown()
    shutdown.install()
    tls = _have_cryptography()
    cluster = SimulatedCluster(tls=tls)
    try:
        with _signals_to_main_thread():
            cluster.start()
        demo_logger.info("simulated Kubernetes API server at %s%s", cluster.url,
                         "" if tls else " (plain HTTP: install faro[sim] for HTTPS)")
        return _demo_run(args, cluster, config, config_path, logs, shutdown)
    except Exception as error:
        return _unexpected(error, logs)
    finally:
        cluster.stop()
        shutdown.restore()
        logs.close()


def _demo_run(args: argparse.Namespace, cluster: SimulatedCluster, config: Config,
              config_path: str, logs: LoggingSetup, shutdown: _Shutdown) -> int:
    from faro.client import KubernetesClient
    from faro.controller import Controller

    demo_logger.info("creating Namespace demo and Deployment demo/web before faro starts")
    cluster.apply(DEMO_MANIFEST)
    recorder = _DemoRecorder(DEMO_EXPECTED)
    client = KubernetesClient.from_environment(kubeconfig=cluster.kubeconfig_path)
    controller = Controller(client, config)
    controller.add_event_handler(recorder)
    controller.set_ready_callback(lambda: _announce_ready(controller))
    metrics_url = ""
    try:
        with _signals_to_main_thread():
            controller.start()
        address = controller.metrics_address
        if address is not None:
            metrics_url = f"http://{address[0]}:{address[1]}{config.metrics.path}"
        if not (shutdown.wait(args.timeout, until=controller.is_ready) or
                controller.is_ready()):
            return _fail(f"faro did not become ready within {args.timeout:g} s "
                         f"(see {logs.log_file})", EXIT_FAILURE)
        deadline = time.monotonic() + args.timeout
        for narration, change, effect in _demo_steps(cluster):
            if shutdown.received is not None:
                break
            demo_logger.info("%s", narration)
            change()
            if effect is not None:  # its event line before the next step's narration
                recorder.wait(functools.partial(recorder.has, *effect), deadline, shutdown)
        recorder.wait(lambda: not recorder.missing(), deadline, shutdown)
        if args.linger and shutdown.received is None:
            demo_logger.info("still watching for %g s (Ctrl-C ends it): try kubectl "
                             "--kubeconfig %s get configmaps -A", args.linger,
                             cluster.kubeconfig_path)
            shutdown.wait(args.linger)
    finally:
        shutdown.stopping = True
        finished = controller.stop(timeout=STOP_TIMEOUT)
        client.close()
    if not finished:
        _exit_at_once(f"faro did not stop within {STOP_TIMEOUT:g} s")
    return _demo_summary(recorder, controller.events_file, config, config_path, logs,
                         metrics_url, shutdown)


def _demo_summary(recorder: _DemoRecorder, events_file: Path | None, config: Config,
                  config_path: str, logs: LoggingSetup, metrics_url: str,
                  shutdown: _Shutdown) -> int:
    missing = recorder.missing()
    expected = sum(map(len, DEMO_EXPECTED.values()))
    out = [""]
    if missing:
        how = "interrupted" if shutdown.received else "incomplete"
        out.append(f"faro demo {how}: {expected - len(missing)} of {expected} expected events "
                   f"arrived; missing: {', '.join(missing)}")
    else:
        out.append(f"faro demo: all {expected} expected events arrived "
                   f"({recorder.total} in all).")
    out.append("Filtered out, as configured: " + "; ".join(DEMO_FILTERED) + ".")
    unexpected = recorder.unexpected()
    if unexpected:
        out.append(f"Unexpected events for: {', '.join(unexpected)}")
    if events_file is not None and events_file.is_file():
        lines = len(events_file.read_bytes().splitlines())
        out.append(f"JSON events:    {events_file} ({lines} events)")
    else:
        out.append(f"JSON events:    none written in {config.output_dir} (json_export is on)")
    out.append(f"Log file:       {logs.log_file}")
    out.append(f"Configuration:  {config_path} (use it with: faro validate {config_path})")
    if metrics_url:
        out.append(f"Metrics were served at {metrics_url}")
    print("\n".join(out), flush=True)
    if shutdown.received:
        return EXIT_OK  # stopped on request
    written = events_file is not None and events_file.is_file()
    return EXIT_FAILURE if missing or unexpected or not written else EXIT_OK


# ------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None, *, configure: Configure | None = None) -> int:
    """Run the faro command with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    ``configure``, if given, is called with the :class:`~faro.Controller` of ``faro run``
    after it is built and before it starts: a program may add handlers and middlewares
    there and so run the faro command with code of its own. It is not used by the other
    commands.
    """
    parser = _parser()
    args, extra = parser.parse_known_args(
        _with_implied_run(sys.argv[1:] if argv is None else argv))
    command_parser: argparse.ArgumentParser | None = getattr(args, "command_parser", None)
    if extra:  # reported with the command's usage, not the top level's
        (command_parser or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run":
            assert command_parser is not None
            return _run(command_parser, args, configure)
        if args.command == "validate":
            return _validate(args)
        if args.command == "discover":
            return _discover(args)
        if args.command == "sim":
            assert command_parser is not None
            return _run_sim(command_parser, args)
        if args.command == "demo":
            assert command_parser is not None
            return _demo(command_parser, args)
    except KeyboardInterrupt:  # before a command installed its own handlers
        print("faro: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (`faro discover | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return EXIT_FAILURE
    parser.print_help(sys.stderr)
    return EXIT_USAGE

