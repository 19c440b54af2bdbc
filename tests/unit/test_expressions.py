"""Tests for kargo.expressions: the expr-lang subset and Kargo's ${{ }} template rules."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kargo import expressions
from kargo.expressions import (
    Budget,
    ExpressionError,
    compile_expression,
    evaluate,
    evaluate_template,
    has_expression,
)
from kargo.expressions import budget as budget_module

ENV = {
    "a": True,
    "b": False,
    "c": True,
    "n": 42,
    "f": 1.5,
    "s": "hello",
    "nums": [1, 2, 3, 4],
    "m": {"x": 1, "y": {"z": "deep"}, "list": [10, 20]},
    "nothing": None,
    "users": [
        {"name": "ann", "age": 31, "admin": True},
        {"name": "bob", "age": 25, "admin": False},
        {"name": "cy", "age": 40, "admin": False},
    ],
}


def ev(source, **extra):
    return evaluate(source, {**ENV, **extra})


def error_of(source, env=None):
    with pytest.raises(ExpressionError) as info:
        evaluate(source, ENV if env is None else env)
    return str(info.value)


# --- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("42", 42),
        ("0", 0),
        ("1_000_000", 1_000_000),
        ("0x2A", 42),
        ("0o52", 42),
        ("0b101010", 42),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("2.5e-1", 0.25),
        ("'single'", "single"),
        ('"double"', "double"),
        (r'"tab\there\nnewline"', "tab\there\nnewline"),
        (r"'it\'s'", "it's"),
        (r'"quote \" inside"', 'quote " inside'),
        (r'"\u00e9\x41\101"', "éAA"),
        (r"`raw\n`", "raw\\n"),
        ("true", True),
        ("false", False),
        ("nil", None),
        ("[]", []),
        ("[1, 'two', nil, [3]]", [1, "two", None, [3]]),
        ("[1, 2,]", [1, 2]),
        ("{}", {}),
        ("{a: 1, 'b': 2, \"c\": 3, 4: 'four'}", {"a": 1, "b": 2, "c": 3, "4": "four"}),
        ("{a: {b: [1, {c: true}]},}", {"a": {"b": [1, {"c": True}]}}),
        ("{(1 + 1): 'two'}", {2: "two"}),
        ("1 /* comment */ + 2 // trailing comment", 3),
    ],
)
def test_literals(source, expected):
    assert evaluate(source, {}) == expected


def test_literal_types_are_preserved():
    assert type(evaluate("1", {})) is int
    assert type(evaluate("1.0", {})) is float
    assert evaluate("true", {}) is True


# --- identifiers and member access ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("n", 42),
        ("m.x", 1),
        ("m.y.z", "deep"),
        ("m['y']['z']", "deep"),
        ('m["y"].z', "deep"),
        ("m.list[0]", 10),
        ("m.list[-1]", 20),
        ("nums[1:3]", [2, 3]),
        ("nums[:2]", [1, 2]),
        ("nums[2:]", [3, 4]),
        ("nums[:]", [1, 2, 3, 4]),
        ("nums[1:-1]", [2, 3]),
        ("nums[-2:]", [3, 4]),
        ("s[1:3]", "el"),
        ("s[0]", "h"),
        ("s[-1]", "o"),
        ("m.missing", None),
        ("m['missing']", None),
        ("nothing?.field", None),
        ("nothing?.a.b.c", None),
        ("nothing?.[0]", None),
        ("m?.y?.z", "deep"),
        ("m.list?.[1]", 20),
        ("$env.n", 42),
        ("$env['s']", "hello"),
        ("'n' in $env", True),
        ("users[1].name", "bob"),
    ],
)
def test_member_access(source, expected):
    assert ev(source) == expected


def test_member_access_on_nil_names_the_member():
    message = error_of("m.missing.field")
    assert "'field'" in message
    assert "nil" in message
    assert "m.missing.field" in message


def test_index_out_of_range():
    assert "index out of range" in error_of("nums[10]")
    assert "index out of range" in error_of("nums[-5]")


def test_index_type_errors():
    assert "must be an int" in error_of("nums['a']")
    assert "cannot access member 'x' of array" in error_of("nums.x")
    assert "cannot slice" in error_of("n[1:2]")


def test_dataclass_fields_are_readable_but_private_ones_are_not():
    from dataclasses import dataclass

    @dataclass
    class Commit:
        tag: str
        _secret: str = "no"

    env = {"commit": Commit("v1")}
    assert evaluate("commit.tag", env) == "v1"
    assert "cannot access member" in error_of("commit._secret", env)
    assert "has no member" in error_of("commit.nope", env)


# --- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2", 3),
        ("5 - 7", -2),
        ("6 * 7", 42),
        ("1.5 * 2", 3.0),
        ("10 / 4", 2.5),
        ("10 / 5", 2.0),
        ("7 % 3", 1),
        ("-7 % 3", -1),  # Go: the sign follows the dividend
        ("2 ** 10", 1024.0),
        ("2 ^ 3", 8.0),
        ("2 ** -1", 0.5),
        ("-n", -42),
        ("+n", 42),
        ("--1", 1),
        ("'a' + 'b'", "ab"),
        ("s + ', world'", "hello, world"),
        ("[1] + [2, 3]", [1, 2, 3]),
        ("f + n", 43.5),
    ],
)
def test_arithmetic(source, expected):
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected)


def test_division_always_yields_float():
    assert isinstance(evaluate("4 / 2", {}), float)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("1 + 'a'", "invalid operation: int + string"),
        ("'a' - 'b'", "invalid operation: string - string"),
        ("'a' * 2", "invalid operation: string * int"),
        ("1 / 0", "division by zero"),
        ("1 % 0", "divide by zero"),
        ("1.5 % 2", "invalid operation: float % int"),
        ("-'a'", "invalid operation: -string"),
        ("nil + 1", "invalid operation: nil + int"),
    ],
)
def test_arithmetic_type_errors(source, fragment):
    assert fragment in error_of(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1", True),
        ("1 == 1.0", True),
        ("1 != 2", True),
        ("'a' == 'a'", True),
        ("'1' == 1", False),
        ("true == 1", False),
        ("nil == nil", True),
        ("nothing == nil", True),
        ("m.missing == nil", True),
        ("[1, 2] == [1, 2]", True),
        ("{a: 1} == {a: 1}", True),
        ("{a: 1} != {a: 2}", True),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2.5", True),
        ("2 >= 3", False),
        ("'abc' < 'abd'", True),
        ("1 < n < 100", True),  # chained like expr-lang: 1 < n && n < 100
        ("1 < n < 10", False),
    ],
)
def test_comparisons(source, expected):
    assert ev(source) is expected


def test_ordering_mismatched_types_is_an_error():
    assert "invalid operation: int < string" in error_of("1 < 'a'")
    assert "invalid operation: nil > int" in error_of("nothing > 1")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true && true", True),
        ("true && false", False),
        ("true and false", False),
        ("false || true", True),
        ("false or false", False),
        ("!true", False),
        ("not false", True),
        ("not not true", True),
        ("false && undefinedName", False),  # short-circuit: the right side is never evaluated
        ("true || undefinedName", True),
    ],
)
def test_logical(source, expected):
    assert ev(source) is expected


def test_logical_operators_require_bools():
    assert "&& expects a bool, got int" in error_of("1 && true")
    assert "|| expects a bool, got string" in error_of("false || 'x'")
    assert "! expects a bool, got nil" in error_of("!nothing")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("2 in nums", True),
        ("2.0 in nums", True),
        ("9 in nums", False),
        ("9 not in nums", True),
        ("'x' in m", True),
        ("'q' in m", False),
        ("'q' not in m", True),
        ("1 in nothing", False),
        ("s contains 'ell'", True),
        ("s not contains 'ell'", False),
        ("s startsWith 'he'", True),
        ("s not startsWith 'he'", False),
        ("s endsWith 'lo'", True),
        ("s not endsWith 'lo'", False),
        ("s matches '^h.*o$'", True),
        ("s matches 'ell'", True),  # unanchored, like Go's MatchString
        ("s not matches '^x'", True),
        ("'v1.2.3' matches '^v\\\\d+\\\\.\\\\d+\\\\.\\\\d+$'", True),
    ],
)
def test_membership_and_string_operators(source, expected):
    assert ev(source) is expected


def test_string_operator_errors():
    assert "use `contains`" in error_of("'e' in s")
    assert "invalid operation: array contains int" in error_of("nums contains 1")
    assert "invalid regular expression" in error_of("s matches '('")


def test_matches_uses_re2_so_catastrophic_backtracking_cannot_hang():
    # Python's re takes exponential time on this; RE2 answers in linear time.
    assert evaluate("text matches '^(a+)+$'", {"text": "a" * 28 + "!"}) is False
    assert evaluate("text matches '^(a+)+$'", {"text": "a" * 28}) is True


def test_a_pattern_re2_cannot_run_is_an_expression_error_naming_it():
    message = error_of("'aa' matches '(a)\\\\1'")
    assert "invalid regular expression" in message
    assert "'(a)\\\\1'" in message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'v1.2.3' matches '^v[0-9]+(\\\\.[0-9]+){2}$'", True),
        ("'v1.2' matches '^v[0-9]+(\\\\.[0-9]+){2}$'", False),
        ("'release-2024' matches '(?i)^RELEASE-'", True),
        ("'main' matches '^(main|master)$'", True),
        ("'feature/x' not matches '^(main|master)$'", True),
        ("'héllo' matches '^h.llo$'", True),
        ("'' matches '^$'", True),
    ],
)
def test_ordinary_patterns_still_match(source, expected):
    assert ev(source) is expected


def test_word_operators_are_whole_words():
    env = {"notes": 1, "index": 2, "order": 3, "x": "abc"}
    assert evaluate("notes + index + order", env) == 6
    assert "unexpected 'orb'" in error_of("x orb", env)
    # Operator words are still valid member names, as in expr-lang.
    assert evaluate("m.in", {"m": {"in": 1}}) == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true ? 1 : 2", 1),
        ("false ? 1 : 2", 2),
        ("n > 40 ? 'big' : 'small'", "big"),
        ("false ? 1 : true ? 2 : 3", 2),
        ("true ? false ? 1 : 2 : 3", 2),
        ("nothing ?? 'default'", "default"),
        ("m.missing ?? m.x", 1),
        ("nothing ?? nothing ?? 3", 3),
        ("n ?? 0", 42),
        ("undefinedName ?? 'fallback'", "fallback"),
        ("nothing?.a ?? 'x'", "x"),
        ("1..3", [1, 2, 3]),
        ("3..1", []),
        ("s | upper()", "HELLO"),
        ("s | upper() | split('L')", ["HE", "", "O"]),
        ("nums | filter(# > 2) | map(# * 10)", [30, 40]),
        ("'a,b' | split(',') | join('-')", "a-b"),
    ],
)
def test_conditional_range_and_pipe(source, expected):
    assert ev(source) == expected


def test_ternary_condition_must_be_bool():
    assert "expects a bool" in error_of("1 ? 2 : 3")


def test_range_is_bounded():
    assert "too large" in error_of("1..100000000")
    assert "invalid operation" in error_of("1..'a'")


# --- precedence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),  # left associative
        ("100 / 10 / 5", 2.0),
        ("2 * 3 % 4", 2),
        ("2 ** 3 ** 2", 512.0),  # right associative
        ("-2 ** 2", -4.0),  # ** binds tighter than unary minus
        ("2 * -3", -6),
        ("1 + 2 == 3", True),
        ("1 + 1..4", [2, 3, 4]),  # .. is looser than +
        ("!a && b || c", True),  # ((!a) && b) || c
        ("!(a && b) || c", True),
        ("a || b && false", True),  # && binds tighter than ||
        ("(a || b) && false", False),
        ("!a == b", True),  # (!a) == b, as in expr-lang
        ("not a in [false]", True),  # (not a) in [false]
        ("1 < 2 && 3 < 4", True),
        ("n > 40 ? 1 : 2 + 10", 1),  # ternary is loosest
        ("nothing ?? 1 + 1", 2),  # ?? binds tighter than +
        ("2 * nothing ?? 3", 6),
        ("m.list[0] + nums[1] * 2", 14),
        ("-m.x", -1),
        ("n > 40 | string()", "true"),  # the pipe takes everything to its left
        ("(s | len()) > 3", True),
    ],
)
def test_precedence(source, expected):
    assert ev(source) == expected


def test_operators_after_a_pipe_call_need_parentheses():
    # expr-lang would read `s | len() > 3` as `len(s) > 3`; this subset asks for parentheses.
    assert "syntax error" in error_of("s | len() > 3")
    assert ev("(s | len()) > 3 ? 'long' : 'short'") == "long"


# --- builtins ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len('héllo')", 5),
        ("len(nums)", 4),
        ("len(m)", 3),
        ("upper('abc')", "ABC"),
        ("lower('ABC')", "abc"),
        ("trim('  x  ')", "x"),
        ("trim('__x__', '_')", "x"),
        ("trimPrefix('v1.2.3', 'v')", "1.2.3"),
        ("trimSuffix('values.yaml', '.yaml')", "values"),
        ("split('a,b,c', ',')", ["a", "b", "c"]),
        ("split('a,b,c', ',', 2)", ["a", "b,c"]),
        ("join(['a', 'b', 'c'], ', ')", "a, b, c"),
        ("join(['a', 'b'])", "ab"),
        ("replace('a-b-c', '-', '.')", "a.b.c"),
        ("indexOf('apple pie', 'pie')", 6),
        ("indexOf('apple', 'z')", -1),
        ("lastIndexOf('abab', 'ab')", 2),
        ("hasPrefix('kargo', 'kar')", True),
        ("hasSuffix('kargo', 'go')", True),
        ("repeat('ab', 3)", "ababab"),
        ("int('42')", 42),
        ("int(3.9)", 3),
        ("int(-3.9)", -3),
        ("float('1.25')", 1.25),
        ("float(2)", 2.0),
        ("string(42)", "42"),
        ("string(1.5)", "1.5"),
        ("string(2.0)", "2"),
        ("string(1e6)", "1e+06"),
        ("string(true)", "true"),
        ("string(nil)", "<nil>"),
        ("string([1, 'a'])", "[1 a]"),
        ("string({b: 1, a: 2})", "map[a:2 b:1]"),
        ("toJSON({b: 1, a: [1, 2.0]})", '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'),
        ("toJSON('x')", '"x"'),
        ("fromJSON('{\"a\": [1, 2.5, null]}')", {"a": [1, 2.5, None]}),
        ("keys({a: 1, b: 2})", ["a", "b"]),
        ("values({a: 1, b: 2})", [1, 2]),
        ("first(nums)", 1),
        ("last(nums)", 4),
        ("first([])", None),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("max(1, 7, 3)", 7),
        ("min(4, 2.5)", 2.5),
        ("max(nums)", 4),
        ("sum(nums)", 10),
        ("sum([])", 0),
        ("mean(nums)", 2.5),
        ("median([3, 1, 2])", 2.0),
        ("ceil(1.2)", 2.0),
        ("floor(1.8)", 1.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("type(1)", "int"),
        ("type('x')", "string"),
        ("type(nums)", "array"),
        ("type(m)", "map"),
        ("type(nil)", "nil"),
        ("sort([3, 1, 2])", [1, 2, 3]),
        ("sort([3, 1, 2], 'desc')", [3, 2, 1]),
        ("reverse([1, 2, 3])", [3, 2, 1]),
        ("take(nums, 2)", [1, 2]),
        ("uniq([1, 2, 1, 3])", [1, 2, 3]),
        ("flatten([1, [2, [3]]])", [1, 2, 3]),
        ("concat([1], [2, 3])", [1, 2, 3]),
        ("toPairs({a: 1})", [["a", 1]]),
        ("fromPairs([['a', 1]])", {"a": 1}),
        ("get(nums, 10)", None),
        ("get(m, 'x')", 1),
        ("toBase64('kargo')", "a2FyZ28="),
        ("fromBase64('a2FyZ28=')", "kargo"),
    ],
)
def test_builtins(source, expected):
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("len(1)", "len() expects a string, array or map, got int"),
        ("upper(1)", "upper() expects a string, got int"),
        ("int('x')", "int(): invalid syntax"),
        ("fromJSON('{')", "fromJSON(): invalid JSON"),
        ("join([1, 2], ',')", "join() expects a string, got int"),
        ("max()", "max() needs at least one number"),
        ("keys(nums)", "keys() expects a map, got array"),
        ("upper('a', 'b')", "wrong number of arguments for upper(): got 2"),
        ("now(1)", "wrong number of arguments for now(): got 1"),
    ],
)
def test_builtin_errors(source, fragment):
    assert fragment in error_of(source)


# --- predicates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("filter(nums, # > 2)", [3, 4]),
        ("filter(nums, {# % 2 == 0})", [2, 4]),
        ("map(nums, # * 2)", [2, 4, 6, 8]),
        ("map(users, .name)", ["ann", "bob", "cy"]),
        ("map(users, #.name)", ["ann", "bob", "cy"]),
        ("filter(users, .age > 30) | map(.name)", ["ann", "cy"]),
        ("all(nums, # > 0)", True),
        ("all([], # > 0)", True),
        ("any(nums, # > 3)", True),
        ("any([], # > 3)", False),
        ("none(nums, # > 4)", True),
        ("one(users, .admin)", True),
        ("one(nums, # > 2)", False),
        ("count(users, not .admin)", 2),
        ("count([true, false, true])", 2),
        ("sum(users, .age)", 96),
        ("find(users, .age < 30).name", "bob"),
        ("find(nums, # > 10)", None),
        ("findIndex(nums, # == 3)", 2),
        ("findLast(nums, # < 3)", 2),
        ("findLastIndex(nums, # > 10)", -1),
        ("map(nums, #index)", [0, 1, 2, 3]),
        ("reduce(nums, #acc + #)", 10),
        ("reduce(nums, #acc + #, 100)", 110),
        ("groupBy(users, .admin)[false] | map(.name)", ["bob", "cy"]),
        ("sortBy(users, .age) | map(.name)", ["bob", "ann", "cy"]),
        ("sortBy(users, .age, 'desc')[0].name", "cy"),
        ("filter([[1, 2], [3]], any(#, # > 2))", [[3]]),  # nested predicates: inner # shadows
        ("map(1..3, # * n)", [42, 84, 126]),  # env names stay visible inside predicates
    ],
)
def test_predicates(source, expected):
    assert ev(source) == expected


def test_predicate_errors():
    assert "can only be used inside a predicate" in error_of("# + 1")
    assert "can only be used inside a predicate" in error_of(".name")
    assert "filter() predicate expects a bool" in error_of("filter(nums, #)")
    assert "filter() expects a predicate" in error_of("filter(nums)")
    assert "filter() expects an array, got int" in error_of("filter(1, # > 0)")
    assert "unknown pointer '#acc'" in error_of("map(nums, #acc)")


# --- dates and durations ----------------------------------------------------------------------


def test_dates():
    assert ev("date('2024-03-01')") == datetime(2024, 3, 1, tzinfo=UTC)
    assert ev("date('2024-03-01T10:20:30Z')") == datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert ev("date('2024-03-01T10:00:00+02:00')").utcoffset() == timedelta(hours=2)
    assert ev("date('2024-03-01 10:20:30')").hour == 10
    assert ev("date('01/02/2024', '01/02/2006')") == datetime(2024, 1, 2, tzinfo=UTC)
    zurich = ev("date('2023-08-14 00:00:00', '2006-01-02 15:04:05', 'Europe/Zurich')")
    assert zurich.utcoffset() == timedelta(hours=2)
    assert ev("date('2024-03-01').Year()") == 2024
    assert ev("date('2024-03-01').Month()") == 3
    assert ev("date('2024-03-01T00:00:00Z').Unix()") == 1709251200
    assert ev("date('2024-03-01').Format('2006/01/02')") == "2024/03/01"
    assert ev("date('2024-01-01') < date('2024-06-01')") is True
    assert ev("now() > date('2020-01-01')") is True
    assert ev("now().Year()") >= 2024
    assert "cannot parse date" in error_of("date('not a date')")
    assert "unknown time zone" in error_of("date('2024-01-01', '2006-01-02', 'Nowhere/City')")


def test_naive_datetimes_from_the_env_are_taken_as_utc():
    env = {"commitDate": datetime(2024, 5, 1, 12, 0)}
    assert evaluate("commitDate > date('2024-01-01')", env) is True
    assert evaluate("commitDate.Year() == 2024", env) is True


def test_durations():
    assert ev("duration('1h30m')") == timedelta(hours=1, minutes=30)
    assert ev("duration('250ms')") == timedelta(milliseconds=250)
    assert ev("duration('-1.5s')") == timedelta(seconds=-1.5)
    assert ev("duration('1h').Seconds()") == 3600.0
    assert ev("duration('90m').Hours()") == 1.5
    assert ev("string(duration('1h30m'))") == "1h30m0s"
    assert ev("string(duration('1.5s'))") == "1.5s"
    assert ev("date('2024-01-01') + duration('24h') == date('2024-01-02')") is True
    assert ev("date('2024-01-02') - date('2024-01-01') == duration('24h')") is True
    assert ev("now() - duration('1h') < now()") is True
    assert ev("duration('1m') * 2 == duration('2m')") is True
    assert "invalid duration" in error_of("duration('5 minutes')")


# --- callables from the env -------------------------------------------------------------------


def test_env_callables_are_called_with_evaluated_arguments():
    calls = []

    def commit_from(repo, origin=None):
        calls.append((repo, origin))
        return {"Tag": "v1.2.3", "ID": "abc123"}

    env = {"vars": {"repo": "https://git.example.com/app"}, "commitFrom": commit_from}
    assert evaluate("commitFrom(vars.repo).Tag", env) == "v1.2.3"
    assert evaluate("commitFrom(vars.repo, {Name: 'w'}).ID", env) == "abc123"
    assert calls == [
        ("https://git.example.com/app", None),
        ("https://git.example.com/app", {"Name": "w"}),
    ]


def test_zero_argument_callables_and_methods_in_maps():
    env = {"success": lambda: True, "helpers": {"double": lambda v: v * 2}}
    assert evaluate("success()", env) is True
    assert evaluate("helpers.double(21)", env) == 42
    assert evaluate("helpers['double'](4)", env) == 8


def test_env_callables_override_builtins():
    env = {"upper": lambda value: f"custom:{value}", "filter": lambda *args: "mine"}
    assert evaluate("upper('x')", env) == "custom:x"
    assert evaluate("filter([1], 1)", env) == "mine"


def test_a_callable_that_returns_nil_then_member_access_fails_clearly():
    env = {"commitFrom": lambda repo: None}
    message = error_of("commitFrom('r').Tag", env)
    assert "'Tag'" in message and "nil" in message
    assert evaluate("commitFrom('r')?.Tag ?? 'none'", env) == "none"


def test_calling_a_non_function_is_an_error():
    assert "'n' is not a function (it is int)" in error_of("n(1)")
    assert "is not a function" in error_of("m.x()")
    assert "unknown function 'nope'" in error_of("nope(1)")


def test_exceptions_from_callables_become_expression_errors():
    def broken():
        raise RuntimeError("boom")

    message = error_of("broken()", {"broken": broken})
    assert "error calling broken(): boom" in message


# --- errors -----------------------------------------------------------------------------------


def test_expression_error_is_a_value_error():
    assert issubclass(ExpressionError, ValueError)


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("1 +", 4),
        ("(1 + 2", 7),
        ("1 2", 3),
        ("a.b.", 5),
        ("x @ y", 3),
        ("foo(1,, 2)", 7),
    ],
)
def test_syntax_errors_report_the_column(source, column):
    message = error_of(source)
    assert message.startswith("syntax error")
    assert f"column {column}" in message
    assert source in message


def test_syntax_error_on_a_later_line_reports_the_line():
    message = error_of("1 +\n 2 +\n )")
    assert "line 3, column 2" in message


def test_unterminated_string_is_called_out():
    assert "unterminated string" in error_of("'abc")


def test_invalid_escape_sequence():
    assert "invalid escape sequence \\q" in error_of(r"'\q'")


def test_invalid_number_literal():
    assert "invalid number literal '0x_'" in error_of("0x_ + 1")


def test_empty_expression():
    assert "empty expression" in error_of("   ")


def test_unknown_name_says_which_name():
    message = error_of("n + missingThing")
    assert "unknown name 'missingThing'" in message
    assert "column 5" in message
    assert "n + missingThing" in message


def test_error_position_points_at_the_failing_member():
    message = error_of("m.y.z.q.r")
    assert "cannot access member 'q' of string" in message


def test_non_string_source_is_rejected():
    with pytest.raises(ExpressionError):
        compile_expression(42)


def test_deeply_nested_input_is_an_expression_error():
    with pytest.raises(ExpressionError, match="nested too deeply"):
        evaluate("-" * 5000 + "1", {})


def test_a_bare_closure_is_not_an_expression():
    assert "map literal" in error_of("{n}")


# --- safety: no Python eval ---------------------------------------------------------------------


def test_package_never_calls_python_eval_or_exec():
    modules = sorted(Path(expressions.__file__).parent.glob("*.py"))
    assert len(modules) > 1  # the whole package, not just its __init__
    for module in modules:
        source = module.read_text()
        assert not re.search(r"(?<![\w.])(eval|exec|compile)\s*\(", source), module.name
        assert "literal_eval" not in source, module.name
        assert "__import__" not in source, module.name


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "s.__class__",
        "s.__class__.__mro__",
        "().__class__",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('1')",
        "globals()",
        "'{0.__class__}'.format(s)",
    ],
)
def test_python_escape_hatches_are_expression_errors(source):
    with pytest.raises(ExpressionError):
        ev(source)


def test_map_member_access_is_key_lookup_only():
    assert ev("m.__class__") is None
    assert ev("m['__class__']") is None
    assert ev("m.keys") is None


# --- caching ----------------------------------------------------------------------------------


def test_compile_expression_is_cached():
    source = "n + 1 + 2 + 3"
    first = compile_expression(source)
    assert compile_expression(source) is first
    assert first.evaluate({"n": 1}) == 7
    before = compile_expression.cache_info().hits
    evaluate(source, {"n": 2})
    assert compile_expression.cache_info().hits == before + 1


# --- templates --------------------------------------------------------------------------------

TEMPLATE_ENV = {
    "ctx": {"project": "demo", "stage": "prod", "promotion": "prod.01abc"},
    "vars": {"imageRepo": "ghcr.io/acme/app", "repoURL": "https://github.com/acme/app"},
    "outputs": {"update-image": {"commitMessage": "Updated image to v1.2.3"}},
    "commitFrom": lambda repo: {"Tag": "v1.2.3", "ID": "abc123", "RepoURL": repo},
    "n": 42,
    "f": 1.5,
    "t": True,
    "nothing": None,
    "obj": {"b": 1, "a": [1, 2]},
    "s": "hello",
    "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
}


def tmpl(value):
    return evaluate_template(value, TEMPLATE_ENV)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ ctx.stage }}", "prod"),
        ("stage/${{ ctx.stage }}", "stage/prod"),
        ("${{ outputs['update-image'].commitMessage }}", "Updated image to v1.2.3"),
        ('${{ outputs["update-image"].commitMessage }}', "Updated image to v1.2.3"),
        ("${{ vars.imageRepo }}", "ghcr.io/acme/app"),
        ("${{ commitFrom(vars.repoURL).Tag }}", "v1.2.3"),
        ("${{ vars.imageRepo }}:${{ commitFrom(vars.repoURL).Tag }}", "ghcr.io/acme/app:v1.2.3"),
        ("${{ ctx.project }}-${{ ctx.stage }}", "demo-prod"),
    ],
)
def test_kargo_idioms(template, expected):
    assert tmpl(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # A lone expression keeps its type.
        ("${{ n }}", 42),
        ("${{ f }}", 1.5),
        ("${{ t }}", True),
        ("${{ nothing }}", None),
        ("${{ obj }}", {"b": 1, "a": [1, 2]}),
        ("${{ [1, 'a'] }}", [1, "a"]),
        ("  ${{ n }}  ", 42),  # surrounding whitespace is allowed
        ("${{n}}", 42),
        ("${{ 2 ** 3 }}", 8.0),
        # A lone string result is coerced when it is JSON.
        ("${{ 'plain text' }}", "plain text"),
        ("${{ '42' }}", 42),
        ("${{ '4.5' }}", 4.5),
        ("${{ 'true' }}", True),
        ("${{ 'false' }}", False),
        ("${{ 'null' }}", None),
        ("${{ '[1, 2]' }}", [1, 2]),
        ("${{ '{\"a\": 1}' }}", {"a": 1}),
        ("${{ 'NaN' }}", "NaN"),  # not JSON
        ("${{ '1e400' }}", "1e400"),  # would overflow to inf: left alone
        # quote() keeps a value a string.
        ("${{ quote(1.2) }}", "1.2"),
        ("${{ quote(42) }}", "42"),
        ("${{ quote(true) }}", "true"),
        ("${{ quote(nil) }}", "null"),
        ("${{ quote('foo') }}", "foo"),
        ("${{ quote({'foo': 'bar'}) }}", '{"foo":"bar"}'),
        ("${{ quote(n) }}", "42"),
        ("${{ unsafeQuote('foo') }}", '"foo"'),
        ("${{ unsafeQuote(42) }}", "42"),
        ("${{ asJSON({'b': 1, 'a': 2}) }}", '{\n  "a": 2,\n  "b": 1\n}\n'),
        ("${{ asYAML({'b': 1, 'a': [1, 2]}) }}", "a:\n  - 1\n  - 2\nb: 1\n"),
        # Text mixed with expressions is stringified, then coerced.
        ("${{ s }}, ${{ n }}!", "hello, 42!"),
        ("n=${{ n }} f=${{ f }} t=${{ t }}", "n=42 f=1.5 t=true"),
        ("x${{ nothing }}y", "xy"),
        ("[${{ nothing }}]", []),  # the text "[]" is JSON
        ("obj=${{ obj }}", 'obj={"a":[1,2],"b":1}'),
        ("v${{ 2 ** 3 }}", "v8"),
        ("at ${{ when }}", "at 2024-01-02T03:04:05Z"),
        ("${{ n }}${{ n }}", 4242),  # text "4242" is JSON
        ("${{ 'a' }}${{ 'b' }}", "ab"),
        ("[${{ n }}, ${{ n }}]", [42, 42]),  # text that is a JSON array
        ("${{ t }}-${{ t }}", "true-true"),
        # Strings without expressions are never coerced.
        ("42", "42"),
        ("true", "true"),
        ("{{ not an expression }}", "{{ not an expression }}"),
        ("$ {{ n }}", "$ {{ n }}"),
        ("", ""),
        # ${% %} lets the expression contain }}.
        ("${% '{{.domain}}' %}", "{{.domain}}"),
        ("foo ${{ s }} and ${% 'bar' %}", "foo hello and bar"),
        ("${% ctx.stage %}", "prod"),
        # YAML block scalars (|) end with a newline; Kargo keeps it for strings only.
        ("${{ n }}\n", 42),
        ("${{ quote(42) }}\n", "42\n"),
        ("${{ s }}\n", "hello\n"),
    ],
)
def test_template_strings(template, expected):
    result = tmpl(template)
    assert result == expected
    assert type(result) is type(expected)


def test_nested_templates_evaluate_values_not_keys():
    config = {
        "repoURL": "${{ vars.repoURL }}",
        "${{ ctx.stage }}": "key stays as written",
        "images": [
            {"image": "${{ vars.imageRepo }}", "tag": "${{ commitFrom(vars.repoURL).Tag }}"},
            "${{ n }}",
            7,
            None,
            True,
        ],
        "path": "stages/${{ ctx.stage }}/values.yaml",
        "count": "${{ n }}",
        "untouched": 3.5,
        "nested": {"deeper": ["${{ quote(n) }}"]},
    }
    assert tmpl(config) == {
        "repoURL": "https://github.com/acme/app",
        "${{ ctx.stage }}": "key stays as written",
        "images": [
            {"image": "ghcr.io/acme/app", "tag": "v1.2.3"},
            42,
            7,
            None,
            True,
        ],
        "path": "stages/prod/values.yaml",
        "count": 42,
        "untouched": 3.5,
        "nested": {"deeper": ["42"]},
    }


def test_templates_do_not_mutate_their_input():
    config = {"a": ["${{ n }}"]}
    tmpl(config)
    assert config == {"a": ["${{ n }}"]}


def test_non_string_scalars_pass_through_templates():
    for value in (None, 1, 2.5, True, datetime(2024, 1, 1)):
        assert tmpl(value) == value


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("${{ ctx.stage ", "unclosed expression: expected '}}'"),
        ("${% ctx.stage }}", "unclosed expression: expected '%}'"),
        ("${{ '{{.domain}}' }}", "unterminated string"),  # the first }} ends the expression
        ("${{ missing }}", "unknown name 'missing'"),
        ("stage/${{ ctx.nope.name }}", "cannot access member 'name' of nil"),
        ("${{ 1 + }}", "syntax error"),
        ("${{ }}", "empty expression"),
    ],
)
def test_template_errors(template, fragment):
    with pytest.raises(ExpressionError) as info:
        tmpl(template)
    assert fragment in str(info.value)


def test_template_error_in_a_nested_value_raises():
    with pytest.raises(ExpressionError, match="unknown name 'oops'"):
        tmpl({"steps": [{"config": {"x": "${{ oops }}"}}]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${{ x }}", True),
        ("a ${% x %} b", True),
        ("no expression", False),
        ("{{ x }}", False),
        ({"k": "${{ x }}"}, True),
        ({"${{ x }}": "plain"}, False),  # keys are never templates
        ([1, ["deep ${{ x }}"]], True),
        ([1, 2, {"a": None}], False),
        (42, False),
        (None, False),
    ],
)
def test_has_expression(value, expected):
    assert has_expression(value) is expected


# --- Argo Rollouts analysis conditions --------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        ("result == 'ok'", "ok", True),
        ("result == 'ok'", "failed", False),
        ("result[0] >= 0.95", [0.97], True),
        ("result[0] >= 0.95", [0.5], False),
        ("len(result) > 0 && result.status == 200", {"status": 200}, True),
        ("len(result) > 0 && result.status == 200", {"status": 500}, False),
        ("len(result) > 0 && result.status == 200", {}, False),
        ("result > 0.9 || result < 0", 0.95, True),
        ("all(result, # < 100)", [10, 20], True),
        ("result.code in [200, 201]", {"code": 201}, True),
        ("asFloat(result) >= 0.9", "0.93", True),
    ],
)
def test_rollouts_conditions(condition, result, expected):
    env = {"result": result, "asFloat": float}
    assert evaluate(condition, env) is expected


def test_warehouse_expression_filter():
    env = {"tag": "v1.4.0", "subject": "feat: add thing", "author": "Ann <ann@example.com>"}
    assert evaluate("tag matches '^v1\\\\.' && !(subject contains '[skip]')", env) is True
    assert evaluate("author endsWith '@example.com>'", env) is True


# --- budgets: no expression holds the server --------------------------------------------------

STEPS_EXCEEDED = "expression exceeded its budget of 1,000,000 steps"


@pytest.mark.parametrize(
    "source",
    [
        "map(1..1000, map(1..1000, #))",  # a million elements built one visit at a time
        "reduce(1..200000, #acc + #index * 2, 0)",  # a long reduce
        "map(1..100, repeat('x', 1000000))",  # each string within MAX_STRING, together 100 MB
        "reduce(1..40, #acc + #acc, [1])",  # a list that doubles
        "reduce(1..100, #acc * #acc, 3)",  # an int that squares (Python's never overflow)
        "len(replace(repeat('ab', 100000), '', repeat('ab', 100000)))",  # 40 GB, refused unbuilt
        "uniq(1..5000)",  # quadratic
    ],
)
def test_runaway_expressions_stop_at_the_step_budget(source):
    message = error_of(source, {})
    assert STEPS_EXCEEDED in message
    assert source[:30] in message


@pytest.mark.parametrize(
    "source",
    [
        # Each step doubles a list by sharing it ([x, x]): 40 steps make 2^40 elements to walk.
        "reduce(1..40, [#acc, #acc], 1)",
        "toJSON(reduce(1..40, [#acc, #acc], 1))",
        "reduce(1..40, [#acc, #acc], 1) == reduce(1..40, [#acc, #acc], 1)",
        "${{ reduce(1..40, [#acc, #acc], 1) }}",  # as a template, returned as it is
        "x ${{ reduce(1..40, [#acc, #acc], 1) }}",  # as a template, written out as JSON
    ],
)
def test_self_sharing_values_are_refused_not_walked(source):
    # A smaller budget than the default keeps the test fast; without one, these never end.
    with pytest.raises(ExpressionError, match="exceeded its budget of 10,000 steps"):
        if "${{" in source:
            evaluate_template({"value": source}, {}, Budget(max_steps=10_000))
        else:
            evaluate(source, {}, Budget(max_steps=10_000))


def test_error_messages_quote_only_the_start_of_a_huge_value():
    message = error_of("reduce(1..40, [#acc, #acc], 1) + 1", {})
    assert "invalid operation: array + int ([[[[" in message


def test_a_template_shares_one_budget_between_its_expressions():
    config = {f"k{i}": "${{ len(map(1..99999, #)) }}" for i in range(20)}
    with pytest.raises(ExpressionError, match=STEPS_EXCEEDED):
        evaluate_template(config, {})


def test_the_budget_can_be_set_per_evaluation():
    assert evaluate("sum(1..100)", {}, Budget(max_steps=1000)) == 5050
    with pytest.raises(ExpressionError, match="budget of 50 steps"):
        evaluate("sum(1..100)", {}, Budget(max_steps=50))


def test_an_evaluation_past_its_deadline_stops(monkeypatch):
    clock = iter(range(0, 10**9, 10))  # ten seconds pass at every look at the clock
    monkeypatch.setattr(budget_module.time, "monotonic", lambda: next(clock))
    with pytest.raises(ExpressionError, match="exceeded its budget of 2 seconds"):
        evaluate("map(1..5000, # * 2)", {})


def test_ordinary_work_fits_the_budget_easily():
    assert evaluate("len(map(1..100000, # * 2))", {}) == 100000
    assert evaluate("len(repeat('ab', 5000000))", {}) == 10_000_000  # MAX_STRING itself
    assert evaluate("sum(map(filter(1..1000, # % 2 == 0), # * #))", {}) == 167167000


def test_sizes_keep_their_own_caps():
    assert "too large" in error_of("1..100000000", {})
    assert "string too long" in error_of("reduce(1..40, #acc + #acc, 'xy')", {})


def test_an_oversized_source_is_refused_before_parsing():
    message = error_of("1 + " * 20_000 + "1", {})
    assert "expression is longer than 65,536 characters" in message
