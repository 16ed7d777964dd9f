"""Label and field selector parsing and matching, checked against kube-apiserver's behaviour.

Expected results come from apimachinery's pkg/labels and pkg/fields semantics (and their test
tables), not from faro's implementation.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faro._selectors import (
    FieldRequirement,
    FieldSelector,
    LabelRequirement,
    LabelSelector,
    SelectorError,
    object_fields,
    parse_field_selector,
    parse_label_selector,
)

# ---------------------------------------------------------------------------------------------
# Label selectors: operators and matching
# ---------------------------------------------------------------------------------------------

LABELS = {"app": "web", "tier": "frontend", "empty": "", "n": "10"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        # equality, three spellings
        ("app=web", LABELS, True),
        ("app=api", LABELS, False),
        ("app==web", LABELS, True),
        ("app==api", LABELS, False),
        ("app!=api", LABELS, True),
        ("app!=web", LABELS, False),
        # set based
        ("app in (api,web)", LABELS, True),
        ("app in (api,db)", LABELS, False),
        ("app notin (api,db)", LABELS, True),
        ("app notin (api,web)", LABELS, False),
        # existence
        ("app", LABELS, True),
        ("missing", LABELS, False),
        ("!missing", LABELS, True),
        ("!app", LABELS, False),
        # integer comparisons
        ("n>9", LABELS, True),
        ("n>10", LABELS, False),
        ("n<11", LABELS, True),
        ("n<10", LABELS, False),
        ("n>010", LABELS, False),  # leading zeros are still decimal
        ("n<011", LABELS, True),
        ("app>1", LABELS, False),  # label value not an integer: no match
        ("missing>1", LABELS, False),
        ("missing<1", LABELS, False),
        # empty values
        ("empty=", LABELS, True),
        ("empty==", LABELS, True),
        ("empty!=", LABELS, False),
        ("app=", LABELS, False),
        ("missing=", LABELS, False),  # "" must be present, not merely absent
        ("empty in ()", LABELS, True),
        ("app in ()", LABELS, False),
        ("empty in (,x)", LABELS, True),
        # conjunction
        ("app=web,tier=frontend", LABELS, True),
        ("app=web,tier=backend", LABELS, False),
        ("app=web,tier in (frontend),!canary,n>5", LABELS, True),
        ("app=web,tier in (frontend),!canary,n>50", LABELS, False),
        # keywords usable as keys and values
        ("notin=in", {"notin": "in"}, True),
        ("in in (in,notin)", {"in": "notin"}, True),
        ("in in (in,notin)", {"in": "x"}, False),
    ],
)
def test_label_operators(selector: str, labels: Mapping[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        # Upstream: != and notin match objects that lack the key.
        ("missing!=x", True),
        ("missing!=", True),
        ("missing notin (x,y)", True),
        ("missing notin ()", True),
        # ...while =, ==, in, exists and gt/lt do not.
        ("missing=x", False),
        ("missing==x", False),
        ("missing in (x,y)", False),
        ("missing", False),
    ],
)
def test_missing_key_rule(selector: str, expected: bool) -> None:
    sel = parse_label_selector(selector)
    assert sel.matches({"other": "x"}) is expected
    assert sel.matches({}) is expected
    assert sel.matches(None) is expected


def test_none_labels_mean_no_labels() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)
    assert parse_label_selector("").matches(None)


def test_empty_selector_matches_everything() -> None:
    for text in ("", " ", "\t\r\n "):
        sel = parse_label_selector(text)
        assert sel.is_empty
        assert str(sel) == ""
        assert sel.requirements == ()
        assert sel.matches({"x": "y"})
        assert sel.matches({})
    assert not parse_label_selector("a").is_empty


def test_matching_accepts_any_mapping() -> None:
    class Labels(Mapping[str, str]):
        def __init__(self, data: dict[str, str]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> str:
            return self._data[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    sel = parse_label_selector("a=1,b in (2,3),!c,d notin (4)")
    assert sel.matches(Labels({"a": "1", "b": "3"}))
    assert not sel.matches(Labels({"a": "1", "b": "3", "c": ""}))


# ---------------------------------------------------------------------------------------------
# Label selectors: parsing details
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a=b", "a=b"),
        ("  a  =  b  ", "a=b"),
        ("a\t==\tb", "a==b"),
        ("\ra", "a"),
        ("x notin\n (abc)", "x notin (abc)"),
        ("x  notin\t\t(abc , def )", "x notin (abc,def)"),
        ("foo  in\t (abc)", "foo in (abc)"),
        ("a in(b)", "a in (b)"),
        (" ! a ", "!a"),
        ("a , b", "a,b"),
        ("x= ,z= ", "x=,z="),
        ("x>1,z<5", "x>1,z<5"),
        # requirements sorted by key, values sorted and de-duplicated
        ("z=1,a=2,m", "a=2,m,z=1"),
        ("x in (c,a,b,a)", "x in (a,b,c)"),
        # empty slots in value lists are the value ""
        ("x in ()", "x in ()"),
        ("x notin ( )", "x notin ()"),
        ("x in (abc,)", "x in (,abc)"),
        ("x notin (, a)", "x notin (,a)"),
        ("x in (a,,)", "x in (,a)"),
        ("x in (a,,,,,,)", "x in (,a)"),
        ("x in (a,,a,,a,,a,,)", "x in (,a)"),
        ("x in (,)", "x in ()"),
        ("x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"),
        ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
        # prefixed keys
        ("example.com/name=v", "example.com/name=v"),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
        ),
    ],
)
def test_parse_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


def test_parsed_requirements() -> None:
    sel = parse_label_selector("b notin (y,x), a==1, !c, d, e>3, f<4, g!=, h in ()")
    assert sel.requirements == (
        LabelRequirement("a", "==", ("1",)),
        LabelRequirement("b", "notin", ("x", "y")),
        LabelRequirement("c", "!"),
        LabelRequirement("d", "exists"),
        LabelRequirement("e", "gt", ("3",)),
        LabelRequirement("f", "lt", ("4",)),
        LabelRequirement("g", "!=", ("",)),
        LabelRequirement("h", "in", ("",)),
    )


def test_deterministic_and_equal() -> None:
    s1 = parse_label_selector("x=a,a=x")
    s2 = parse_label_selector("a=x,x=a")
    assert s1 == s2
    assert hash(s1) == hash(s2)
    assert str(s1) == str(s2) == "a=x,x=a"
    assert s1 != parse_label_selector("a=x,x=b")
    # "=" and "==" are distinct spellings upstream and are kept.
    assert str(parse_label_selector("a==x")) == "a==x"
    assert parse_label_selector("a==x") != parse_label_selector("a=x")


def test_duplicate_keys_all_apply() -> None:
    sel = parse_label_selector("a!=1,a!=2,a")
    assert sel.matches({"a": "3"})
    assert not sel.matches({"a": "2"})
    assert not sel.matches({"a": "1"})
    assert not sel.matches({})


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "A1",
        "a.b-c_d",
        "x" * 63,
        "example.com/" + "x" * 63,
        "a-b.example/n",
        ("a" * 63 + ".") * 3 + "a" * 61 + "/n",  # 253-character prefix
    ],
)
def test_valid_keys(key: str) -> None:
    assert parse_label_selector(key).requirements == (LabelRequirement(key, "exists"),)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("-a", "name part must consist of alphanumeric characters"),
        ("a-", "name part must consist of alphanumeric characters"),
        (".a", "name part must consist of alphanumeric characters"),
        ("a$b", "name part must consist of alphanumeric characters"),
        ("x" * 64, "name part must be no more than 63 bytes"),
        ("/a", "prefix part must be non-empty"),
        ("a/", "name part must be non-empty"),
        ("Example.com/a", "prefix part a lowercase RFC 1123 subdomain"),
        ("ex_ample.com/a", "prefix part a lowercase RFC 1123 subdomain"),
        ("-example.com/a", "prefix part a lowercase RFC 1123 subdomain"),
        (("a" * 63 + ".") * 3 + "a" * 62 + "/n", "prefix part must be no more than 253 bytes"),
        ("a/b/c", "a valid label key must consist of"),
        ("é", "name part must consist of alphanumeric characters"),
    ],
)
def test_bad_keys(key: str, problem: str) -> None:
    for text in (key, f"!{key}", f"{key}=v", f"{key} in (v)"):
        with pytest.raises(SelectorError) as info:
            parse_label_selector(text)
        message = str(info.value)
        assert message.startswith("unable to parse requirement: ")
        assert problem in message
        assert f'"{key}"' in message  # names the offending key


def test_bad_key_message_matches_upstream() -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector("-a=b")
    assert str(info.value) == (
        'unable to parse requirement: <nil>: Invalid value: "-a": name part must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )


@pytest.mark.parametrize("value", ["", "a", "A-b_c.d", "x" * 63, "123"])
def test_valid_values(value: str) -> None:
    sel = parse_label_selector(f"k={value}")
    assert sel.requirements == (LabelRequirement("k", "=", (value,)),)
    assert sel.matches({"k": value})


@pytest.mark.parametrize(
    ("text", "bad_value", "problem"),
    [
        ("k=" + "x" * 64, "x" * 64, "must be no more than 63 bytes"),
        ("k!=-a", "-a", "a valid label must be an empty string"),
        ("k==a.", "a.", "a valid label must be an empty string"),
        ("k in (ok,b$d)", "b$d", "a valid label must be an empty string"),
        ("k notin (" + "y" * 64 + ")", "y" * 64, "must be no more than 63 bytes"),
        ("k=a||b", "a||b", "a valid label must be an empty string"),
        ("k>-1", "-1", "a valid label must be an empty string"),
    ],
)
def test_bad_values(text: str, bad_value: str, problem: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    message = str(info.value)
    assert message.startswith("unable to parse requirement: values[")
    assert f'[k]: Invalid value: "{bad_value}"' in message
    assert problem in message


def test_several_bad_values_are_all_reported() -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector("k in (-b,-a)")
    message = str(info.value)
    # Indexes refer to the sorted, de-duplicated value list, as upstream.
    assert 'values[0][k]: Invalid value: "-a"' in message
    assert 'values[1][k]: Invalid value: "-b"' in message
    assert message.startswith("unable to parse requirement: [")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("k>a", "a"),
        ("k<", ""),
        ("k>1.5", "1.5"),
        ("k<99999999999999999999", "99999999999999999999"),
    ],
)
def test_gt_lt_need_an_integer(text: str, value: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value) == (
        f'unable to parse requirement: values[0]: Invalid value: "{value}": '
        "for 'Gt', 'Lt' operators, the value must be an integer"
    )


def test_gt_lt_int64_bounds() -> None:
    top = str(2**63 - 1)
    assert parse_label_selector(f"k<{top}").matches({"k": "-5"})
    assert not parse_label_selector(f"k<{top}").matches({"k": str(2**63)})  # overflows: no match
    assert parse_label_selector("k>0").matches({"k": "+1"})  # Go's ParseInt accepts a sign
    assert not parse_label_selector("k>0").matches({"k": "1_0"})
    assert not parse_label_selector("k>0").matches({"k": " 1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unbalanced or missing parentheses
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (x,", "unable to parse requirement: found '', expected: ',', or identifier"),
        ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("a in x)", "unable to parse requirement: found 'x' expected: '('"),
        ("a in", "unable to parse requirement: found '' expected: '('"),
        ("a in (x))", "found ')', expected: ',' or 'end of string'"),
        ("a in ((x))", "unable to parse requirement: found '(', expected: ',', ')' or identifier"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (x,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        (")", "found ')', expected: !, identifier, or 'end of string'"),
        ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        # stray or doubled operators
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("!x in (a)", "found 'in', expected: ',' or 'end of string'"),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
        ("a=!b", "unable to parse requirement: found '!', expected: identifier"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("x nott in (y)", "found 'nott', expected: in, notin, =, ==, !=, gt, lt"),
        ("a<=1", "found '=', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
        # misplaced commas
        ("a,", "found '', expected: identifier after ','"),
        ("a in (xyz),", "found '', expected: identifier after ','"),
        ("x,,y", "found ',', expected: identifier after ','"),
        (",x", "found ',', expected: !, identifier, or 'end of string'"),
        (",", "found ',', expected: !, identifier, or 'end of string'"),
        ("a=b c=d", "found 'c', expected: ',' or 'end of string'"),
    ],
)
def test_malformed_label_selectors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_in_is_the_empty_value_as_upstream() -> None:
    # kube-apiserver accepts "in ()" / "notin ()" as a set holding only "" (it is not an error).
    sel = parse_label_selector("a in (),b notin ()")
    assert sel.requirements == (
        LabelRequirement("a", "in", ("",)),
        LabelRequirement("b", "notin", ("",)),
    )
    assert sel.matches({"a": "", "b": "x"})
    assert not sel.matches({"a": "", "b": ""})
    assert not sel.matches({"b": "x"})


# ---------------------------------------------------------------------------------------------
# LabelRequirement and LabelSelector construction
# ---------------------------------------------------------------------------------------------


def test_requirement_normalizes_values() -> None:
    req = LabelRequirement("k", "in", ("b", "a", "b"))
    assert req.values == ("a", "b")
    assert req == LabelRequirement("k", "in", ("a", "b"))
    assert str(req) == "k in (a,b)"
    assert req.matches({"k": "a"})
    assert not req.matches(None)


@pytest.mark.parametrize(
    ("key", "op", "values", "problem"),
    [
        ("k", "in", (), "values: Invalid value: []: for 'in', 'notin' operators, values set can't"),
        ("k", "notin", (), "values set can't be empty"),
        ("k", "=", (), "exact-match compatibility requires one single value"),
        ("k", "!=", ("a", "b"), 'values: Invalid value: ["a","b"]: exact-match compatibility'),
        ("k", "exists", ("a",), "values set must be empty for exists and does not exist"),
        ("k", "!", ("a",), "values set must be empty for exists and does not exist"),
        ("k", "gt", ("1", "2"), "for 'Gt', 'Lt' operators, exactly one value is required"),
        ("k", "lt", ("x",), "for 'Gt', 'Lt' operators, the value must be an integer"),
        ("k", "~", ("x",), 'operator: Unsupported value: "~": supported values: "in", "notin"'),
        ("-k", "exists", (), 'key: Invalid value: "-k": name part must consist'),
        ("k", "=", ("-v",), 'values[0][k]: Invalid value: "-v"'),
    ],
)
def test_requirement_validation(key: str, op: str, values: tuple[str, ...], problem: str) -> None:
    with pytest.raises(SelectorError) as info:
        LabelRequirement(key, op, values)  # type: ignore[arg-type]
    assert problem in str(info.value)


def test_selector_from_requirements() -> None:
    sel = LabelSelector([LabelRequirement("b", "!"), LabelRequirement("a", "=", ("1",))])
    assert str(sel) == "a=1,!b"
    assert sel == parse_label_selector("!b,a=1")
    assert LabelSelector().is_empty
    assert LabelSelector() == parse_label_selector("")


def test_selectors_are_immutable() -> None:
    sel = parse_label_selector("a=b")
    with pytest.raises(AttributeError):
        sel.requirements = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del sel.requirements
    req = sel.requirements[0]
    with pytest.raises(AttributeError):
        req.key = "x"  # type: ignore[misc]
    fsel = parse_field_selector("a=b")
    with pytest.raises(AttributeError):
        fsel.requirements = ()  # type: ignore[misc]
    assert str(sel) == "a=b" and str(fsel) == "a=b"


def test_shared_selector_across_threads() -> None:
    sel = parse_label_selector("app in (web,api),tier!=db,!canary")
    good = {"app": "web", "tier": "fe"}
    bad = {"app": "web", "canary": "1"}
    failures: list[str] = []

    def work() -> None:
        for _ in range(2000):
            if not sel.matches(good) or sel.matches(bad):
                failures.append("mismatch")
                return

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


# ---------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "fields", "expected"),
    [
        ("metadata.name=foo", {"metadata.name": "foo"}, True),
        ("metadata.name=foo", {"metadata.name": "bar"}, False),
        ("metadata.name==foo", {"metadata.name": "foo"}, True),
        ("metadata.name==foo", {"metadata.name": "bar"}, False),
        ("metadata.name!=foo", {"metadata.name": "bar"}, True),
        ("metadata.name!=foo", {"metadata.name": "foo"}, False),
        # a missing field compares as ""
        ("spec.nodeName=", {}, True),
        ("spec.nodeName!=", {}, False),
        ("spec.nodeName!=n1", {}, True),
        ("spec.nodeName=n1", {}, False),
        # conjunction
        ("a=1,b!=2", {"a": "1", "b": "3"}, True),
        ("a=1,b!=2", {"a": "1", "b": "2"}, False),
        ("", {"a": "1"}, True),
        # escaped values
        ("a=x\\,y", {"a": "x,y"}, True),
        ("a=x\\=y", {"a": "x=y"}, True),
        ("a=x\\\\y", {"a": "x\\y"}, True),
        ("a=x\\\\y", {"a": "x\\\\y"}, False),
        # nothing is trimmed
        ("a = 1", {"a": "1"}, False),
        ("a = 1", {"a ": " 1"}, True),
    ],
)
def test_field_selector_matching(selector: str, fields: Mapping[str, str], expected: bool) -> None:
    assert parse_field_selector(selector).matches(fields) is expected


def test_field_selector_requirements_and_fields() -> None:
    sel = parse_field_selector("status.phase!=Running,metadata.name==a\\,b,metadata.namespace=ns")
    assert sel.requirements == (
        FieldRequirement("metadata.name", "=", "a,b"),
        FieldRequirement("metadata.namespace", "=", "ns"),
        FieldRequirement("status.phase", "!=", "Running"),
    )
    assert sel.fields() == {"metadata.name", "metadata.namespace", "status.phase"}
    assert str(sel) == "metadata.name=a\\,b,metadata.namespace=ns,status.phase!=Running"
    assert not sel.is_empty
    assert sel == parse_field_selector(str(sel))


@pytest.mark.parametrize("text", ["", ",", ",,", "=", "==", "!=", ",=,"])
def test_empty_field_selectors(text: str) -> None:
    # Empty terms are skipped; a term with neither field nor value is dropped, as upstream.
    sel = parse_field_selector(text)
    assert sel.is_empty
    assert sel.requirements == ()
    assert sel.fields() == frozenset()
    assert str(sel) == ""
    assert sel.matches({})


def test_field_selector_empty_terms_and_operators() -> None:
    assert parse_field_selector(",a=1,,b=2,").requirements == (
        FieldRequirement("a", "=", "1"),
        FieldRequirement("b", "=", "2"),
    )
    # The first operator splits the term; "!=" is preferred where it starts first.
    assert parse_field_selector("a!=b").requirements == (FieldRequirement("a", "!=", "b"),)
    assert parse_field_selector("a!b=c").requirements == (FieldRequirement("a!b", "=", "c"),)
    assert parse_field_selector("a==").requirements == (FieldRequirement("a", "=", ""),)
    assert parse_field_selector("=x").requirements == (FieldRequirement("", "=", "x"),)
    # An escaped comma in the field name does not split terms; the name keeps the backslash.
    assert parse_field_selector("x\\,y=1").requirements == (FieldRequirement("x\\,y", "=", "1"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a!b", "can't understand 'a!b'"),
        ("a=b=c", "invalid field selector: unescaped character in value: '=' (in 'a=b=c')"),
        ("a!==b", "invalid field selector: unescaped character in value: '='"),
        ("a===b", "invalid field selector: unescaped character in value: '='"),
        ("a=b\\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\ (in 'a=b\\')"),
        ("a=\\n", "invalid field selector: invalid escape sequence: \\n"),
    ],
)
def test_malformed_field_selectors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    assert message in str(info.value)


def test_field_selector_constructor_checks_operator() -> None:
    with pytest.raises(SelectorError):
        FieldSelector([FieldRequirement("a", "==", "b")])  # type: ignore[arg-type]
    sel = FieldSelector([FieldRequirement("b", "=", "x"), FieldRequirement("a", "!=", "y")])
    assert str(sel) == "a!=y,b=x"


def test_object_fields() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}}, "spec": {}}
    assert object_fields(pod) == {"metadata.name": "p", "metadata.namespace": "ns"}
    node = {"metadata": {"name": "n1"}}
    assert object_fields(node) == {"metadata.name": "n1", "metadata.namespace": ""}
    assert object_fields({}) == {"metadata.name": "", "metadata.namespace": ""}
    assert object_fields({"metadata": None}) == {"metadata.name": "", "metadata.namespace": ""}
    sel = parse_field_selector("metadata.namespace=")
    assert sel.matches(object_fields(node))
    assert not sel.matches(object_fields(pod))


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_ALNUM = "abcXYZ019"
_name = (
    st.builds(
        lambda first, mid, last: first + mid + last,
        st.sampled_from(_ALNUM),
        st.text(alphabet=_ALNUM + "-_.", max_size=4),
        st.sampled_from(_ALNUM),
    )
    | st.sampled_from(_ALNUM)
    | st.sampled_from(["in", "notin"])
)
_prefix = st.lists(st.sampled_from(["a", "b-c", "x1", "example"]), min_size=1, max_size=3).map(
    ".".join
)
_key = _name | st.builds(lambda p, n: f"{p}/{n}", _prefix, _name)
_value = st.just("") | _name
_int_value = st.integers(min_value=0, max_value=2**63 - 1).map(str)
_ws = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n "])


@st.composite
def _requirement_text(draw: st.DrawFn) -> str:
    key = draw(_key)
    sp = [draw(_ws) for _ in range(4)]
    kind = draw(st.sampled_from(["exists", "!", "=", "==", "!=", "in", "notin", ">", "<"]))
    if kind == "exists":
        return f"{sp[0]}{key}{sp[1]}"
    if kind == "!":
        return f"{sp[0]}!{sp[1]}{key}{sp[2]}"
    if kind in ("=", "==", "!="):
        return f"{sp[0]}{key}{sp[1]}{kind}{sp[2]}{draw(_value)}{sp[3]}"
    if kind in (">", "<"):
        return f"{sp[0]}{key}{sp[1]}{kind}{sp[2]}{draw(_int_value)}{sp[3]}"
    values = draw(st.lists(_value, max_size=4))
    inner = f"{sp[3]},{sp[3]}".join(values)
    return f"{sp[0]}{key} {sp[1]}{kind}{sp[2]}({inner}){sp[3]}"


_selector_text = st.lists(_requirement_text(), max_size=5).map(",".join)
_labels = st.dictionaries(
    st.sampled_from(["a", "b", "in", "x1", "example/a", "a.b/c"]),
    st.sampled_from(["", "a", "b", "0", "7", "99", "in", "-3", "x"]),
    max_size=5,
)


_GO_INT = re.compile(r"[+-]?[0-9]+")


def _reference_match(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Straight transcription of apimachinery's Requirement.Matches, for comparison."""
    for r in selector.requirements:
        present = r.key in labels
        value = labels.get(r.key, "")
        if r.operator in ("=", "==", "in"):
            ok = present and value in r.values
        elif r.operator in ("!=", "notin"):
            ok = not present or value not in r.values
        elif r.operator == "exists":
            ok = present
        elif r.operator == "!":
            ok = not present
        else:  # gt, lt: the label value must parse as a Go int64
            n = int(value) if _GO_INT.fullmatch(value) else None
            if not present or n is None or not -(2**63) <= n < 2**63:
                ok = False
            else:
                bound = int(r.values[0])
                ok = n > bound if r.operator == "gt" else n < bound
        if not ok:
            return False
    return True


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=_selector_text, labels=_labels)
def test_label_selector_string_round_trip(text: str, labels: dict[str, str]) -> None:
    sel = parse_label_selector(text)
    again = parse_label_selector(str(sel))
    assert again == sel
    assert str(again) == str(sel)
    assert again.matches(labels) == sel.matches(labels) == _reference_match(sel, labels)


_token_soup = st.lists(
    st.sampled_from(
        [
            "a",
            "b",
            "in",
            "notin",
            "=",
            "==",
            "!=",
            "!",
            "(",
            ")",
            ",",
            ">",
            "<",
            " ",
            "1",
            "-",
            "k/v",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=500)
@given(text=_token_soup, labels=_labels)
def test_label_parser_total_on_arbitrary_input(text: str, labels: dict[str, str]) -> None:
    # Any input either parses (and then round-trips) or raises SelectorError, nothing else.
    try:
        sel = parse_label_selector(text)
    except SelectorError as exc:
        assert str(exc)
        return
    assert parse_label_selector(str(sel)) == sel
    assert sel.matches(labels) == _reference_match(sel, labels)


_field_name = st.text(alphabet="abc.!\\,", min_size=0, max_size=6)
_field_value = st.text(alphabet="ab,=\\! é", max_size=6)


@settings(max_examples=300)
@given(
    reqs=st.lists(st.tuples(_field_name, st.sampled_from(["=", "!="]), _field_value), max_size=4),
    fields=st.dictionaries(st.sampled_from(["a", "b", "a.b"]), _field_value, max_size=3),
)
def test_field_selector_string_round_trip(
    reqs: list[tuple[str, str, str]], fields: dict[str, str]
) -> None:
    escaped = [
        f"{f}{op}" + v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        for f, op, v in reqs
    ]
    text = ",".join(escaped)
    try:
        sel = parse_field_selector(text)
    except SelectorError:
        # Only field names that cannot be written unambiguously may fail (e.g. one ending in
        # "!", or one whose backslash escapes the comma separating terms).
        assert any(f.endswith("!") or "\\" in f or "," in f for f, _, _ in reqs)
        return
    again = parse_field_selector(str(sel))
    assert again == sel
    assert str(again) == str(sel)
    assert again.matches(fields) == sel.matches(fields)
    expected = all((fields.get(r.field, "") == r.value) == (r.op == "=") for r in sel.requirements)
    assert sel.matches(fields) == expected
    # Values survive escaping exactly when the field names are plain.
    if all(f and not set(f) & set("!\\,") for f, _, _ in reqs):
        assert sorted((f, op, v) for f, op, v in reqs) == sorted(sel.requirements)
