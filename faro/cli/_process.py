"""Process concerns of the ``faro`` command, shared by its commands.

The contract:

- exit codes: :data:`EXIT_OK` 0 (also after a stop by a signal or by auto-shutdown),
  :data:`EXIT_FAILURE` 1 (the environment kept faro from running), :data:`EXIT_USAGE` 2
  (the command line or the configuration), :data:`EXIT_INTERRUPTED` 130 (Ctrl-C before a
  command installed its handlers);
- errors: :func:`fail` prints ``faro: error: ...`` on stderr, one line per message, and logs
  it to the log files only (the console shows it once); :func:`fail_config` does so for an
  invalid configuration, one line per problem (:func:`config_error_lines`, after a count
  line when there are several), exit 2; :func:`unexpected` is for a bug:
  one line on stderr, the traceback in the log file; :func:`exit_at_once` logs, flushes and
  ``os._exit``\\ s (a handler that never returns, or a request that does not, must not
  hold the exit up);
- signals: only the command installs handlers (:class:`Shutdown`: the first SIGINT or
  SIGTERM asks for a stop, the next exits at once), never the library; threads started
  inside :func:`signals_to_main_thread` block both signals, so the kernel delivers them to
  the main thread, the only one where Python runs handlers; :class:`Starting` runs a
  controller's start on such a thread, so that a signal is acted on during start-up too;
- logging: :func:`setup_logging` for the commands that run faro (console and log file),
  :func:`console_warnings` (``faro: warning: ...`` on stderr) for the others.

Every record is logged on the ``faro.cli`` logger, whatever module of the package logs it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from faro.config import Config, ConfigError
    from faro.logs import LoggingSetup

logger = logging.getLogger("faro.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # SIGINT before the signal handlers are installed (128 + 2)

STOP_TIMEOUT = 30.0
"""Seconds ``faro run`` gives ``Controller.stop()`` after a signal or auto-shutdown."""

POLL = 0.1
"""Seconds between the main thread's checks for a signal while it waits (its only latency)."""


# --------------------------------------------------------------------------------- signals


@contextlib.contextmanager
def signals_to_main_thread() -> Iterator[None]:
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


class Shutdown:
    """SIGINT/SIGTERM for a long-running command: the first asks for a stop, the next exits.

    The handler only records the signal (it runs between two bytecodes of the main thread,
    which may hold any lock); the main thread polls for it while it waits. A second signal
    exits at once with :func:`exit_at_once`: raising SystemExit in the main thread, wherever
    it is, would not end a stop that waits for a handler.
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
            exit_at_once(f"received {name} again while stopping: exiting at once")
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
            remaining = POLL if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(POLL, remaining))
        return True


class Starting:
    """``start()`` on a thread of its own, while the main thread waits for it or a signal.

    A controller's start may wait long for the cluster (discovery, the first lists of the
    CRD and namespace watchers). Run in the main thread with the signals blocked, it would
    keep a SIGINT or SIGTERM pending until it ended; here the thread blocks them (so do the
    threads it starts: faro's), and the main thread takes them (:meth:`wait`). The thread is
    a daemon: a start abandoned in a request does not hold the exit up.
    """

    def __init__(self, start: Callable[[], object], name: str = "faro-start") -> None:
        self._start = start
        self._done = threading.Event()
        self.error: BaseException | None = None
        with signals_to_main_thread():
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._start()
        except BaseException as error:  # handed to the main thread by result()
            self.error = error
        finally:
            self._done.set()

    def wait(self, shutdown: Shutdown) -> bool:
        """Wait until the start ended (True; a signal meanwhile stays in ``shutdown``) or a
        signal came while it goes on (False)."""
        shutdown.wait(None, until=self._done.is_set)
        return self._done.is_set()

    def result(self) -> None:
        """Raise what the start raised (after :meth:`wait` returned True)."""
        if self.error is not None:
            raise self.error

    def ended(self, timeout: float) -> bool:
        """Whether the start has returned, waiting at most ``timeout`` seconds for it."""
        return self._done.wait(timeout)


# ---------------------------------------------------------------------------- exiting


GC_THRESHOLDS = (20_000, 20, 20)
"""``faro run``'s collector thresholds (CPython's defaults: 700, 10, 10)."""


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a ``faro run`` process (the CLI's own
    process only; the library never touches process-wide settings).

    The start-up heap (modules, configuration, clients) is frozen out of every later
    collection, and the youngest generation is collected after 20,000 allocations instead
    of 700: a burst allocates a few short-lived containers per event, nearly all freed by
    reference counting, and scanning them 700 at a time cost about a tenth of the
    process's time (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def handlers_of(log: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``log`` reaches (its own and its ancestors', as propagation)."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = log
    while current is not None:
        handlers.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    return handlers


def exit_at_once(message: str, code: int = EXIT_FAILURE, level: int = logging.ERROR
                 ) -> NoReturn:
    """Log ``message`` (at ``level``), flush every handler and the standard streams, and
    ``os._exit(code)``.

    Called from a signal handler too, where the interrupted code may be inside a handler:
    their locks are re-entrant for this thread, and waited for at most a second each when
    another thread holds one.
    """
    record = logger.makeRecord(logger.name, level, __file__, 0, message, (), None)
    handlers = handlers_of(logger)
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


def fail(message: str, code: int) -> int:
    """Print ``faro: error: message`` on stderr and log it to the log files only; return code.

    The console handler (stderr) is skipped so that the error shows once.
    """
    return fail_all([message], code)


def fail_all(messages: Iterable[str], code: int) -> int:
    """:func:`fail` for several messages: one ``faro: error:`` line each, in order."""
    lines = [re.sub(r"\s*\n\s*", " ", message.strip())  # a YAML error spans lines
             for message in messages]
    print("".join(f"faro: error: {line}\n" for line in lines), end="", file=sys.stderr,
          flush=True)
    file_handlers = [handler for handler in handlers_of(logger)
                     if isinstance(handler, logging.FileHandler)]
    for line in lines:
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line, (), None)
        for handler in file_handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
    return code


def config_problems(error: ConfigError) -> Sequence[ConfigError]:
    """Every problem of an invalid configuration, in document order, ``error`` first.

    ``ConfigError.errors`` has them (:func:`~faro.config.load_config` reports every problem
    of a file); an error without it is the only one.
    """
    problems: Sequence[ConfigError] = getattr(error, "errors", None) or (error,)
    return problems


def problem_line(problem: ConfigError) -> str:
    """``SOURCE: PATH: PROBLEM`` for one problem (without the empty parts).

    Not ``str(problem)``: for the first of several problems that goes on with the others.
    """
    return ": ".join(part for part in (problem.source, problem.path, problem.problem) if part)


def config_error_lines(error: ConfigError) -> list[str]:
    """An invalid configuration as lines: ``SOURCE: N problems`` when there are several,
    then ``SOURCE: PATH: PROBLEM`` for each problem (a single problem: that line only)."""
    problems = config_problems(error)
    lines = [problem_line(problem) for problem in problems]
    if len(problems) > 1:
        lines.insert(0, f"{error.source}: {len(problems)} problems")
    return lines


def fail_config(error: ConfigError) -> int:
    """:func:`fail` for an invalid configuration: one line per problem; returns EXIT_USAGE."""
    return fail_all(config_error_lines(error), EXIT_USAGE)


def unexpected(error: BaseException, logs: LoggingSetup | None) -> int:
    """A bug, not a condition: the traceback goes to the log file, one line to stderr."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "unexpected error",
                               (), (type(error), error, error.__traceback__))
    for handler in handlers_of(logger):
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    where = f" (traceback in {logs.log_file})" if logs is not None else ""
    print(f"faro: error: unexpected {type(error).__name__}: {error}{where}",
          file=sys.stderr, flush=True)
    return EXIT_FAILURE


# ---------------------------------------------------------------------------- logging


def setup_logging(config: Config) -> LoggingSetup:
    """faro's console and log-file logging for ``config`` (its threads block the signals)."""
    from faro.logs import setup_logging as setup

    with signals_to_main_thread():
        return setup(config)


@contextlib.contextmanager
def console_warnings() -> Iterator[None]:
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
