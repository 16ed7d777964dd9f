"""Kubernetes label and field selectors: parsing, validation and matching.

The grammar, validation rules, matching semantics and error messages follow
kube-apiserver (``k8s.io/apimachinery`` ``pkg/labels`` and ``pkg/fields``), so
that the simulated API server accepts and rejects exactly the selectors a real
one does, and filters the same objects.

Label selectors (``labelSelector=`` query parameter)::

    selector    ::= "" | requirement ("," requirement)*
    requirement ::= ["!"] KEY
                  | KEY ("=" | "==" | "!=") [VALUE]
                  | KEY ("in" | "notin") "(" [VALUE] ("," [VALUE])* ")"
                  | KEY (">" | "<") INTEGER

Spaces, tabs, carriage returns and newlines may surround every token. ``KEY``
is an optional DNS-1123 subdomain prefix and ``/`` followed by a name of at
most 63 characters; ``VALUE`` is at most 63 characters, possibly empty. As
upstream, ``!=`` and ``notin`` match objects that lack the key, and ``in ()``
is accepted as ``in ("")``.

Field selectors (``fieldSelector=`` query parameter) are ``FIELD OP VALUE``
terms separated by commas, ``OP`` one of ``=``, ``==``, ``!=``. No whitespace
is trimmed. In values, ``\\``, ``,`` and ``=`` must be escaped with a
backslash. A missing field compares as the empty string. Which field names a
resource supports is the caller's concern (see :meth:`FieldSelector.fields`).

Known deviations from upstream, all confined to inputs no client sends:

* a NUL character is an ordinary (hence invalid) character here, whereas the
  upstream lexer treats it as the end of the selector;
* :func:`str` orders requirements by key and then by their text, where
  upstream orders by key only and leaves duplicate keys in an unspecified
  order; field selector terms are ordered by their canonical text, where
  upstream orders them by their original text;
* the field selector "unescaped character" error shows the character, not its
  code point.

All selector and requirement objects are immutable once constructed, and so
safe to share between threads without locking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Generic, Literal, NamedTuple, NoReturn, TypeVar

from faro._names import label_key_errors, label_value_errors

__all__ = [
    "FieldOperator",
    "FieldRequirement",
    "FieldSelector",
    "LabelOperator",
    "LabelRequirement",
    "LabelSelector",
    "SelectorError",
    "object_fields",
    "parse_field_selector",
    "parse_label_selector",
]


_R = TypeVar("_R")


class SelectorError(ValueError):
    """A label or field selector (or one of its requirements) is malformed.

    The message names the offending part and follows the wording of
    kube-apiserver, so it can be returned as-is in a 400 ``BadRequest``.
    """


# ---------------------------------------------------------------------------
# Error messages. Label keys and values are checked by faro._names (apimachinery
# validate/content); these helpers shape the errors as pkg/labels does.
# ---------------------------------------------------------------------------

_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _go_quote(s: str) -> str:
    """Quote ``s`` the way Go's ``%q`` does (close enough for messages)."""
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _invalid(path: str, value: str | list[str], detail: str) -> str:
    shown = _go_quote(value) if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_GO_INT_RE: Final = re.compile(r"[+-]?[0-9]+")


def _parse_go_int64(s: str) -> int | None:
    """``strconv.ParseInt(s, 10, 64)``: the value, or None when it fails."""
    if _GO_INT_RE.fullmatch(s) is None:
        return None
    n = int(s)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


# ---------------------------------------------------------------------------
# Label requirements and selectors
# ---------------------------------------------------------------------------

LabelOperator = Literal["=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"]
"""Label requirement operators, spelled as apimachinery's ``selection.Operator``."""

_BINARY_OPERATORS: Final[tuple[str, ...]] = ("in", "notin", "=", "==", "!=", "gt", "lt")
_ALL_OPERATORS: Final[tuple[str, ...]] = (*_BINARY_OPERATORS, "exists", "!")

# A precompiled test over a str -> str mapping (labels or fields).
_LabelTest = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One label requirement: ``key``, ``operator`` and its ``values``.

    Construction validates like apimachinery's ``NewRequirement`` and raises
    :class:`SelectorError` when the key, the operator, the number of values
    or a value is invalid. ``values`` is stored sorted and without duplicates
    (the comparison and hash therefore ignore value order). Immutable.

    Semantics of :meth:`matches` (``labels`` lacking the key in brackets):
    ``=``, ``==``, ``in``: value is one of ``values`` [no match];
    ``!=``, ``notin``: value is none of ``values`` [match];
    ``exists`` [no match]; ``!`` [match];
    ``gt``, ``lt``: value parses as a 64-bit integer greater / less than the
    single value [no match].
    """

    key: str
    operator: LabelOperator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_requirement(self.key, self.operator, list(self.values), "key")
        normalized = tuple(sorted(set(self.values)))
        if normalized != self.values:
            object.__setattr__(self, "values", normalized)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether ``labels`` (None meaning no labels) satisfy this requirement.

        A convenience that compiles the test on each call; on hot paths use
        :meth:`LabelSelector.matches`, which is precompiled.
        """
        return _compile_requirement(self)(labels if labels is not None else _NO_LABELS)

    def __str__(self) -> str:
        op = self.operator
        if op == "exists":
            return self.key
        if op == "!":
            return "!" + self.key
        if op in ("in", "notin"):
            return f"{self.key} {op} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(op, op)
        return f"{self.key}{symbol}{self.values[0]}"


def _check_requirement(key: str, op: str, values: list[str], key_path: str) -> None:
    """Raise SelectorError unless (key, op, values) forms a valid requirement."""
    errs: list[str] = []
    key_errs = label_key_errors(key)
    if key_errs:
        errs.append(_invalid(key_path, key, "; ".join(key_errs)))
    if op in ("in", "notin"):
        if not values:
            errs.append(
                _invalid("values", values, "for 'in', 'notin' operators, values set can't be empty")
            )
    elif op in ("=", "==", "!="):
        if len(values) != 1:
            errs.append(
                _invalid("values", values, "exact-match compatibility requires one single value")
            )
    elif op in ("exists", "!"):
        if values:
            errs.append(
                _invalid("values", values, "values set must be empty for exists and does not exist")
            )
    elif op in ("gt", "lt"):
        if len(values) != 1:
            errs.append(
                _invalid(
                    "values", values, "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            )
        for i, v in enumerate(values):
            if _parse_go_int64(v) is None:
                errs.append(
                    _invalid(
                        f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                )
    else:
        supported = ", ".join(_go_quote(o) for o in _ALL_OPERATORS)
        errs.append(f"operator: Unsupported value: {_go_quote(op)}: supported values: {supported}")
    for i, v in enumerate(values):
        value_errs = label_value_errors(v)
        if value_errs:
            errs.append(_invalid(f"values[{i}][{key}]", v, "; ".join(value_errs)))
    if errs:
        raise SelectorError(_aggregate(errs))


_NO_LABELS: Final[Mapping[str, str]] = {}


def _compile_requirement(req: LabelRequirement) -> _LabelTest:
    """A function answering ``req.matches`` for a non-None label mapping."""
    key, op, values = req.key, req.operator, req.values
    if op == "exists":
        return lambda labels: key in labels
    if op == "!":
        return lambda labels: key not in labels
    if op in ("gt", "lt"):
        bound = _parse_go_int64(values[0])
        assert bound is not None  # checked at construction
        greater = op == "gt"

        def compare(labels: Mapping[str, str]) -> bool:
            raw = labels.get(key)
            if raw is None:
                return False
            n = _parse_go_int64(raw)
            if n is None:
                return False
            return n > bound if greater else n < bound

        return compare
    # Label values are strings, so a missing key (None) never equals a value
    # and is never in the set: the missing-key rules fall out of get().
    positive = op in ("=", "==", "in")
    if len(values) == 1:
        only = values[0]
        if positive:
            return lambda labels: labels.get(key) == only
        return lambda labels: labels.get(key) != only
    allowed = frozenset(values)
    if positive:
        return lambda labels: labels.get(key) in allowed
    return lambda labels: labels.get(key) not in allowed


def _match_all(tests: tuple[_LabelTest, ...]) -> _LabelTest:
    if not tests:
        return lambda labels: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda labels: first(labels) and second(labels)

    def every(labels: Mapping[str, str]) -> bool:
        # A plain loop: all() over a generator costs more on this hot path.
        for test in tests:  # noqa: SIM110
            if not test(labels):
                return False
        return True

    return every


class _Selector(Generic[_R]):
    """Value-object plumbing shared by both selector kinds.

    Holds the canonical requirement tuple and its text; instances compare and
    hash by their requirements and refuse mutation after construction.
    """

    __slots__ = ("_requirements", "_text")

    _requirements: tuple[_R, ...]
    _text: str

    def _freeze(self, requirements: tuple[_R, ...]) -> None:
        object.__setattr__(self, "_requirements", requirements)
        object.__setattr__(self, "_text", ",".join(str(r) for r in requirements))

    @property
    def requirements(self) -> tuple[_R, ...]:
        """The requirements, in canonical order."""
        return self._requirements

    @property
    def is_empty(self) -> bool:
        """True when the selector has no requirements and so matches everything."""
        return not self._requirements

    def __str__(self) -> str:
        """Canonical text; parsing it gives an equal selector."""
        return self._text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._requirements == other._requirements

    def __hash__(self) -> int:
        return hash(self._requirements)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")


class LabelSelector(_Selector[LabelRequirement]):
    """A parsed label selector: the AND of its :attr:`requirements`.

    Requirements are kept in canonical order (by key, then by text). Instances
    are immutable, compare and hash by their requirements, and are safe to
    share between threads; matching is precompiled at construction.
    """

    __slots__ = ("_match",)

    _match: _LabelTest

    def __init__(self, requirements: Iterable[LabelRequirement] = ()) -> None:
        """Build a selector requiring every one of ``requirements`` (none: match all)."""
        reqs = tuple(sorted(requirements, key=lambda r: (r.key, str(r))))
        self._freeze(reqs)
        object.__setattr__(self, "_match", _match_all(tuple(_compile_requirement(r) for r in reqs)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether ``labels`` (None meaning no labels) satisfy every requirement."""
        return self._match(labels if labels is not None else _NO_LABELS)


# Lexer ---------------------------------------------------------------------

_EOS: Final = 0
_IDENT: Final = 1
_IN: Final = 2
_NOTIN: Final = 3
_COMMA: Final = 4
_OPEN: Final = 5
_CLOSE: Final = 6
_BANG: Final = 7
_EQ: Final = 8
_DEQ: Final = 9
_NEQ: Final = 10
_GT: Final = 11
_LT: Final = 12

_SYMBOLS: Final = {
    ",": _COMMA,
    "(": _OPEN,
    ")": _CLOSE,
    "!": _BANG,
    "=": _EQ,
    "==": _DEQ,
    "!=": _NEQ,
    ">": _GT,
    "<": _LT,
}
_KEYWORDS: Final = {"in": _IN, "notin": _NOTIN}
_OPERATOR_TOKENS: Final[dict[int, LabelOperator]] = {
    _IN: "in",
    _NOTIN: "notin",
    _EQ: "=",
    _DEQ: "==",
    _NEQ: "!=",
    _GT: "gt",
    _LT: "lt",
}
# Whitespace as upstream: space, tab, CR, LF. Symbols take the longest match.
_TOKEN_RE: Final = re.compile(r"[ \t\r\n]*(?:(==|!=|[=!(),<>])|([^=!(),<> \t\r\n]+))?")

_Token = tuple[int, str]


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        m = _TOKEN_RE.match(text, pos)
        assert m is not None  # the pattern can match the empty string
        symbol, word = m.group(1), m.group(2)
        if symbol is not None:
            tokens.append((_SYMBOLS[symbol], symbol))
        elif word is not None:
            tokens.append((_KEYWORDS.get(word, _IDENT), word))
        else:
            tokens.append((_EOS, ""))
            return tokens
        pos = m.end()


# Parser --------------------------------------------------------------------


class _RequirementError(Exception):
    """Internal: a requirement failed; wrapped as 'unable to parse requirement'."""


class _LabelParser:
    """Recursive-descent parser over the token list, mirroring upstream.

    In "values" context the keywords ``in`` and ``notin`` are identifiers, so
    they may serve as keys and values.
    """

    __slots__ = ("pos", "tokens")

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values_ctx: bool = True) -> _Token:
        kind, lit = self.tokens[self.pos]
        if values_ctx and kind in (_IN, _NOTIN):
            kind = _IDENT
        return kind, lit

    def take(self, values_ctx: bool = True) -> _Token:
        token = self.peek(values_ctx)
        if token[0] != _EOS:
            self.pos += 1
        return token

    def parse(self) -> list[LabelRequirement]:
        requirements: list[LabelRequirement] = []
        while True:
            kind, lit = self.peek()
            if kind == _EOS:
                return requirements
            if kind not in (_IDENT, _BANG):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except _RequirementError as exc:
                raise SelectorError(f"unable to parse requirement: {exc}") from None
            kind, lit = self.take()
            if kind == _EOS:
                return requirements
            if kind != _COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self.peek()
            if kind not in (_IDENT, _BANG):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> LabelRequirement:
        negated = False
        kind, key = self.take()
        if kind == _BANG:
            negated = True
            kind, key = self.take()
        if kind != _IDENT:
            raise _RequirementError(f"found '{key}', expected: identifier")
        key_errs = label_key_errors(key)
        if key_errs:
            raise _RequirementError(_invalid("<nil>", key, "; ".join(key_errs)))
        if negated:
            # Anything after "!key" other than ',' or the end is reported by
            # the caller, as upstream does.
            return self.build(key, "!", [])
        if self.peek()[0] in (_EOS, _COMMA):
            return self.build(key, "exists", [])
        kind, lit = self.take(values_ctx=False)
        op = _OPERATOR_TOKENS.get(kind)
        if op is None:
            raise _RequirementError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        if op in ("in", "notin"):
            return self.build(key, op, self.value_set())
        return self.build(key, op, [self.exact_value()])

    @staticmethod
    def build(key: str, op: LabelOperator, values: list[str]) -> LabelRequirement:
        # Upstream validates the de-duplicated, sorted values: error paths
        # such as values[1][key] index into that list.
        try:
            return LabelRequirement(key, op, tuple(sorted(set(values))))
        except SelectorError as exc:
            raise _RequirementError(str(exc)) from None

    def exact_value(self) -> str:
        kind, lit = self.peek()
        if kind in (_EOS, _COMMA):
            return ""
        self.take()
        if kind != _IDENT:
            raise _RequirementError(f"found '{lit}', expected: identifier")
        return lit

    def value_set(self) -> list[str]:
        kind, lit = self.take()
        if kind != _OPEN:
            raise _RequirementError(f"found '{lit}' expected: '('")
        kind, lit = self.peek()
        if kind == _CLOSE:
            self.take()
            return [""]
        if kind not in (_IDENT, _COMMA):
            raise _RequirementError(f"found '{lit}', expected: ',', ')' or identifier")
        values: list[str] = []
        while True:
            kind, lit = self.take()
            if kind == _IDENT:
                values.append(lit)
                next_kind, next_lit = self.peek()
                if next_kind == _CLOSE:
                    self.take()
                    return values
                if next_kind != _COMMA:
                    raise _RequirementError(f"found '{next_lit}', expected: ',' or ')'")
            elif kind == _COMMA:
                # An empty slot before, between or after commas is the value "".
                if not values:
                    values.append("")
                next_kind = self.peek()[0]
                if next_kind == _CLOSE:
                    self.take()
                    values.append("")
                    return values
                if next_kind == _COMMA:
                    values.append("")
            else:
                raise _RequirementError(f"found '{lit}', expected: ',', or identifier")


@lru_cache(maxsize=512)
def _parse_label_selector_cached(text: str) -> LabelSelector:
    return LabelSelector(_LabelParser(text).parse())


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a label selector as kube-apiserver does.

    The empty string (or whitespace) gives the empty selector, which matches
    everything. Raises :class:`SelectorError` (a ``ValueError``) naming the
    offending token, key or value when ``text`` is malformed. The result is
    immutable and may be shared: equal texts may return the same object.
    """
    return _parse_label_selector_cached(text)


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

FieldOperator = Literal["=", "!="]
"""Field requirement operators (``==`` is parsed as ``=``)."""


class FieldRequirement(NamedTuple):
    """One field selector term: ``field`` ``op`` ``value`` (value unescaped)."""

    field: str
    op: FieldOperator
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.op}{_escape_field_value(self.value)}"


def _escape_field_value(value: str) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(raw: str, term: str) -> str:
    """The value ``raw`` (from ``term``, named in errors) with escapes removed."""
    if "\\" not in raw and "," not in raw and "=" not in raw:
        return raw
    out: list[str] = []
    escaping = False
    for ch in raw:
        if escaping:
            if ch not in "\\,=":
                raise SelectorError(
                    f"invalid field selector: invalid escape sequence: \\{ch} (in '{term}')"
                )
            out.append(ch)
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch in ",=":
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ch!r} (in '{term}')"
            )
        else:
            out.append(ch)
    if escaping:
        raise SelectorError(f"invalid field selector: invalid escape sequence: \\ (in '{term}')")
    return "".join(out)


def _split_field_terms(text: str) -> list[str]:
    """Split on commas not preceded by an escaping backslash (escapes kept)."""
    if "\\" not in text:
        return text.split(",")
    terms: list[str] = []
    start = 0
    escaping = False
    for i, ch in enumerate(text):
        if escaping:
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    """(lhs, op, raw rhs) at the first operator in ``term``, or None."""
    eq = term.find("=")
    ne = term.find("!=")
    if ne != -1 and ne < eq:
        return term[:ne], "!=", term[ne + 2 :]
    if eq == -1:
        return None
    if term.startswith("==", eq):
        return term[:eq], "=", term[eq + 2 :]
    return term[:eq], "=", term[eq + 1 :]


def _compile_field_requirement(req: FieldRequirement) -> _LabelTest:
    field, value = req.field, req.value
    if req.op == "=":
        return lambda fields: fields.get(field, "") == value
    return lambda fields: fields.get(field, "") != value


class FieldSelector(_Selector[FieldRequirement]):
    """A parsed field selector: the AND of its :attr:`requirements`.

    Requirements are kept in canonical order. A field missing from the
    mapping given to :meth:`matches` compares as ``""`` (as upstream). Instances
    are immutable, compare and hash by their requirements, and are safe to
    share between threads; matching is precompiled at construction.
    """

    __slots__ = ("_field_names", "_match")

    _field_names: frozenset[str]
    _match: _LabelTest

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        """Build a selector requiring every one of ``requirements`` (none: match all)."""
        reqs = tuple(sorted(requirements, key=str))
        for r in reqs:
            if r.op not in ("=", "!="):
                raise SelectorError(f"invalid field selector operator: {r.op!r}")
        match = _match_all(tuple(_compile_field_requirement(r) for r in reqs))
        self._freeze(reqs)
        object.__setattr__(self, "_field_names", frozenset(r.field for r in reqs))
        object.__setattr__(self, "_match", match)

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether ``fields`` (e.g. from :func:`object_fields`) satisfy every term."""
        return self._match(fields)

    def fields(self) -> frozenset[str]:
        """Names of the fields the selector refers to."""
        return self._field_names


@lru_cache(maxsize=512)
def _parse_field_selector_cached(text: str) -> FieldSelector:
    requirements: list[FieldRequirement] = []
    # Sorted as upstream, so that the first error reported is the same.
    for part in sorted(_split_field_terms(text)):
        if not part:
            continue
        split = _split_field_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        value = _unescape_field_value(raw, part)
        if not field and not value:
            continue  # upstream drops a term with neither field nor value
        requirements.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return FieldSelector(requirements)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a field selector as kube-apiserver does.

    Terms are ``field=value``, ``field==value`` or ``field!=value`` separated
    by commas; empty terms are ignored and nothing is trimmed. Raises
    :class:`SelectorError` for a term without an operator, an invalid escape
    sequence or an unescaped ``,`` / ``=`` in a value. Field names are not
    checked against any resource. The result is immutable and may be shared.
    """
    return _parse_field_selector_cached(text)


def object_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    """The fields every resource supports in field selectors, for ``obj``.

    Returns ``{"metadata.name": ..., "metadata.namespace": ...}``, each ``""``
    when absent (cluster-scoped objects have namespace ``""``). A new dict is
    returned on each call; ``obj`` is not modified.
    """
    name = namespace = ""
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        raw_name = metadata.get("name")
        if isinstance(raw_name, str):
            name = raw_name
        raw_namespace = metadata.get("namespace")
        if isinstance(raw_namespace, str):
            namespace = raw_namespace
    return {"metadata.name": name, "metadata.namespace": namespace}
