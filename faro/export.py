"""The JSON event export: one line of JSON per matched event, in a file of its own.

With ``json_export: true`` the controller hands every :class:`~faro.events.MatchedEvent` to an
:class:`EventExporter`, which appends :func:`event_record` of it, serialised with orjson, as one
line to ``{output_dir}/events-YYYYMMDD-HHMMSS.json`` (UTC time of creation). docs/export.md
describes the file; docs/event.schema.json is the JSON Schema of one line.

The contract:

* **Once per event, in order per object.** The controller calls :meth:`EventExporter.export`
  once per event, after the JSON middlewares ran (their object is the one exported; an event
  they drop is not exported) and before the handlers; handler retries never export again. The
  events of one object reach the exporter in the order they happened, so their lines are in
  that order; lines of different objects interleave.
* **Durability.** :meth:`EventExporter.export` hands its line to the OS by one ``os.write``
  before it returns; :meth:`EventExporter.write_lines` hands a batch of lines over in one
  ``os.write`` (the controller batches its lines for at most 0.1 s). A crash of faro loses
  at most what was being written, and a reader never sees half a line (a line a failing
  write left half-written is cut off again). ``fsync=True`` also syncs every write to disk,
  which survives a crash of the machine too.
* **Rotation.** Like :class:`logging.handlers.RotatingFileHandler`: before a line would make
  the file larger than ``max_bytes``, the file is renamed ``.1`` (``.1`` to ``.2`` and so on;
  ``.1`` is the newest) and a new file is started under the same name. ``backups`` rotated
  files are kept, the oldest is deleted; with ``backups=0`` the file is emptied instead.
  ``max_bytes=0`` never rotates. A line longer than ``max_bytes`` gets a file to itself. When
  renaming fails, lines go on into the current file (a WARNING says so once) and each line
  tries again: a file larger than ``max_bytes`` beats lost events.
* **Permissions.** The file is created with mode 0600 (whatever the umask), and rotated files
  keep it. A new exporter never writes into an existing file: when its name is taken (two
  exporters started in one second), it takes ``events-YYYYMMDD-HHMMSS_0002.json`` and so on
  (names sort by creation time: :mod:`faro._files`). The time in the name is the ``clock``'s
  wall time (:class:`~faro.clock.RealClock` by default; the controller passes its own).
* **Never a planted file.** Every open uses ``O_NOFOLLOW | O_NONBLOCK`` (``O_NONBLOCK`` is
  cleared once the file is known to be regular) and refuses anything but a regular file: a
  FIFO, a device, a directory or a symbolic link at the file's name (put there after the file
  was deleted, renamed or rotated) never blocks a worker and never receives a line. The
  exporter logs a WARNING naming the path and what is there, counts it in
  :attr:`EventExporter.refused`, and writes on in a new file (next ``_NNNN`` name): no line is
  lost for it, so it is not in :attr:`EventExporter.errors`.
* **Failures never reach the caller.** When a line cannot be written (disk full, the
  directory removed or replaced), it is counted in :attr:`EventExporter.errors`, one ERROR
  line (logger ``faro.export``) names the file and the OS error, and every later event tries
  again, reopening or recreating the file (and the directory) when needed; an INFO line says
  when writing works again. If the file is deleted or renamed while faro writes it, the next
  event notices and continues in a new file under the same name, or under a new name when
  another file took it (a WARNING says so).
* **Standard output.** With ``export.output: stdout`` the controller writes the same lines to
  standard output instead, through a :class:`StreamExporter` (for the log collectors that
  ship containers' output): batched the same way, each batch handed over whole (the rest of
  a short write follows at once, before any other batch), no file, no rotation. A line that
  cannot be written (the reader closed the pipe) is counted and logged as above.
* **No secret material.** A line holds the event's type, resource, identity, labels and
  annotations, never the object's body (no ``data``, ``spec`` or ``status``). For Secrets
  (``v1/secrets``) the ``kubectl.kubernetes.io/last-applied-configuration`` annotation, which
  holds the Secret's values, is left out too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from faro._files import NotRegularFileError, claim_file, create_file, kind_of, open_file
from faro.clock import Clock, RealClock
from faro.events import MatchedEvent

if TYPE_CHECKING:
    from faro.config import Config

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "EventExporter",
    "StreamExporter",
    "event_record",
]

logger = logging.getLogger("faro.export")

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
"""The annotation ``kubectl apply`` stores the applied object in; never exported for Secrets."""

_FILE_MODE = 0o600
_GONE = (FileNotFoundError, NotADirectoryError)


# ---------------------------------------------------------------------------------------------
# One line
# ---------------------------------------------------------------------------------------------


def event_record(event: MatchedEvent) -> dict[str, Any]:
    """What one line of the export holds for ``event`` (before serialisation).

    Keys, in this order: ``timestamp`` (when faro observed the change, RFC 3339 UTC with
    microseconds: ``2026-11-22T10:15:02.123456Z``), ``eventType``, ``gvr``, ``namespace``
    (left out for cluster-scoped objects), ``name``, ``uid``, ``resourceVersion``, ``labels``
    and ``annotations`` (``{}`` when none), then ``initial: true`` only for the initial ADDED
    events (``is_initial``) and ``finalStateUnknown: true`` only for inferred deletions and
    for updates known only as a final state (a new leader's relist after a compacted
    checkpoint).
    Never the object's body; a Secret's last-applied-configuration annotation is left out.
    Label and annotation keys and values are strings (others are converted with ``str``).
    A new dict each call; never raises for an event whose object has odd metadata.
    """
    # The metadata read once, not through the event's properties (this runs for every event);
    # an event from an informer keeps it decoded, its body undecoded.
    metadata = event._metadata
    record: dict[str, Any] = {
        "timestamp": _rfc3339(event.timestamp),
        "eventType": event.event_type.value,
        "gvr": event.gvr,
    }
    namespace = metadata.get("namespace")
    if namespace:
        record["namespace"] = str(namespace)
    record["name"] = str(metadata.get("name") or "")
    record["uid"] = str(metadata.get("uid") or "")
    record["resourceVersion"] = str(metadata.get("resourceVersion") or "")
    record["labels"] = _strings(metadata.get("labels"))
    annotations = _strings(metadata.get("annotations"))
    if annotations and _is_secret(event.gvr):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    record["annotations"] = annotations
    if event.is_initial:
        record["initial"] = True
    if event.final_state_unknown:
        record["finalStateUnknown"] = True
    return record


def _rfc3339(timestamp: datetime) -> str:
    """``2026-11-22T10:15:02.123456Z``; a naive timestamp is taken to be UTC already."""
    zone = timestamp.tzinfo
    if zone is timezone.utc:  # the usual case: "...+00:00" becomes "...Z"
        return timestamp.isoformat(timespec="microseconds")[:-6] + "Z"
    if zone is not None:
        timestamp = timestamp.astimezone(timezone.utc).replace(tzinfo=None)
    return timestamp.isoformat(timespec="microseconds") + "Z"


def _strings(mapping: object) -> dict[str, str]:
    """A copy of ``mapping`` with string keys and values (``{}`` when it is not a mapping)."""
    if type(mapping) is not dict:
        if not isinstance(mapping, Mapping):
            return {}
    elif all(type(key) is str and type(value) is str for key, value in mapping.items()):
        return mapping.copy()  # the usual case: copied in C
    return {key if isinstance(key, str) else str(key): value if isinstance(value, str)
            else str(value) for key, value in mapping.items()}


def _is_secret(gvr: str) -> bool:
    """Whether ``gvr`` is the core group's ``secrets`` (``v1/secrets``)."""
    version, _, resource = gvr.partition("/")
    return resource == "secrets" and "/" not in version


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class EventExporter:
    """Appends each event given to :meth:`export` as one JSON line; see the module docstring.

    ``EventExporter(output_dir)`` creates ``output_dir`` (and its parents) if missing and a new
    file ``events-YYYYMMDD-HHMMSS.json`` in it, mode 0600; :attr:`path` is the file being
    written. ``max_bytes`` (0: never rotate), ``backups`` and ``fsync`` are as in the
    ``export:`` configuration section. The constructor raises ValueError for a negative
    ``max_bytes`` or ``backups`` and OSError when the directory or file cannot be created;
    after that, nothing raises but :meth:`export` after :meth:`close`.

    Threading: :meth:`export` and :meth:`close` may be called from any number of threads; lines
    are written one at a time, each whole. :attr:`errors` counts the events whose line could
    not be written (or, with ``fsync``, synced); :attr:`refused` the times something other than
    a regular file was found at the file's name (the lines went to a new file instead).
    """

    def __init__(self, output_dir: str | os.PathLike[str], *, max_bytes: int = 100 * 1024 * 1024,
                 backups: int = 5, fsync: bool = False, clock: Clock | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, got {max_bytes}")
        if backups < 0:
            raise ValueError(f"backups must be at least 0, got {backups}")
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.errors = 0
        """Events not exported (or, with ``fsync``, not synced) because writing failed."""
        self.refused = 0
        """Times the file's name held something other than a regular file (a FIFO, a symbolic
        link, a directory, a device): never opened for writing; the lines went to a new file."""
        self._directory = Path(output_dir)
        self._clock: Clock = clock if clock is not None else RealClock()
        self._lock = threading.Lock()
        self._closed = False
        self._failing = 0  # events lost since writing last worked (0: writing works)
        self._rotation_failing = False
        os.makedirs(self._directory, exist_ok=True)
        fd, self._path = self._claim()
        self._fd: int | None = None
        self._file = (0, 0)  # (st_dev, st_ino) of the file being written
        self._size = 0  # its size: the lines written whole
        self._adopt(fd)

    @classmethod
    def from_config(cls, config: Config, *, clock: Clock | None = None) -> EventExporter:
        """An exporter writing to ``config.output_dir`` with the ``export:`` settings.

        It does not look at ``json_export``: whether to export is the caller's decision.
        Raises OSError as the constructor does.
        """
        export = config.export
        return cls(config.output_dir, max_bytes=export.max_bytes, backups=export.backups,
                   fsync=export.fsync, clock=clock)

    def _claim(self) -> tuple[int, Path]:
        """A new file, named for the clock's wall time (see :mod:`faro._files`)."""
        return claim_file(self._directory, "events", ".json", _FILE_MODE,
                          now=self._clock.time(), flags=os.O_APPEND)

    @property
    def path(self) -> Path:
        """The file lines are written to now (rotated files are this name + ``.1`` ...)."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ------------------------------------------------------------------ writing

    def export(self, event: MatchedEvent) -> bool:
        """Append ``event``'s line (:func:`event_record`) to the file.

        Returns True once the line is written through to the OS (and synced, with
        ``fsync``). A failure to write is logged and counted, never raised: it returns
        False. Raises RuntimeError after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError(f"the event exporter for {self._path} is closed")
        line = orjson.dumps(event_record(event)) + b"\n"
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the event exporter for {self._path} is closed")
            try:
                self._write(line)
            except OSError as exc:
                self._failed(exc)
                return False
            if self._failing:
                logger.info("event export %s: writing works again; %d events were not "
                            "exported", self._path, self._failing)
                self._failing = 0
            return True

    def write_lines(self, lines: Sequence[bytes]) -> int:
        """Append ``lines`` (each one :func:`event_record` line ending in a newline) in as
        few writes as rotation allows: one, unless the file rotates in between.

        The batched form of :meth:`export` (the controller's, with the lines made by its
        workers): the same rules, the same errors counted per line; a failed write loses the
        lines of that write, never part of a line. Returns how many lines were written.
        Raises RuntimeError after :meth:`close`.
        """
        block = b"".join(lines)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the event exporter for {self._path} is closed")
            written = 0
            try:
                if self.max_bytes and len(block) > self.max_bytes:
                    for line in lines:  # each line as export() writes it: rotation between
                        self._write(line)
                        written += 1
                else:
                    self._write(block)
                    written = len(lines)
            except OSError as exc:
                for _ in range(len(lines) - written):
                    self._failed(exc)
                return written
            if self._failing:
                logger.info("event export %s: writing works again; %d events were not "
                            "exported", self._path, self._failing)
                self._failing = 0
            return written

    def _write(self, line: bytes) -> None:
        """Write one line, or a block of whole lines (lock held): reopen if needed, rotate
        if due, write, sync."""
        fd = self._current()
        if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
            fd = self._rotate(fd)
        start = self._size
        done = 0
        try:
            done = os.write(fd, line)
            while done < len(line):  # a short write: the rest, then (usually) the error
                written = os.write(fd, memoryview(line)[done:])
                if written <= 0:
                    raise OSError(errno.EIO, "the write made no progress", str(self._path))
                done += written
        except OSError:
            if done:
                self._cut(fd, start)
            raise
        self._size = start + len(line)
        if self.fsync:
            os.fsync(fd)

    def _current(self) -> int:
        """The descriptor to write to, (re)opening the file when needed (lock held).

        The path is checked on each call (``lstat``: a symbolic link is never our file): if the
        file was deleted or replaced, writing goes on in a new file under the same name (its
        lines would be lost otherwise), or under a new name when something else is there.
        """
        fd = self._fd
        replaced = False
        if fd is not None:
            try:
                stat = os.lstat(self._path)
            except _GONE:
                stat = None
            except OSError:
                return fd  # cannot tell (say, EACCES on a parent): keep writing where we were
            if stat is not None and _identity(stat) == self._file:
                self._size = stat.st_size
                return fd
            self._fd = None
            _close_quietly(fd)
            replaced = True
        previous = self._path
        fd, taken = self._reopen()
        if taken is not None:
            logger.warning("event export %s: %s; never written into, continuing in a new "
                           "file %s", previous, taken, self._path)
        elif replaced:
            logger.warning("event export %s: the file was deleted or replaced; continuing in "
                           "a new file %s", previous, self._path)
        return fd

    def _reopen(self) -> tuple[int, str | None]:
        """Open the file again, or create it (and the directory) again (lock held).

        Never follows a symbolic link, never blocks on a FIFO, never writes into a file it did
        not create: when such a thing holds the name, a new file is claimed. Returns the
        descriptor and, when the name was left, what took it (for the log).
        """
        try:
            fd = open_file(self._path, os.O_APPEND)
        except _GONE:
            os.makedirs(self._directory, exist_ok=True)
            return self._create()
        except NotRegularFileError as exc:
            self.refused += 1
            taken = str(exc)
        else:
            try:
                stat = os.fstat(fd)
            except OSError:
                _close_quietly(fd)
                raise
            if _identity(stat) == self._file:
                if stat.st_size > self._size:
                    self._cut(fd, self._size)  # a line half-written when writing failed
                self._adopt(fd)
                return fd, None
            _close_quietly(fd)  # another file took the name: never write into it
            taken = f"{self._path} is another file now"
        fd, self._path = self._claim()
        self._adopt(fd)
        self._sync_directory()
        return fd, taken

    def _create(self) -> tuple[int, str | None]:
        """Create the file under its name, or under a new one if that is taken (lock held).

        Returns the descriptor and, when the name was taken, what took it (for the log).
        """
        try:
            fd = create_file(self._path, _FILE_MODE, flags=os.O_APPEND)
            taken = None
        except FileExistsError:
            taken = self._what_took(self._path)
            fd, self._path = self._claim()
        self._adopt(fd)
        self._sync_directory()
        return fd, taken

    def _what_took(self, path: Path) -> str:
        """What holds ``path``, for the log; counts a file that is not regular as refused."""
        try:
            kind = kind_of(os.lstat(path).st_mode)
        except OSError:
            return f"{path} was taken"
        if kind is None:
            return f"{path} is another file now"
        self.refused += 1
        return str(NotRegularFileError(path, kind))

    def _adopt(self, fd: int) -> int:
        """Make ``fd`` the current file (lock held, or in the constructor)."""
        if hasattr(os, "fchmod"):
            # Created 0600 already (a umask only narrows); this also covers a reopen. A file
            # system without modes may refuse.
            with contextlib.suppress(OSError):
                os.fchmod(fd, _FILE_MODE)
        try:
            stat = os.fstat(fd)
        except OSError:
            _close_quietly(fd)
            raise
        self._fd = fd
        self._file = _identity(stat)
        self._size = stat.st_size
        return fd

    def _rotate(self, fd: int) -> int:
        """Start a new file (lock held): rename the backups up, or empty the file.

        If that fails, the line goes to the current file anyway (larger than ``max_bytes``
        is better than lost), a WARNING says so once, and the next line tries again.
        """
        base = str(self._path)
        try:
            if not self.backups:
                os.ftruncate(fd, 0)
            else:
                # Move up the run .1, .2 ... .k that exists (.backups is replaced: dropped).
                # Files past a gap are older still; a failed rotation leaves .1 free, so
                # trying again never pushes the backups further out.
                run = 0
                while run < self.backups - 1 and os.path.lexists(f"{base}.{run + 1}"):
                    run += 1
                for number in range(run, 0, -1):
                    os.replace(f"{base}.{number}", f"{base}.{number + 1}")
                os.replace(base, f"{base}.1")
        except OSError as exc:
            if not self._rotation_failing:
                self._rotation_failing = True
                logger.warning("event export %s: cannot rotate: %s; writing on past max_bytes "
                               "(tried again with each event)", self._path, exc)
            return fd
        if self._rotation_failing:
            self._rotation_failing = False
            logger.info("event export %s: rotating works again", self._path)
        if not self.backups:
            self._size = 0
            return fd
        self._fd = None
        _close_quietly(fd)
        previous = self._path
        fd, taken = self._create()
        if taken is not None:
            logger.warning("event export %s: rotated, but then %s; never written into, "
                           "continuing in a new file %s", previous, taken, self._path)
        return fd

    def _cut(self, fd: int, size: int) -> None:
        """Cut a half-written line off (best effort: the next reopen tries again)."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)

    def _sync_directory(self) -> None:
        """With ``fsync``, make a new file's name durable too (best effort)."""
        if not self.fsync or not hasattr(os, "O_DIRECTORY"):
            return
        try:
            fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)

    def _failed(self, exc: OSError) -> None:
        """Count a lost line; log the first failure of a series (lock held)."""
        self.errors += 1
        fd, self._fd = self._fd, None
        if fd is not None:
            _close_quietly(fd)  # reopened with the next event
        if not self._failing:
            logger.error("event export %s: cannot write: %s; events are not exported until "
                         "writing works again (tried again with each event)", self._path, exc)
        self._failing += 1

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the file; :meth:`export` raises RuntimeError from now on. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            fd, self._fd = self._fd, None
        if fd is not None:
            _close_quietly(fd)
        if self._failing:
            logger.warning("event export %s: closed while writing failed; %d events were not "
                           "exported", self._path, self._failing)

    def __enter__(self) -> EventExporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<EventExporter {str(self._path)!r} {state}, {self.errors} errors>"


# ---------------------------------------------------------------------------------------------
# Standard output
# ---------------------------------------------------------------------------------------------


class StreamExporter:
    """Writes event lines to a stream: standard output (``export.output: stdout``) by default.

    The counterpart of :class:`EventExporter` for a log collector that ships a container's
    output: the same lines (:func:`event_record`, one JSON object and a newline each), no
    file, no rotation. ``stream`` is ``sys.stdout`` as it is when the exporter is made,
    unless given; the exporter never closes it.

    Whole lines: :meth:`write_lines` hands a batch over in one ``os.write`` to the stream's
    file descriptor (after flushing what was written to the stream itself, so the order
    holds), and writes the rest of a short write before it returns (waiting for a
    non-blocking descriptor to take more); batches are written one at a time. So no other
    batch of faro's ever lands inside a line. When a write fails in the middle of a line
    (a full disk under a redirected stdout), the rest of that line is written first with the
    next batch, so the stream goes on with whole lines. (A process killed in the middle of a
    write larger than a pipe's buffer can leave the last line cut; the controller's batches
    are at most 0.1 s of lines.) A stream without a descriptor (a ``StringIO``) is written
    as text.

    Failures never reach the caller, as with :class:`EventExporter`: a line that cannot be
    written is counted in :attr:`errors`, the first failure of a series is logged at ERROR on
    ``faro.export``, and an INFO line says when writing works again. :attr:`broken` is true
    once the reader closed the stream (EPIPE: nothing written after that arrives).
    Thread-safe.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream: TextIO = stream if stream is not None else sys.stdout
        self.name = "standard output" if stream is None else repr(self._stream)
        """How the log names the stream."""
        self.errors = 0
        """Events not exported because writing failed."""
        self.broken = False
        """True once a write found the stream closed by its reader (a broken pipe)."""
        self._lock = threading.Lock()
        self._closed = False
        self._failing = 0
        self._tail = b""  # the rest of a line a failed write cut: written first, next time
        try:
            self._fd: int | None = self._stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
            self._fd = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def export(self, event: MatchedEvent) -> bool:
        """Write ``event``'s line; True once it is written. Raises RuntimeError after
        :meth:`close`."""
        return self.write_lines([orjson.dumps(event_record(event)) + b"\n"]) == 1

    def write_lines(self, lines: Sequence[bytes]) -> int:
        """Write ``lines`` (each one :func:`event_record` line ending in a newline) in one
        write; returns how many were written whole. Raises RuntimeError after :meth:`close`."""
        block = b"".join(lines)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the event exporter to {self.name} is closed")
            tail = len(self._tail)
            data = self._tail + block if tail else block
            done, error = self._write(data)
            if error is not None:
                # The line the error cut is finished with the next batch; this batch's lines
                # written whole are the newlines past the old tail.
                at_line_start = data[done - 1:done] == b"\n" if done else not tail
                self._tail = b"" if at_line_start else data[done:data.index(b"\n", done) + 1]
                whole = block.count(b"\n", 0, done - tail) if done > tail else 0
                self._failed(error, len(lines) - whole)
                return whole
            self._tail = b""
            if self._failing:
                logger.info("event export to %s: writing works again; %d events were not "
                            "exported", self.name, self._failing)
                self._failing = 0
            return len(lines)

    def _write(self, block: bytes) -> tuple[int, OSError | None]:
        """Write ``block`` whole (lock held): the bytes written, and the error that stopped
        the write (None when it is all written)."""
        done = 0
        try:
            self._stream.flush()  # what was written to the stream itself comes first
            fd = self._fd
            if fd is None:
                self._stream.write(block.decode("utf-8"))
                self._stream.flush()
                return len(block), None
            view = memoryview(block)
            while done < len(block):
                try:
                    written = os.write(fd, view[done:])
                except BlockingIOError:  # a non-blocking descriptor that is full: wait
                    select.select([], [fd], [])
                    continue
                if written <= 0:
                    raise OSError(errno.EIO, "the write made no progress")
                done += written
        except OSError as exc:
            return done, exc
        except ValueError as exc:  # a closed stream object
            return done, OSError(errno.EBADF, str(exc))
        return done, None

    def _failed(self, exc: OSError, lost: int) -> None:
        """Count the lost lines; log the first failure of a series (lock held)."""
        self.errors += lost
        if exc.errno == errno.EPIPE:
            self.broken = True
        if not self._failing:
            why = " (its reader closed it)" if exc.errno == errno.EPIPE else ""
            logger.error("event export to %s: cannot write: %s%s; events are not exported "
                         "until writing works again (tried again with each batch)", self.name,
                         exc, why)
        self._failing += lost

    def close(self) -> None:
        """Stop writing (the stream stays open); :meth:`write_lines` raises RuntimeError from
        now on. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._failing:
            logger.warning("event export to %s: closed while writing failed; %d events were "
                           "not exported", self.name, self._failing)

    def __enter__(self) -> StreamExporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<StreamExporter {self.name} {state}, {self.errors} errors>"
