"""faro._batch.LineBatcher: lines written in groups, in order, within the interval, all at close."""

from __future__ import annotations

import threading

from faro._batch import LineBatcher
from tests.integration.helpers import DEADLINE


class Sink:
    """Records each batch ``write`` gets; ``fail`` makes the next call raise."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.threads: list[str] = []
        self.fail = False
        self.changed = threading.Condition()

    def write(self, lines: list[bytes]) -> None:
        with self.changed:
            if self.fail:
                self.fail = False
                raise OSError("disk full")
            self.batches.append(lines)
            self.threads.append(threading.current_thread().name)
            self.changed.notify_all()

    def wait(self, count: int) -> list[bytes]:
        with self.changed:
            assert self.changed.wait_for(lambda: sum(map(len, self.batches)) >= count, DEADLINE)
            return [line for batch in self.batches for line in batch]


def test_lines_added_together_are_written_in_one_call_in_order_on_the_flush_thread() -> None:
    sink = Sink()
    batcher = LineBatcher(sink.write, name="test")
    try:
        for number in range(100):
            batcher.add(b"%d\n" % number)
        assert sink.wait(100) == [b"%d\n" % number for number in range(100)]
        assert len(sink.batches) <= 2  # one write, or two if the interval ended meanwhile
        assert sink.threads[0] == "faro-flush-test"
    finally:
        batcher.close()


def test_flush_writes_at_once_on_the_calling_thread_and_close_writes_the_rest() -> None:
    sink = Sink()
    batcher = LineBatcher(sink.write, name="test", interval=3600.0)
    batcher.add(b"a\n")
    batcher.flush()
    assert sink.batches == [[b"a\n"]] and sink.threads == [threading.current_thread().name]
    batcher.add(b"b\n")
    batcher.add(b"c\n")
    batcher.close()
    assert sink.batches == [[b"a\n"], [b"b\n", b"c\n"]]
    assert not any(t.name == "faro-flush-test" for t in threading.enumerate())
    batcher.add(b"late\n")  # after close: written at once
    assert sink.batches[-1] == [b"late\n"]


def test_a_failing_write_loses_its_batch_only() -> None:
    sink = Sink()
    batcher = LineBatcher(sink.write, name="test", interval=3600.0)
    try:
        sink.fail = True
        batcher.add(b"lost\n")
        batcher.flush()
        batcher.add(b"kept\n")
        batcher.flush()
        assert sink.batches == [[b"kept\n"]]
    finally:
        batcher.close()
