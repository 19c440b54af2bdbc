"""Budgets on user input: YAML manifests (kargo.yamlio) and JSON bodies (kargo.jsonio) are
refused with an error naming the limit they exceed, never expanded, recursed into or parsed
for minutes."""

import pytest

from kargo import jsonio
from kargo.yamlio import YAMLLimitError, YAMLSyntaxError, load, load_all

# The YAML "billion laughs": nine levels of nine aliases, 342 bytes that expand to 9^9 strings.
BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


# --- YAML ---------------------------------------------------------------------------------------


def test_a_billion_laughs_is_refused_before_it_is_expanded():
    with pytest.raises(YAMLLimitError, match="aliases expand to more than 100,000 nodes") as caught:
        load_all(BILLION_LAUGHS)
    assert caught.value.line is not None


def test_aliases_within_the_budget_still_work():
    text = "base: &base {replicas: 2, image: nginx}\nprod:\n  <<: *base\n  replicas: 5\nlist: [*base]\n"
    assert load(text) == {
        "base": {"replicas": 2, "image": "nginx"},
        "prod": {"replicas": 5, "image": "nginx"},
        "list": [{"replicas": 2, "image": "nginx"}],
    }
    with pytest.raises(YAMLLimitError, match="more than 3 nodes"):
        load(text, max_alias_nodes=3)


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(YAMLLimitError, match=r"alias \*a refers to a value that contains it"):
        load("&a [1, *a]")


def test_text_over_the_size_limit_is_refused_unread():
    with pytest.raises(YAMLLimitError, match="over the limit of 2,097,152 bytes"):
        load("a: " + "x" * (2 * 1024 * 1024))
    with pytest.raises(YAMLLimitError, match="the text is 14 bytes, over the limit of 10 bytes"):
        load("a: ééééé\n", max_bytes=10)  # bytes of UTF-8, not characters
    assert load("a: éé", max_bytes=10) == {"a": "éé"}


def test_documents_over_the_count_limit_are_refused():
    assert len(load_all("---\na: 1\n" * 1000)) == 1000
    with pytest.raises(YAMLLimitError, match="more than 1000 documents") as caught:
        load_all("---\na: 1\n" * 1001)
    assert caught.value.line == 2001


def test_nesting_deeper_than_the_limit_is_refused_with_its_line():
    assert load("[" * 100 + "]" * 100) is not None
    with pytest.raises(YAMLLimitError, match="nest deeper than 100 levels") as caught:
        load("a: 1\nb: " + "[" * 101 + "]" * 101)
    assert (caught.value.line, caught.value.column) == (2, 103)
    with pytest.raises(YAMLLimitError, match="nest deeper than 3 levels"):
        load("a:\n  b:\n    c:\n      d: 1\n", max_depth=3)


def test_deep_nesting_far_past_the_limit_is_the_same_clear_error():
    # Before the limit, this was a RecursionError (a 500) in the JSON conversion.
    with pytest.raises(YAMLLimitError, match="nest deeper than 100 levels"):
        load("[" * 50_000 + "]" * 50_000)


def test_a_key_set_twice_in_one_mapping_is_refused_as_the_api_server_does():
    with pytest.raises(
        YAMLSyntaxError, match=r'key "name" already set in map \(first on line 2\)'
    ) as caught:
        load("metadata:\n  name: a\n  labels: {}\n  name: b\n")
    assert caught.value.line == 4
    with pytest.raises(YAMLSyntaxError, match='key "1" already set'):
        load("1: a\n'1': b\n")  # one key once converted to JSON
    # The same key in two mappings, and a merged key overridden, are not duplicates.
    assert load("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


def test_limits_leave_the_existing_reading_rules_alone():
    assert load("since: 2024-07-15T22:13:57Z\n") == {"since": "2024-07-15T22:13:57Z"}
    with pytest.raises(YAMLSyntaxError, match="quote the value"):
        load("expressionFilter: !(author contains 'bot')\n")


def test_limit_errors_are_syntax_errors_to_their_callers():
    # kargo_ui.manifests catches YAMLSyntaxError and shows `invalid YAML: <problem>`.
    assert issubclass(YAMLLimitError, YAMLSyntaxError)


# --- JSON ---------------------------------------------------------------------------------------


def test_json_within_its_budget_reads_as_json():
    assert jsonio.loads(b'{"freight": "abc", "n": [1, 2.5, null, true]}') == {
        "freight": "abc",
        "n": [1, 2.5, None, True],
    }
    assert jsonio.loads('{"é": "ü"}'.encode("utf-16")) == {"é": "ü"}
    assert jsonio.loads("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize(
    "body, message",
    [
        (b"[" * 10_000, "nests deeper than 64 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than 64 levels"),
        (b"[" * 65 + b"]" * 65, "nests deeper than 64 levels"),
        (b'{"a": ' * 65 + b"1" + b"}" * 65, "nests deeper than 64 levels"),
        (b" " * (1024 * 1024 + 1), "over the limit of 1,048,576 bytes"),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b'{"a": 1', "invalid JSON: Expecting ',' delimiter at line 1, column 8"),
        (b"", "invalid JSON: Expecting value"),
        (b"\xff\xfe\x00", "must be UTF-8"),
        (b"1" * 5000, "invalid JSON"),
        (b'"\\udc80"', "lone UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "lone UTF-16 surrogate"),
    ],
)
def test_json_outside_its_budget_is_a_clear_value_error(body, message):
    with pytest.raises(jsonio.JSONInputError, match=message.replace("(", r"\(")):
        jsonio.loads(body)


def test_json_limits_are_parameters():
    with pytest.raises(ValueError, match="nests deeper than 2 levels"):
        jsonio.loads("[[[1]]]", max_depth=2)
    with pytest.raises(ValueError, match="over the limit of 4 bytes"):
        jsonio.loads('"éé"', max_bytes=4)  # 6 bytes of UTF-8
