"""faro's output files: created 0600, named to sort by creation time, never a planted file.

:func:`claim_file` makes ``{prefix}-YYYYMMDD-HHMMSS{suffix}`` (UTC) for the JSON event export
and the log file. A name that exists (or whose ``.1`` backup exists) is never reused:
``_0002``, ``_0003``... are tried instead, a form that sorts after the plain name and before
the next second's, so the names in a directory sort by creation time (``ls``, a shell's
``events-*.json``). The file is created exclusively (O_EXCL): two writers never share one.

Every open here (:func:`claim_file`, :func:`create_file`, :func:`open_file`) is made safe
against what someone else may have put at the name: ``O_NOFOLLOW`` (a symbolic link is never
followed), ``O_NONBLOCK`` (opening a FIFO or a device never blocks; cleared again once the
file is known to be regular) and ``O_NOCTTY``, then ``fstat``: anything but a regular file
(a FIFO, a device, a directory, a socket, a symbolic link) is refused with
:class:`NotRegularFileError`, which names the path and what is there. A file that is created
gets exactly the mode asked for, whatever the umask.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

if sys.platform != "win32":
    import fcntl

BINARY = getattr(os, "O_BINARY", 0)
"""Windows: no newline translation (0 elsewhere)."""

SAFE = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
"""Flags of every open: no symbolic link followed, no blocking open, no controlling terminal."""

_MAX_TRIES = 9_999  # _0002 to _9999: four digits keep the order

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFileError(OSError):
    """The name holds something other than a regular file; faro does not write into it.

    ``filename`` is the path, ``kind`` what is there (``"a FIFO"``, ``"a symbolic link"``...).
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.message = f"{os.fspath(path)} is {kind}, not a regular file"
        super().__init__(self.message)
        self.filename = os.fspath(path)
        self.kind = kind

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[NotRegularFileError], tuple[str, str]]:
        return type(self), (self.filename, self.kind)


def kind_of(mode: int) -> str | None:
    """What a ``st_mode`` is, as :class:`NotRegularFileError` says it; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"  # pragma: no cover - a type POSIX does not define


def claim_file(directory: Path, prefix: str, suffix: str, mode: int, *, now: float,
               flags: int = 0) -> tuple[int, Path]:
    """Create the file for wall-clock time ``now`` (seconds since the epoch), open for writing.

    The file has exactly ``mode`` (whatever the umask). Returns the descriptor and the path;
    raises OSError (FileExistsError when all 9,999 names of that second are taken).
    """
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S")
    for number in itertools.count(1):
        name = f"{prefix}-{stamp}{suffix}" if number == 1 else \
            f"{prefix}-{stamp}_{number:04d}{suffix}"
        path = directory / name
        if os.path.lexists(directory / f"{name}.1"):
            continue
        try:
            fd = create_file(path, mode, flags=flags)
        except FileExistsError:
            if number >= _MAX_TRIES:
                raise
            continue
        return fd, path
    raise AssertionError("unreachable")  # pragma: no cover


def create_file(path: Path, mode: int, *, flags: int = 0) -> int:
    """Create ``path`` exclusively, open for writing, with exactly ``mode``.

    Raises FileExistsError when anything is at the name (a symbolic link included, whatever
    it points to), other OSErrors as ``os.open`` does.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE | flags | BINARY, mode)
    fd = _regular(fd, path)
    if hasattr(os, "fchmod"):
        # A umask only narrows the mode; this also undoes a umask like 0277. A file system
        # without modes may refuse.
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)
    return fd


def open_file(path: Path, flags: int) -> int:
    """Open the existing regular file ``path`` for writing (``O_WRONLY | flags``).

    Never follows a symbolic link and never blocks: raises :class:`NotRegularFileError`
    (naming the path) when anything but a regular file is at the name, FileNotFoundError when
    nothing is, other OSErrors as ``os.open`` does.
    """
    try:
        fd = os.open(path, os.O_WRONLY | SAFE | flags | BINARY)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        # ELOOP (Linux) or EMLINK (BSD) for a link, ENXIO for a FIFO nobody reads, EISDIR...
        try:
            found = os.lstat(path)
        except OSError:
            raise exc from None
        kind = kind_of(found.st_mode)
        if kind is None:
            raise
        raise NotRegularFileError(path, kind) from exc
    return _regular(fd, path)


def _regular(fd: int, path: Path) -> int:
    """``fd`` in blocking mode if it is a regular file; otherwise closed, and refused."""
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(path, kind)
        if sys.platform != "win32" and SAFE & os.O_NONBLOCK:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd
