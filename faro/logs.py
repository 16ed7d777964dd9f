"""Logging for the ``faro`` command: :func:`setup_logging`.

The library never configures logging: it only logs, on the ``faro`` logger and its children
(``faro.controller``, ``faro.events`` for one INFO line per matched event, ``faro.export``...).
The ``faro`` command calls :func:`setup_logging`, which configures the ``faro`` logger only
(never the root logger): its level from ``log_level``, one handler writing to the console
(stderr) and one to ``{output_dir}/logs/faro-YYYYMMDD-HHMMSS.log`` (mode 0600, never a file
someone else put at the name), both in one format::

    2026-11-22T10:15:02.123Z INFO faro.events: CONFIG [ADDED] v1/configmaps default/web (UID: 1234)

(UTC, milliseconds). It also turns the ``faro`` logger's ``propagate`` off, so a root logger
configured too (``logging.basicConfig``) does not print faro's lines a second time.
:meth:`LoggingSetup.close` undoes all of it. Embedders usually skip this module and configure
``logging.getLogger("faro")`` themselves; see docs/logging.md.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, TextIO

from faro._batch import LineBatcher
from faro._files import claim_file, open_file

if TYPE_CHECKING:
    from faro.config import Config

__all__ = [
    "LOG_FORMAT",
    "LoggingSetup",
    "UTCFormatter",
    "log_level",
    "setup_logging",
]

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The format of every line :func:`setup_logging` writes (``asctime`` as :class:`UTCFormatter`
writes it)."""

_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}

_FILE_MODE: Final = 0o600  # the log file's mode, as the JSON export's

# setup_logging and LoggingSetup.close change one logger's handlers, level and propagate
# together; this keeps two threads doing so from interleaving.
_lock = threading.Lock()


def log_level(name: str) -> int:
    """The :mod:`logging` level of a configuration ``log_level`` (``"fatal"`` is CRITICAL).

    Case-insensitive; raises ValueError for a name that is not one of
    :data:`faro.config.LOG_LEVELS`.
    """
    try:
        return _LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r} (allowed: {', '.join(_LEVELS)})") from None


class UTCFormatter(logging.Formatter):
    """A formatter whose ``%(asctime)s`` is UTC with milliseconds: ``2026-11-22T10:15:02.123Z``."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and how

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self.utc_seconds(int(record.created))}.{int(record.msecs):03d}Z"

    def utc_seconds(self, second: int) -> str:
        """``2026-11-22T10:15:02`` for a Unix second (the last one is remembered)."""
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                           time.gmtime(second)))
        return cached[1]


def info_writer(logger: logging.Logger) -> Callable[[str], None] | None:
    """A faster ``logger.info(message)`` while only :func:`setup_logging`'s handlers see it.

    Returns a function that writes ``message`` as the INFO line those handlers would, straight
    into their batches, without a :class:`logging.LogRecord`, when that is the same: ``logger``
    is a child of the ``faro`` logger with no handlers or filters of its own, enabled for INFO,
    propagating to ``faro``, which has exactly the handlers of a :func:`setup_logging` (no
    filters, their formatter, level INFO or below) and does not propagate. Otherwise None:
    log as usual. Ask again for each line (it reads a few attributes): the answer changes
    when logging is configured again.
    """
    parent = logger.parent
    if (parent is None or parent.name != "faro" or logger.handlers or logger.filters
            or not logger.propagate or logger.disabled or parent.filters or parent.propagate
            or not logger.isEnabledFor(logging.INFO)):
        return None
    handlers = parent.handlers
    if len(handlers) != 2:
        return None
    batchers: list[LineBatcher[str]] = []
    formatter = handlers[0].formatter
    for handler in handlers:
        if not isinstance(handler, _ConsoleHandler | _FileHandler) or handler.owner is None \
                or handler.filters or handler.level > logging.INFO \
                or handler.formatter is not formatter:
            return None
        batchers.append(handler.batcher)
    if not isinstance(formatter, UTCFormatter) or formatter._fmt != LOG_FORMAT:
        return None
    seconds = formatter.utc_seconds
    name = logger.name

    def write(message: str) -> None:
        now = time.time()
        line = f"{seconds(int(now))}.{int(now * 1000) % 1000:03d}Z INFO {name}: {message}\n"
        for batcher in batchers:
            batcher.add(line)

    return write


class _Batched(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes its lines in batches (:class:`~faro._batch.LineBatcher`).

    ``emit`` only formats the line and adds it to the batch; the batcher writes and flushes
    the stream at most 0.1 s later. A record of WARNING or above writes the batch at once (on
    the logging thread), so problems are never late and lines stay in order. ``flush`` and
    ``close`` write what is waiting (``logging.shutdown`` calls both at interpreter exit).
    The stream is written by the batcher only, so its writes never wait for the handler's
    lock (which the logging thread holds while it emits).
    """

    def start_batching(self, name: str) -> None:
        self.batcher: LineBatcher[str] = LineBatcher(self._write_lines, name=name)

    def _write_lines(self, lines: list[str]) -> None:
        stream = self.stream
        if stream is not None:
            stream.write("".join(lines))
            stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.batcher.add(line)
        if record.levelno >= logging.WARNING:
            self.batcher.flush()

    def flush(self) -> None:
        batcher: LineBatcher[str] | None = getattr(self, "batcher", None)
        if batcher is not None:
            batcher.flush()
        super().flush()

    def close(self) -> None:
        batcher: LineBatcher[str] | None = getattr(self, "batcher", None)
        if batcher is not None:
            batcher.close()
        super().close()


class _ConsoleHandler(_Batched):
    """The console handler of one :class:`LoggingSetup` (the type marks it as faro's)."""

    owner: LoggingSetup | None = None


class _FileHandler(_Batched, logging.FileHandler):
    """The file handler of one :class:`LoggingSetup` (the type marks it as faro's).

    It writes through the descriptor of the file :func:`setup_logging` created and never
    opens the file's name again: whatever someone puts there later (a symbolic link, a FIFO, a
    directory) is neither followed nor opened. Once closed it writes nothing (a line logged by
    a thread racing :meth:`LoggingSetup.close` is dropped; :class:`logging.FileHandler` would
    open the name again).
    """

    owner: LoggingSetup | None = None

    def __init__(self, path: Path, fd: int) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self.stream = self._stream(fd)

    def _open(self) -> io.TextIOWrapper:
        # Not called by this class; if anything does, the name is opened safely (never a
        # symbolic link followed, never a FIFO or device opened, never a file created).
        return self._stream(open_file(Path(self.baseFilename), os.O_APPEND))

    def _stream(self, fd: int) -> io.TextIOWrapper:
        """A text stream over ``fd``, which it owns from now on (closed if this fails)."""
        try:
            raw = io.FileIO(fd, "a")
        except BaseException:
            os.close(fd)
            raise
        try:
            return io.TextIOWrapper(io.BufferedWriter(raw), encoding=self.encoding,
                                    errors=self.errors)
        except BaseException:
            raw.close()
            raise

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is not None:  # None once closed: never opened again
            super().emit(record)


class LoggingSetup:
    """What :func:`setup_logging` changed on the ``faro`` logger; :meth:`close` undoes it.

    ``log_file`` is the file the lines are written to, ``level`` the ``faro`` logger's level.
    :meth:`close` removes and closes exactly the two handlers this setup added and restores
    the logger's level and ``propagate`` as they were before; it is idempotent, and also runs
    when another :func:`setup_logging` call replaces this one. Thread-safe. Usable as a
    context manager (closing on exit).
    """

    def __init__(self, logger: logging.Logger, handlers: tuple[logging.Handler, ...],
                 log_file: Path, level: int, previous_level: int,
                 previous_propagate: bool) -> None:
        """Made by :func:`setup_logging` only."""
        self.log_file = log_file
        self.level = level
        self.handlers = handlers
        self._logger = logger
        self._previous_level = previous_level
        self._previous_propagate = previous_propagate
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (directly or because a later setup replaced this one)."""
        return self._closed

    def close(self) -> None:
        """Remove and close this setup's handlers; restore the level and ``propagate``."""
        with _lock:
            self._close()

    def _close(self) -> None:  # _lock held
        if self._closed:
            return
        self._closed = True
        for handler in self.handlers:
            self._logger.removeHandler(handler)
            handler.close()  # the file handler closes its file; the console stays open
        self._logger.setLevel(self._previous_level)
        self._logger.propagate = self._previous_propagate

    def __enter__(self) -> LoggingSetup:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else logging.getLevelName(self.level)
        return f"<LoggingSetup {str(self.log_file)!r} {state}>"


def setup_logging(config: Config, *, console: TextIO | None = None) -> LoggingSetup:
    """Configure the ``faro`` logger as the ``faro`` command runs it (see the module docstring).

    Sets the ``faro`` logger's level from ``config.log_level``, adds a handler writing to
    ``console`` (default: ``sys.stderr`` as it is when called) and one writing to a new file
    ``{config.output_dir}/logs/faro-YYYYMMDD-HHMMSS.log`` (UTC; the directories are created;
    an existing file is never reused: ``..._0002.log`` then), and sets ``propagate = False``.
    The root logger and every other logger are left alone.

    The log file is created with mode 0600 whatever the umask, like the JSON export, and is
    written through the descriptor that created it: its name is never opened again, so a
    symbolic link, FIFO or directory put there later is neither followed nor opened (and once
    closed, the handler writes nothing).

    Calling it again while an earlier setup is open replaces that setup: the earlier one is
    closed first (its handlers removed, the level and ``propagate`` restored), so lines are
    never written twice, and closing the new one restores the logger as it was before the
    earlier one. Raises OSError when the log file cannot be created (nothing is changed then).
    """
    level = log_level(config.log_level)
    directory = Path(config.output_dir) / "logs"
    os.makedirs(directory, exist_ok=True)
    # Created 0600 whatever the umask, never at a name something else holds; written through
    # this descriptor only (see _FileHandler).
    fd, log_file = claim_file(directory, "faro", ".log", _FILE_MODE, now=time.time(),
                              flags=os.O_APPEND)
    file_handler = _FileHandler(log_file, fd)
    formatter = UTCFormatter(LOG_FORMAT)
    console_handler = _ConsoleHandler(console if console is not None else sys.stderr)
    handlers: tuple[_Batched, ...] = (console_handler, file_handler)
    for batched, name in ((console_handler, "console"), (file_handler, "log")):
        batched.setFormatter(formatter)
        batched.start_batching(name)
    logger = logging.getLogger("faro")
    with _lock:
        for existing in list(logger.handlers):
            if isinstance(existing, _ConsoleHandler | _FileHandler) and \
                    existing.owner is not None:
                existing.owner._close()
        setup = LoggingSetup(logger, handlers, log_file, level, logger.level, logger.propagate)
        console_handler.owner = file_handler.owner = setup
        logger.setLevel(level)
        logger.propagate = False
        for added in handlers:
            logger.addHandler(added)
    return setup
