"""New output files whose names sort by the time they were created.

:func:`claim_file` makes ``{prefix}-YYYYMMDD-HHMMSS{suffix}`` (UTC) for the JSON event export
and the log file. A name that exists (or whose ``.1`` backup exists) is never reused:
``_0002``, ``_0003``... are tried instead, a form that sorts after the plain name and before
the next second's, so the names in a directory sort by creation time (``ls``, a shell's
``events-*.json``). The file is created exclusively (O_EXCL): two writers never share one.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime, timezone
from pathlib import Path

BINARY = getattr(os, "O_BINARY", 0)
"""Windows: no newline translation (0 elsewhere)."""

_MAX_TRIES = 9_999  # _0002 to _9999: four digits keep the order


def claim_file(directory: Path, prefix: str, suffix: str, mode: int, *, now: float,
               flags: int = 0) -> tuple[int, Path]:
    """Create the file for wall-clock time ``now`` (seconds since the epoch), open for writing.

    Returns the descriptor and the path; raises OSError (FileExistsError when all 9,999 names
    of that second are taken).
    """
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S")
    for number in itertools.count(1):
        name = f"{prefix}-{stamp}{suffix}" if number == 1 else \
            f"{prefix}-{stamp}_{number:04d}{suffix}"
        path = directory / name
        if os.path.lexists(directory / f"{name}.1"):
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags | BINARY, mode)
        except FileExistsError:
            if number >= _MAX_TRIES:
                raise
            continue
        return fd, path
    raise AssertionError("unreachable")  # pragma: no cover
