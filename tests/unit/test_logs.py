"""setup_logging (faro.logs): the faro logger only, its level, the console and file lines, and
close() undoing exactly what it did."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import pytest

from faro.config import Config, ResourceConfig
from faro.controller import _log_event
from faro.events import EventType, MatchedEvent
from faro.logs import LOG_FORMAT, LoggingSetup, UTCFormatter, log_level, setup_logging
from tests.integration.helpers import eventually
from tests.unit.test_export import call_bounded

EVENT_LINE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z INFO faro\.events: "
    r"CONFIG \[ADDED\] v1/configmaps default/web \(UID: 1234\)")
LOG_NAME = re.compile(r"faro-(\d{8}-\d{6})(_\d{4})?\.log")
T = TypeVar("T")


def config(tmp_path: Path, level: str = "info") -> Config:
    return Config(output_dir=str(tmp_path / "out"), log_level=level)


def event() -> MatchedEvent:
    obj = {"metadata": {"name": "web", "namespace": "default", "uid": "1234"}}
    return MatchedEvent(EventType.ADDED, obj, "v1/configmaps", "default/web",
                        ResourceConfig("v1/configmaps").normalize()[0],
                        datetime.now(timezone.utc))


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def faro_logger() -> Iterator[logging.Logger]:
    """The faro logger, put back as it was even when a test fails half-way."""
    logger = logging.getLogger("faro")
    level, propagate, handlers = logger.level, logger.propagate, list(logger.handlers)
    yield logger
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.mark.parametrize(("name", "level"), [
    ("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING),
    ("error", logging.ERROR), ("fatal", logging.CRITICAL), ("FATAL", logging.CRITICAL),
])
def test_the_level_comes_from_log_level(tmp_path: Path, faro_logger: logging.Logger,
                                        name: str, level: int) -> None:
    assert log_level(name) == level
    with setup_logging(config(tmp_path, name), console=io.StringIO()) as setup:
        assert faro_logger.level == level
        assert setup.level == level


def test_an_unknown_level_name_is_refused() -> None:
    with pytest.raises(ValueError, match="warn"):
        log_level("warn")


def test_event_lines_show_at_info_in_console_and_file(tmp_path: Path) -> None:
    console = io.StringIO()
    with setup_logging(config(tmp_path, "info"), console=console) as setup:
        _log_event(event())
        # Written in a batch, within 0.1 s, by the handler's flush thread.
        eventually(lambda: console.getvalue())
        assert EVENT_LINE.fullmatch(console.getvalue().rstrip("\n")), console.getvalue()
        assert console.getvalue().count("\n") == 1
        eventually(lambda: setup.log_file.read_text(encoding="utf-8"))
    # The file holds the same line.
    assert setup.log_file.read_text(encoding="utf-8") == console.getvalue()


@pytest.mark.parametrize("change", ["filter on faro.events", "filter on a handler",
                                    "another handler on faro"])
def test_event_lines_go_through_logging_whenever_something_else_may_see_them(
        tmp_path: Path, faro_logger: logging.Logger, change: str) -> None:
    """faro run writes its event lines without a LogRecord only while exactly its own handlers
    would see them; a filter or another handler gets every record as logging makes it."""
    console = io.StringIO()
    seen: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    with setup_logging(config(tmp_path, "info"), console=console) as setup:
        extra = Recorder()
        if change == "filter on faro.events":
            logging.getLogger("faro.events").addFilter(lambda record: False)
        elif change == "filter on a handler":
            setup.handlers[0].addFilter(lambda record: seen.append(record) or False)
        else:
            faro_logger.addHandler(extra)
        try:
            _log_event(event())
            for handler in setup.handlers:
                handler.flush()
        finally:
            logging.getLogger("faro.events").filters.clear()
            setup.handlers[0].filters.clear()
            faro_logger.removeHandler(extra)
        if change == "filter on faro.events":
            assert console.getvalue() == "" and seen == []
        else:
            assert [r.getMessage() for r in seen] == [
                "CONFIG [ADDED] v1/configmaps default/web (UID: 1234)"]
            assert console.getvalue().count("CONFIG") == (change != "filter on a handler")


def test_a_warning_is_written_at_once_after_the_lines_before_it(tmp_path: Path) -> None:
    console = io.StringIO()
    with setup_logging(config(tmp_path, "info"), console=console) as setup:
        _log_event(event())
        logging.getLogger("faro.controller").warning("a problem")
        lines = console.getvalue().splitlines()  # no wait: the warning flushed the batch
        assert [line.split(" ", 1)[1] for line in lines] == [
            "INFO faro.events: CONFIG [ADDED] v1/configmaps default/web (UID: 1234)",
            "WARNING faro.controller: a problem"]
        assert setup.log_file.read_text(encoding="utf-8") == console.getvalue()


def test_event_lines_are_hidden_at_warning(tmp_path: Path) -> None:
    console = io.StringIO()
    with setup_logging(config(tmp_path, "warning"), console=console) as setup:
        _log_event(event())
        logging.getLogger("faro.controller").warning("something to see")
    assert "CONFIG" not in console.getvalue()
    assert re.fullmatch(r"\S+Z WARNING faro\.controller: something to see\n", console.getvalue())
    assert setup.log_file.read_text(encoding="utf-8") == console.getvalue()


def test_the_root_logger_is_untouched_and_gets_no_faro_lines(tmp_path: Path,
                                                             faro_logger: logging.Logger) -> None:
    root = logging.getLogger()
    on_root = ListHandler()
    root.addHandler(on_root)
    try:
        root_handlers, root_level = list(root.handlers), root.level
        propagate = faro_logger.propagate
        with setup_logging(config(tmp_path), console=io.StringIO()):
            assert root.handlers == root_handlers and root.level == root_level
            assert faro_logger.propagate is False
            _log_event(event())
            assert on_root.records == []  # not printed a second time by the root's handlers
        assert root.handlers == root_handlers and root.level == root_level
        assert faro_logger.propagate is propagate
        logging.getLogger("faro.events").warning("after close")
        assert [r.getMessage() for r in on_root.records] == ["after close"]
    finally:
        root.removeHandler(on_root)


def test_close_restores_the_logger_and_removes_only_its_handlers(
        tmp_path: Path, faro_logger: logging.Logger) -> None:
    mine = ListHandler()
    faro_logger.addHandler(mine)
    faro_logger.setLevel(logging.DEBUG)
    faro_logger.propagate = True
    setup = setup_logging(config(tmp_path, "error"), console=io.StringIO())
    assert len(faro_logger.handlers) == 3 and mine in faro_logger.handlers
    assert faro_logger.level == logging.ERROR
    setup.close()
    assert faro_logger.handlers == [mine]
    assert faro_logger.level == logging.DEBUG and faro_logger.propagate is True
    assert all(h not in faro_logger.handlers for h in setup.handlers)
    setup.close()  # idempotent: nothing changes
    assert setup.closed
    assert faro_logger.handlers == [mine] and faro_logger.level == logging.DEBUG
    faro_logger.removeHandler(mine)


def test_a_second_setup_replaces_the_first(tmp_path: Path, faro_logger: logging.Logger) -> None:
    before = (faro_logger.level, faro_logger.propagate, list(faro_logger.handlers))
    console = io.StringIO()
    first = setup_logging(config(tmp_path, "debug"), console=console)
    second = setup_logging(config(tmp_path, "info"), console=console)
    assert first.closed and not second.closed
    assert first.log_file != second.log_file
    _log_event(event())
    for handler in second.handlers:
        handler.flush()  # written in batches: now, rather than within 0.1 s
    assert console.getvalue().count("CONFIG [ADDED]") == 1  # not twice
    assert "CONFIG" not in first.log_file.read_text(encoding="utf-8")
    assert faro_logger.level == logging.INFO
    first.close()  # already closed: must not undo the second setup
    assert faro_logger.level == logging.INFO and faro_logger.propagate is False
    assert all(h in faro_logger.handlers for h in second.handlers)
    second.close()  # back to the state before the first
    assert (faro_logger.level, faro_logger.propagate, list(faro_logger.handlers)) == before


def test_the_log_file_path(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with setup_logging(config(tmp_path), console=io.StringIO()) as first, \
            setup_logging(config(tmp_path), console=io.StringIO()) as second:
        after = datetime.now(timezone.utc)
        for setup in (first, second):
            assert setup.log_file.parent == tmp_path / "out" / "logs"
            match = LOG_NAME.fullmatch(setup.log_file.name)
            assert match is not None, setup.log_file.name
            stamp = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(
                tzinfo=timezone.utc)
            assert before <= stamp <= after
        assert first.log_file != second.log_file  # same second: "-2"; never the same file
        assert first.log_file.exists() and second.log_file.exists()


def test_the_console_defaults_to_stderr_at_call_time(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    with setup_logging(config(tmp_path)):
        logging.getLogger("faro.controller").info("to stderr")
    assert stderr.getvalue().endswith(" INFO faro.controller: to stderr\n")


def test_the_format_is_utc_with_milliseconds() -> None:
    created = datetime(2026, 11, 22, 10, 15, 2, 123456, tzinfo=timezone.utc).timestamp()
    record = logging.LogRecord("faro.events", logging.INFO, __file__, 1, "CONFIG %s", ("x",),
                               None)
    record.created = created
    record.msecs = 123.456
    assert UTCFormatter(LOG_FORMAT).format(record) == \
        "2026-11-22T10:15:02.123Z INFO faro.events: CONFIG x"


def test_exceptions_are_written_with_their_traceback(tmp_path: Path) -> None:
    console = io.StringIO()
    with setup_logging(config(tmp_path), console=console) as setup:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("faro.controller").exception("handler failed")
    text = setup.log_file.read_text(encoding="utf-8")
    assert "ERROR faro.controller: handler failed\nTraceback" in text
    assert "RuntimeError: boom" in text
    assert text == console.getvalue()


def test_repr_and_type(tmp_path: Path) -> None:
    setup = setup_logging(config(tmp_path), console=io.StringIO())
    assert isinstance(setup, LoggingSetup)
    assert "INFO" in repr(setup)
    setup.close()
    assert "closed" in repr(setup)


# ---------------------------------------------------------------------------------------------
# The log file: 0600, and never a file someone else put at its name
# ---------------------------------------------------------------------------------------------

needs_fifos = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

def file_handler_of(setup: LoggingSetup) -> logging.FileHandler:
    (handler,) = [h for h in setup.handlers if isinstance(h, logging.FileHandler)]
    return handler


def plant(planted: str, path: Path, victim: Path) -> Path:
    """Put a symlink to ``victim``, a FIFO or a directory at ``path``; returns the FIFO."""
    fifo = path.parent / "fifo"
    if planted == "symlink":
        path.symlink_to(victim)
    elif planted == "fifo":
        os.mkfifo(path)
        fifo = path
    else:
        path.mkdir()
    return fifo


def planted_kind(path: Path) -> str:
    if path.is_symlink():
        return "symlink"
    if stat.S_ISFIFO(path.stat().st_mode):
        return "fifo"
    return "directory" if path.is_dir() and not list(path.iterdir()) else "something else"


@pytest.mark.parametrize("umask", [0, 0o022], ids=["umask 000", "umask 022"])
def test_the_log_file_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        setup = setup_logging(config(tmp_path), console=io.StringIO())
    finally:
        os.umask(previous)
    with setup:
        logging.getLogger("faro.controller").warning("a line")
        assert oct(stat.S_IMODE(setup.log_file.stat().st_mode)) == oct(0o600)
        stream = file_handler_of(setup).stream
        if hasattr(os, "get_blocking"):
            assert os.get_blocking(stream.fileno())  # O_NONBLOCK cleared on the regular file
    assert setup.log_file.read_text(encoding="utf-8").endswith("a line\n")


@needs_fifos
@pytest.mark.parametrize("planted", ["symlink", "fifo", "directory"])
def test_a_closed_setup_never_opens_its_files_name_again(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim.log"
    victim.write_bytes(b"")
    setup = setup_logging(config(tmp_path), console=io.StringIO())
    handler = file_handler_of(setup)
    setup.close()
    setup.log_file.unlink()
    fifo = plant(planted, setup.log_file, victim)
    # A thread that took the handler just before close() logs one more line.
    record = logging.LogRecord("faro.controller", logging.WARNING, __file__, 1, "late", (), None)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        call_bounded(lambda: handler.handle(record), fifo)
    assert victim.read_bytes() == b""
    assert planted_kind(setup.log_file) == planted
    assert stderr.getvalue() == ""  # no "--- Logging error ---" either
