"""User-supplied regular expressions, matched in linear time with RE2 (``google-re2``).

Python's :mod:`re` backtracks: a pattern such as ``(a+)+$`` against a name such as
``aaaa…ab`` takes time exponential in the name's length, and holds the GIL all along, so one
object name chosen by anyone who may create objects would freeze the whole process. RE2, like
the Go original's ``regexp``, matches in time linear in the pattern and the text; in exchange it
does not support the constructs that need backtracking (backreferences, lookahead,
lookbehind, possessive repetition) and a few Python-only escapes (``\\Z``).

This module is the one place faro uses RE2: it gives the untyped binding a typed face.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

import re2  # type: ignore[import-untyped]

__all__ = ["Pattern", "PatternError", "UnsupportedPattern", "compile_pattern"]


class Pattern(Protocol):
    """A compiled pattern: the part of RE2's (and :mod:`re`'s) interface faro uses."""

    @property
    def pattern(self) -> str: ...

    def fullmatch(self, text: str) -> object | None:
        """A match object when the whole of ``text`` matches, otherwise None."""
        ...


class PatternError(ValueError):
    """``text`` is not a valid regular expression at all (Python's :mod:`re` rejects it too)."""


class UnsupportedPattern(PatternError):
    """``text`` is valid Python syntax but RE2 cannot match it in linear time."""


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised (and reported in the config error), not logged


@lru_cache(maxsize=1024)
def compile_pattern(text: str) -> Pattern:
    """``text`` compiled by RE2, to be used with :meth:`Pattern.fullmatch`.

    Raises :class:`PatternError` (with :mod:`re`'s explanation) when ``text`` is not a regular
    expression, and :class:`UnsupportedPattern` (with RE2's) when it is one RE2 does not
    support.
    """
    try:
        compiled: Pattern = re2.compile(text, _OPTIONS)
    except re2.error as exc:
        try:
            re.compile(text)
        except re.error as syntax:
            raise PatternError(str(syntax)) from None
        raise UnsupportedPattern(_reason(exc)) from None
    return compiled


def _reason(exc: BaseException) -> str:
    """RE2's message, which the binding gives as bytes."""
    (detail, *_) = exc.args or ("",)
    if isinstance(detail, bytes):
        return detail.decode("utf-8", "replace")
    return str(detail)
