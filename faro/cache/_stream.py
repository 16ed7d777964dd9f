"""Splitting a watch response into event lines, with large reads.

The API server writes one JSON event per line, normally one line per HTTP
chunk. ``http.client`` (under urllib3) returns one chunk per read call, and the
official client's ``iter_resp_lines`` re-slices its buffer for every line, so
both cost a Python call per event before any decoding. This reader takes up to
1 MiB at a time straight from the connection's buffered socket, undoes the
chunked transfer encoding itself and splits lines with ``bytes.split``.

It falls back to urllib3's own ``read1`` (which also undoes any
Content-Encoding) when the response is not chunked, is compressed, or the
connection does not expose the buffered socket.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

_READ_SIZE = 1 << 20


class StreamError(Exception):
    """The response body broke its framing (bad chunk size, truncated chunk)."""


class LineStream:
    """Iterates batches of complete lines (``list[bytes]``; each may end with its newline)
    of one response.

    Iteration ends when the response ends cleanly (the terminating chunk, or
    EOF of an unchunked body; then :attr:`clean_end` is True). A connection
    that breaks raises the socket's error, or :class:`StreamError` for broken
    framing. :meth:`abort` may be called from another thread: it shuts the
    socket down so a blocked read returns at once.
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self.clean_end = False
        self.bytes_read = 0
        self._raw = _raw_reader(response)

    def abort(self) -> None:
        """Shut the connection down (any thread); the reading thread then stops."""
        abort_response(self._response)

    def close(self) -> None:
        """Close the response; its connection is not reused."""
        with contextlib.suppress(Exception):
            self._response.close()

    def __iter__(self) -> Iterator[list[bytes]]:
        if self._raw is not None:
            return _lines(self._chunked_blocks(self._raw))
        return _lines(self._plain_blocks())

    def _plain_blocks(self) -> Iterator[list[bytes]]:
        read1 = self._response.read1
        while True:
            data = read1(_READ_SIZE)
            if not data:
                self.clean_end = True
                return
            self.bytes_read += len(data)
            yield [data]

    def _chunked_blocks(self, raw: Any) -> Iterator[list[bytes]]:
        """The chunk payloads of each large read, chunk framing removed."""
        buffer = b""  # undecoded chunked-encoding bytes
        read1 = raw.read1
        while True:
            data = read1(_READ_SIZE)
            if not data:
                raise StreamError("connection closed in the middle of the response")
            self.bytes_read += len(data)
            buffer = buffer + data if buffer else data
            payloads, buffer, finished = _dechunk(buffer)
            if payloads:
                yield payloads
            if finished:
                self.clean_end = True
                return


def _lines(blocks: Iterator[list[bytes]]) -> Iterator[list[bytes]]:
    """Complete lines of a byte stream given as lists of pieces, a batch per list; a last
    unterminated line too.

    The API server writes each event as one chunk ending with its newline: when every
    piece of a list is exactly one line, the pieces are the lines (newline kept), and
    nothing is joined or split.
    """
    partial = b""  # the start of a line whose end has not arrived
    for pieces in blocks:
        if not partial and _one_line_each(pieces):
            yield pieces
            continue
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if partial:
            data = partial + data
        lines = data.split(b"\n")
        partial = lines.pop()
        if lines:
            yield lines
    if partial.strip():
        yield [partial]


def _one_line_each(pieces: list[bytes]) -> bool:
    """Whether each piece ends with its only newline."""
    return all(piece.find(b"\n") == len(piece) - 1 for piece in pieces)


def _dechunk(buffer: bytes) -> tuple[list[bytes], bytes, bool]:
    """Split ``buffer`` into complete chunk payloads, the undecoded rest, and whether
    the terminating chunk was seen.

    The fast path splits on CRLF in C and checks that every payload has the
    length its size line announced; a payload that itself contains CRLF, or a
    chunk extension, fails that check and takes the byte-by-byte path.
    """
    parts = buffer.split(b"\r\n")
    pairs = (len(parts) - 1) // 2
    if pairs:
        sizes = parts[0:2 * pairs:2]
        payloads = parts[1:2 * pairs:2]
        try:
            lengths = [int(size, 16) for size in sizes]
        except ValueError:
            lengths = []
        if lengths == list(map(len, payloads)):
            if 0 in lengths:
                return payloads[:lengths.index(0)], b"", True
            rest = parts[2 * pairs:]
            return payloads, rest[0] if len(rest) == 1 else b"\r\n".join(rest), False
    return _dechunk_slow(buffer)


def _dechunk_slow(buffer: bytes) -> tuple[list[bytes], bytes, bool]:
    payloads: list[bytes] = []
    pos = 0
    end = len(buffer)
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            if end - pos > 1024:
                raise StreamError("chunk size line too long")
            break
        try:
            size = int(buffer[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            raise StreamError(f"bad chunk size {buffer[pos:eol][:40]!r}") from None
        if size < 0:
            raise StreamError(f"bad chunk size {buffer[pos:eol][:40]!r}")
        start = eol + 2
        if size == 0:
            return payloads, b"", True
        if start + size + 2 > end:
            break
        if buffer[start + size:start + size + 2] != b"\r\n":
            raise StreamError("chunk not followed by CRLF")
        payloads.append(buffer[start:start + size])
        pos = start + size + 2
    return payloads, buffer[pos:] if pos < end else b"", False


def _raw_reader(response: Any) -> Any | None:
    """The connection's buffered socket reader, when we may decode the body ourselves."""
    headers = response.headers
    if headers.get("Transfer-Encoding", "").lower() != "chunked":
        return None
    if headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    original = getattr(response, "_fp", None)  # http.client.HTTPResponse
    raw = getattr(original, "fp", None)
    if raw is None or not hasattr(raw, "read1"):
        return None
    return raw


def abort_response(response: Any) -> None:
    """Shut down the connection under a urllib3 response, from any thread.

    A thread blocked reading the response then gets EOF or an error at once.
    """
    sock = socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            # The plain socket call, even for TLS: it works at the descriptor level
            # and does not touch the SSL object the reading thread is using.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def socket_of(response: Any) -> socket.socket | None:
    """The socket under a urllib3 response, if it can be found."""
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    original = getattr(response, "_fp", None)
    raw = getattr(getattr(original, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
