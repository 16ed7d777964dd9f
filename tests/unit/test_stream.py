"""Watch-body decoding: chunked framing undone in large reads, lines split, any framing.

Served by a tiny raw HTTP server on 127.0.0.1 so urllib3 parses real responses.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from faro.cache._stream import LineStream, StreamError, _dechunk


def chunked(payloads: list[bytes], end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in payloads)
    return body + (b"0\r\n\r\n" if end else b"")


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"0", b"\r\n")),
                         max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=5))
def test_dechunk_recovers_the_payloads_whatever_the_read_boundaries(
        payloads: list[bytes], cuts: list[int]) -> None:
    """Payloads may contain CRLF (the fast path must notice and fall back)."""
    body = chunked(payloads)
    got: list[bytes] = []
    buffer = b""
    previous = 0
    finished = False
    for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
        buffer += body[previous:cut]
        previous = max(previous, cut)
        parts, buffer, finished = _dechunk(buffer)
        got.extend(parts)
        if finished:
            break
    assert finished
    assert got == payloads


def test_dechunk_accepts_chunk_extensions_and_rejects_garbage() -> None:
    assert _dechunk(b"3;name=value\r\nabc\r\n0\r\n\r\n") == ([b"abc"], b"", True)
    with pytest.raises(StreamError, match="bad chunk size b'zz'"):
        _dechunk(b"zz\r\nabc\r\n")
    with pytest.raises(StreamError, match="not followed by CRLF"):
        _dechunk(b"3\r\nabcd\r\n")


class _Server:
    """Answers every request with ``head + body``; ``hold`` keeps the connection open after."""

    def __init__(self, response: bytes, hold: bool = False) -> None:
        self.response = response
        self.hold = hold
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                conn.sendall(self.response)
                if self.hold:
                    self.release.wait(30)

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@contextlib.contextmanager
def served(head: bytes, body: bytes, hold: bool = False) -> Iterator[LineStream]:
    server = _Server(head + b"\r\n" + body, hold)
    http = urllib3.PoolManager()
    response = http.request("GET", f"http://127.0.0.1:{server.port}/", preload_content=False,
                            timeout=urllib3.Timeout(connect=5, read=10))
    stream = LineStream(response)
    try:
        yield stream
    finally:
        stream.close()
        server.close()


LINES = [b'{"type":"ADDED","n":%d}' % i for i in range(1000)]


def all_lines(stream: LineStream) -> list[bytes]:
    """The lines without their newline (a line may keep it: see LineStream)."""
    return [line.removesuffix(b"\n") for batch in stream for line in batch]


def test_chunked_body_one_line_per_chunk() -> None:
    body = chunked([line + b"\n" for line in LINES])
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", body) as stream:
        assert all_lines(stream) == LINES
        assert stream.clean_end


def test_chunked_body_with_lines_split_across_chunks() -> None:
    text = b"".join(line + b"\n" for line in LINES)
    pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", chunked(pieces)) as stream:
        assert all_lines(stream) == LINES


def test_content_length_body_takes_the_fallback_path() -> None:
    text = b"".join(line + b"\n" for line in LINES[:50])
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(text)
    with served(head, text) as stream:
        assert all_lines(stream) == LINES[:50]
        assert stream.clean_end


def test_gzip_body_is_decompressed() -> None:
    text = b"".join(line + b"\n" for line in LINES[:50])
    packed = gzip.compress(text)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n" % len(packed)
    with served(head, packed) as stream:
        assert all_lines(stream) == LINES[:50]


def test_chunks_of_one_line_each_are_the_lines_as_they_came_otherwise_split() -> None:
    one_each = chunked([b'{"a":1}\n', b'{"b":2}\n'])
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", one_each) as stream:
        assert [line for batch in stream for line in batch] == [b'{"a":1}\n', b'{"b":2}\n']
    mixed = chunked([b'{"a":1}\n', b'{"b":2}\n{"c":3}\n', b'{"d"', b':4}\n'])
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", mixed) as stream:
        assert all_lines(stream) == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}']


def test_a_last_line_without_newline_is_kept() -> None:
    body = chunked([b'{"a":1}\n{"b":2}'])
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", body) as stream:
        assert all_lines(stream) == [b'{"a":1}', b'{"b":2}']


def test_connection_closed_before_the_final_chunk_is_an_error() -> None:
    body = chunked([b'{"a":1}\n'], end=False)
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", body) as stream:
        lines: list[bytes] = []
        with pytest.raises(StreamError, match="closed in the middle"):
            for batch in stream:
                lines.extend(batch)
        assert lines == [b'{"a":1}\n']  # a whole chunk is a whole line: kept as it came
        assert not stream.clean_end


def test_abort_from_another_thread_ends_a_blocked_read() -> None:
    body = chunked([b'{"a":1}\n'], end=False)
    with served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", body,
                hold=True) as stream:
        iterator = iter(stream)
        assert next(iterator) == [b'{"a":1}\n']
        outcome: list[BaseException | None] = []

        def read_on() -> None:
            try:
                next(iterator)
                outcome.append(None)
            except (StopIteration, StreamError, OSError) as exc:
                outcome.append(exc)

        reader = threading.Thread(target=read_on)
        reader.start()
        started = time.monotonic()
        stream.abort()
        reader.join(5)
        assert not reader.is_alive()
        assert time.monotonic() - started < 5
        assert outcome and outcome[0] is not None
        assert not stream.clean_end
