"""An evaluator for the subset of expr-lang (github.com/expr-lang/expr) that Kargo uses.

Kargo puts expr-lang expressions inside ``${{ ... }}`` (or ``${% ... %}`` when the expression
itself contains ``}}``) in promotion step configs, ``if`` conditions and vars, and uses plain
expressions (no delimiters) in warehouse filters and Argo Rollouts success/failure conditions.

Expressions are parsed with a real LALR grammar (lark) into a tree that is walked by a small
interpreter; user input is never handed to Python's own evaluator. Parsed trees are cached by
source text, so evaluating the same expression over and over only pays for the walk.

Public API: ``ExpressionError``, ``evaluate``, ``evaluate_template``, ``has_expression`` and
``compile_expression``.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import math
import re
import statistics
import types
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

__all__ = [
    "Expression",
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "evaluate_template",
    "has_expression",
]


class ExpressionError(ValueError):
    """An expression could not be parsed or evaluated. ``str()`` says what and where."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        # Position and source are filled in on the way up: the node that failed knows its
        # column, the compiled expression knows its source text.
        self.source = source
        self.line = line
        self.column = column

    def __str__(self) -> str:
        text = self.message
        if self.column is not None:
            if self.line and self.line > 1:
                text += f" at line {self.line}, column {self.column}"
            else:
                text += f" at column {self.column}"
        if self.source is not None:
            text += f" in `{_snippet(self.source, self.line, self.column)}`"
        return text


def _snippet(source: str, line: int | None, column: int | None, width: int = 80) -> str:
    """The source, or a window of it around the error when it is long."""
    text = " ".join(source.split("\n"))
    if len(text) <= width:
        return text
    offset = 0
    if column is not None:
        lines = source.split("\n")
        offset = sum(len(x) + 1 for x in lines[: (line or 1) - 1]) + column - 1
    start = max(0, min(offset - width // 2, len(text) - width))
    return ("..." if start else "") + text[start : start + width] + "..."


# ---------------------------------------------------------------------------------------------
# Grammar. Precedence follows expr-lang's parser/operator table (lowest first):
#   ?: ternary, | pipe, or/||, and/&&, comparisons (==, <, in, contains, matches, ...; chained
#   like a < b < c), .. range, + -, unary not/!, * / %, unary - +, ** ^, ?? and finally
#   postfix member access, indexing, slicing and calls.
# Note expr-lang's unary `not` binds looser than `*` (`!a * b` is `!(a * b)`) but tighter than
# `+` and comparisons (`!a == b` is `(!a) == b`); the levels below reproduce that.
# ---------------------------------------------------------------------------------------------
_GRAMMAR = r"""
?start: expr

?expr: pipe
     | pipe "?" expr ":" expr               -> ternary

?pipe: or_expr
     | pipe "|" NAME "(" [arguments] ")"    -> pipe_call

?or_expr: and_expr
        | or_expr _OR and_expr              -> or_op

?and_expr: comparison
         | and_expr _AND comparison         -> and_op

?comparison: range_expr
           | range_expr (comp_op range_expr)+ -> compare

!comp_op: "==" | "!=" | "<" | "<=" | ">" | ">=" | [NOT] (IN | CONTAINS | STARTS | ENDS | MATCHES)

?range_expr: sum
           | sum ".." sum                   -> range_op

?sum: not_expr
    | sum "+" not_expr                      -> add
    | sum "-" not_expr                      -> sub

?not_expr: product
         | ("!" | NOT) not_expr             -> not_op

?product: unary
        | product "*" unary                 -> mul
        | product "/" unary                 -> div
        | product "%" unary                 -> mod

?unary: power
      | "-" unary                           -> neg
      | "+" unary                           -> pos

?power: coalesce
      | coalesce ("**" | "^") unary         -> pow

?coalesce: postfix
         | coalesce "??" postfix            -> coalesce

?postfix: atom
        | atom trailer+                     -> chain

trailer: "." NAME                           -> attr
       | "?." NAME                          -> opt_attr
       | "[" expr "]"                       -> index
       | "?." "[" expr "]"                  -> opt_index
       | "[" [expr] ":" [expr] "]"          -> slice
       | "(" [arguments] ")"                -> call

arguments: expr ("," expr)* ","?

?atom: INT                                  -> int_lit
     | FLOAT                                -> float_lit
     | STRING                               -> string_lit
     | "true"                               -> true_lit
     | "false"                              -> false_lit
     | "nil"                                -> nil_lit
     | NAME                                 -> name
     | POINTER                              -> pointer
     | "." NAME                             -> dot_member
     | "(" expr ")"
     | "[" [expr ("," expr)* ","?] "]"      -> array
     | "{" [pair ("," pair)* ","?] "}"      -> map
     | "{" expr "}"                         -> closure

pair: (NAME | STRING | INT) ":" expr
    | "(" expr ")" ":" expr                 -> computed_pair

// Word operators are whole words only (`a orb` must not lex as `a or b`); the raised priority
// makes `not` an operator rather than a name where both could start an operand.
_OR.2: "||" | /or\b/
_AND.2: "&&" | /and\b/
NOT.2: /not\b/
IN.2: /in\b/
CONTAINS.2: /contains\b/
STARTS.2: /startsWith\b/
ENDS.2: /endsWith\b/
MATCHES.2: /matches\b/

NAME: /[A-Za-z_$][A-Za-z0-9_$]*/
POINTER: /#[A-Za-z_]*/
INT: /0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*/
FLOAT: /[0-9][0-9_]*\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?|[0-9][0-9_]*[eE][+-]?[0-9]+/
STRING: /"(?:[^"\\]|\\.)*"/s | /'(?:[^'\\]|\\.)*'/s | /`[^`]*`/

%ignore /\s+/
%ignore /\/\/[^\n]*/
%ignore /\/\*(?:.|\n)*?\*\//
"""


@functools.cache
def _parser() -> Lark:
    # Built on first use: building the LALR tables costs ~0.1 s that importers shouldn't pay.
    return Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


# Go string escapes (expr-lang strings follow Go's rules).
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def _unescape(body: str, token: Token) -> str:
    def replace(match: re.Match) -> str:
        esc = match.group(1)
        if esc in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[esc]
        if esc[0] in "xuU" and len(esc) > 1:
            code = int(esc[1:], 16)
        elif len(esc) == 3 and esc.isdigit():
            code = int(esc, 8)
        else:
            raise ExpressionError(
                f"invalid escape sequence \\{esc} in string literal",
                line=token.line,
                column=token.column,
            )
        if code > 0x10FFFF:
            raise ExpressionError(
                f"invalid code point \\{esc}", line=token.line, column=token.column
            )
        return chr(code)

    return _ESCAPE_RE.sub(replace, body)


def _string_value(token: Token) -> str:
    body = token[1:-1]
    return body if token[0] == "`" else _unescape(body, token)


def _const(tree: Tree, value: Any) -> Tree:
    # Mutate in place rather than building a new Tree so the node keeps its position (meta).
    tree.data = "const"
    tree.children = [value]
    return tree


class _Compiler(Transformer):
    """Turns literal tokens into Python values once, at compile time."""

    @v_args(tree=True)
    def int_lit(self, tree: Tree) -> Tree:
        token = tree.children[0]
        text = token.replace("_", "")
        try:
            value = int(text, 0) if text[:2].lower() in ("0x", "0o", "0b") else int(text)
        except ValueError:  # e.g. "0x_"
            raise ExpressionError(
                f"invalid number literal {str(token)!r}", line=token.line, column=token.column
            ) from None
        return _const(tree, value)

    @v_args(tree=True)
    def float_lit(self, tree: Tree) -> Tree:
        return _const(tree, float(tree.children[0].replace("_", "")))

    @v_args(tree=True)
    def string_lit(self, tree: Tree) -> Tree:
        return _const(tree, _string_value(tree.children[0]))

    @v_args(tree=True)
    def true_lit(self, tree: Tree) -> Tree:
        return _const(tree, True)

    @v_args(tree=True)
    def false_lit(self, tree: Tree) -> Tree:
        return _const(tree, False)

    @v_args(tree=True)
    def nil_lit(self, tree: Tree) -> Tree:
        return _const(tree, None)

    def comp_op(self, children: list[Token | None]) -> str:
        return " ".join(child for child in children if child is not None)

    @v_args(tree=True)
    def pair(self, tree: Tree) -> Tree:
        key = tree.children[0]
        # Map keys written as identifiers or numbers are strings, as in expr-lang.
        tree.children[0] = _string_value(key) if key.type == "STRING" else str(key)
        return tree


# ---------------------------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------------------------
class Expression:
    """A parsed expression; ``evaluate(env)`` walks the cached tree."""

    __slots__ = ("source", "tree")

    def __init__(self, source: str, tree: Tree):
        self.source = source
        self.tree = tree

    def evaluate(self, env: Mapping[str, Any] | None = None) -> Any:
        try:
            return _Evaluator(env if env is not None else {}).visit(self.tree)
        except ExpressionError as exc:
            if exc.source is None:
                exc.source = self.source
            raise
        except RecursionError:
            raise ExpressionError("expression is nested too deeply", source=self.source) from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Parse ``source`` (a plain expression, no ``${{ }}``) once; repeated calls hit a cache."""
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, got {_type_name(source)}")
    if not source.strip():
        raise ExpressionError("empty expression", source=source)
    try:
        try:
            tree = _Compiler().transform(_parser().parse(source))
        except VisitError as exc:  # lark wraps errors raised by _Compiler's callbacks
            raise exc.orig_exc from None
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    except ExpressionError as exc:  # e.g. a bad escape sequence in a string literal
        exc.source = source
        raise
    except RecursionError:
        raise ExpressionError("expression is nested too deeply", source=source) from None
    if isinstance(tree, Tree) and tree.data == "closure":
        # A whole expression in braces is a map literal with a missing key, not a predicate.
        raise ExpressionError(
            "unexpected '{': a map literal needs `key: value` pairs", source=source, column=1
        )
    return Expression(source, tree)


def _describe_terminal(name: str) -> str:
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return repr(pattern.value)
    return {
        "NAME": "a name",
        "INT": "a number",
        "FLOAT": "a number",
        "STRING": "a string",
        "POINTER": "#",
    }.get(name, name)


def _syntax_error(source: str, exc: UnexpectedInput) -> ExpressionError:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if isinstance(exc, UnexpectedCharacters):
        char = source[exc.pos_in_stream] if exc.pos_in_stream < len(source) else ""
        message = f"syntax error: unexpected character {char!r}"
        if char in "'\"`":
            message += " (unterminated string literal?)"
    elif isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        message = "syntax error: unexpected end of expression"
        lines = source.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    elif isinstance(exc, UnexpectedToken):
        message = f"syntax error: unexpected {exc.token.value!r}"
        expected = sorted({_describe_terminal(t) for t in exc.expected if not t.startswith("$")})
        if 0 < len(expected) <= 8:
            message += f" (expected {', '.join(expected)})"
    else:
        message = "syntax error"
    if not isinstance(line, int) or line < 1:
        line, column = None, None
    return ExpressionError(message, source=source, line=line, column=column)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------
def evaluate(source: str, env: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a plain expr-lang expression, e.g. ``result[0] >= 0.95``."""
    return compile_expression(source).evaluate(env)


_DELIMITERS = (("${{", "}}"), ("${%", "%}"))


def has_expression(value: Any) -> bool:
    """True when any string value (not dict key) in ``value`` contains ``${{`` or ``${%``."""
    if isinstance(value, str):
        return any(start in value for start, _ in _DELIMITERS)
    if isinstance(value, Mapping):
        return any(has_expression(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_expression(v) for v in value)
    return False


def evaluate_template(value: Any, env: Mapping[str, Any] | None = None) -> Any:
    """Evaluate ``${{ }}`` / ``${% %}`` in every string value of ``value`` (never in dict keys).

    Follows Kargo's pkg/expressions/json_templates.go: a string that is one expression yields its
    raw value; otherwise the pieces are joined as text, and text that parses as JSON becomes that
    JSON value (``quote()`` wraps a value in quotes to keep it a string).
    """
    env = env if env is not None else {}
    if isinstance(value, str):
        return _evaluate_string(value, env)
    if isinstance(value, Mapping):
        return {key: evaluate_template(item, env) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [evaluate_template(item, env) for item in value]
    return value


@functools.lru_cache(maxsize=4096)
def _split_template(template: str) -> tuple[str | Expression, ...]:
    """Literal text and compiled expressions, in order. Like Kargo, an expression ends at the
    first closing delimiter, even inside a string literal; ``${% %}`` exists for that case."""
    parts: list[str | Expression] = []
    rest = template
    while True:
        found = [(rest.find(start), start, end) for start, end in _DELIMITERS if start in rest]
        if not found:
            parts.append(rest)
            break
        index, start, end = min(found)
        close = rest.find(end, index + len(start))
        if close < 0:
            raise ExpressionError(
                f"unclosed expression: expected {end!r} but reached the end of the template",
                source=template,
            )
        parts.append(rest[:index])
        parts.append(compile_expression(rest[index + len(start) : close]))
        rest = rest[close + len(end) :]
    return tuple(part for part in parts if part != "")


def _evaluate_string(template: str, env: Mapping[str, Any]) -> Any:
    if not has_expression(template):
        # Plain strings are never coerced, so "42" stays the string "42".
        return template
    parts = _split_template(template)
    values = [part.evaluate(env) if isinstance(part, Expression) else part for part in parts]
    results = [v for p, v in zip(parts, values, strict=True) if isinstance(p, Expression)]
    only_space = all(p.isspace() for p in parts if isinstance(p, str))
    if len(results) == 1 and only_space and not isinstance(results[0], str):
        return results[0]
    text = "".join(
        v if isinstance(p, str) else _template_text(v) for p, v in zip(parts, values, strict=True)
    )
    return _coerce(text)


def _template_text(value: Any) -> str:
    """How a value reads when interpolated into surrounding text."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, Mapping, list, tuple)):
        return _to_json(value)
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, timedelta):
        return _go_duration(value)
    return str(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _coerce(text: str) -> Any:
    """Kargo's last step: text that is JSON becomes a JSON value; text wrapped in double quotes
    (what quote() produces) loses the quotes and stays a string."""
    body, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")
    if len(body) > 1 and body.startswith('"') and body.endswith('"'):
        return body[1:-1] + newline
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


# ---------------------------------------------------------------------------------------------
# Values: type names, equality, ordering, arithmetic (expr-lang semantics on Python values)
# ---------------------------------------------------------------------------------------------
_MISSING = object()
_MAX_RANGE = 1_000_000
_MAX_STRING = 10_000_000


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, datetime):
        return "time.Time"
    if isinstance(value, timedelta):
        return "time.Duration"
    if callable(value):
        return "func"
    return type(value).__name__


def _short(value: Any) -> str:
    text = _go_string(value) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad_operands(op: str, a: Any, b: Any) -> ExpressionError:
    return ExpressionError(
        f"invalid operation: {_type_name(a)} {op} {_type_name(b)} ({_short(a)} {op} {_short(b)})"
    )


def _aware(value: datetime) -> datetime:
    # Naive datetimes from callers are taken as UTC so they compare with date()/now().
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _require_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{what} expects a bool, got {_type_name(value)} ({_short(value)})")
    return value


def _equal(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _aware(a) == _aware(b)
    try:
        return bool(a == b)
    except Exception:
        return False


def _order(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        a, b = _aware(a), _aware(b)
    elif not (
        (_is_num(a) and _is_num(b))
        or (isinstance(a, str) and isinstance(b, str))
        or (isinstance(a, timedelta) and isinstance(b, timedelta))
    ):
        raise _bad_operands(op, a, b)
    match op:
        case "<":
            return a < b
        case "<=":
            return a <= b
        case ">":
            return a > b
        case _:
            return a >= b


def _in(item: Any, container: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, Mapping):
        try:
            return item in container
        except TypeError:
            return False
    if isinstance(container, (list, tuple)):
        return any(_equal(item, element) for element in container)
    if isinstance(container, str):
        raise ExpressionError(
            "operator 'in' is not defined on string (use `contains` for substrings)"
        )
    raise _bad_operands("in", item, container)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"invalid regular expression {pattern!r}: {exc}") from None


def _strings(op: str, a: Any, b: Any) -> tuple[str, str]:
    if not (isinstance(a, str) and isinstance(b, str)):
        raise _bad_operands(op, a, b)
    return a, b


def _compare(op: str, a: Any, b: Any) -> bool:
    negate = op.startswith("not ")
    base = op[4:] if negate else op
    match base:
        case "==":
            result = _equal(a, b)
        case "!=":
            result = not _equal(a, b)
        case "<" | "<=" | ">" | ">=":
            result = _order(base, a, b)
        case "in":
            result = _in(a, b)
        case "contains":
            s, sub = _strings(base, a, b)
            result = sub in s
        case "startsWith":
            s, prefix = _strings(base, a, b)
            result = s.startswith(prefix)
        case "endsWith":
            s, suffix = _strings(base, a, b)
            result = s.endswith(suffix)
        case _:  # matches: an unanchored search, like Go's regexp.MatchString
            s, pattern = _strings(base, a, b)
            result = _regex(pattern).search(s) is not None
    return not result if negate else result


def _add(a: Any, b: Any) -> Any:
    if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
        if isinstance(a, str) and len(a) + len(b) > _MAX_STRING:
            raise ExpressionError("string too long")
        return a + b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [*a, *b]
    if isinstance(a, datetime) and isinstance(b, timedelta):
        return a + b
    if isinstance(a, timedelta) and isinstance(b, (datetime, timedelta)):
        return b + a
    raise _bad_operands("+", a, b)


def _sub(a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return a - b
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _aware(a) - _aware(b)
    if isinstance(a, (datetime, timedelta)) and isinstance(b, timedelta):
        return a - b
    raise _bad_operands("-", a, b)


def _mul(a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return a * b
    if isinstance(a, timedelta) and _is_num(b):
        return a * b
    if _is_num(a) and isinstance(b, timedelta):
        return b * a
    raise _bad_operands("*", a, b)


def _div(a: Any, b: Any) -> float:
    # expr-lang's `/` always yields a float, even for two ints.
    if not (_is_num(a) and _is_num(b)):
        raise _bad_operands("/", a, b)
    if b == 0:
        raise ExpressionError("division by zero")
    return float(a) / float(b)


def _mod(a: Any, b: Any) -> int:
    if not (_is_int(a) and _is_int(b)):
        raise _bad_operands("%", a, b)
    if b == 0:
        raise ExpressionError("integer divide by zero")
    # Go's % truncates toward zero: the result has the sign of the dividend.
    result = abs(a) % abs(b)
    return -result if a < 0 else result


def _pow(a: Any, b: Any) -> float:
    if not (_is_num(a) and _is_num(b)):
        raise _bad_operands("**", a, b)
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError) as exc:
        raise ExpressionError(f"invalid operation {_short(a)} ** {_short(b)}: {exc}") from None


def _neg(value: Any) -> Any:
    if _is_num(value) or isinstance(value, timedelta):
        return -value
    raise ExpressionError(f"invalid operation: -{_type_name(value)} ({_short(value)})")


def _range(a: Any, b: Any) -> list[int]:
    if not (_is_int(a) and _is_int(b)):
        raise _bad_operands("..", a, b)
    if b - a >= _MAX_RANGE:
        raise ExpressionError(f"range {a}..{b} is too large")
    return list(range(a, b + 1))


# ---------------------------------------------------------------------------------------------
# Member access, indexing, slicing, calls
# ---------------------------------------------------------------------------------------------
_PLAIN_TYPES = (str, bytes, bool, int, float, list, tuple, datetime, timedelta, type)


def _get_member(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)  # a missing map key is nil, as in expr-lang
    if value is None:
        raise ExpressionError(
            f"cannot access member {name!r} of nil (use ?.{name} for optional access)"
        )
    # Attribute access on arbitrary objects is limited to public data of plain objects (e.g.
    # dataclasses): no dunder/private names, no reaching into functions, classes or modules.
    if (
        isinstance(value, _PLAIN_TYPES)
        or isinstance(value, types.ModuleType)
        or callable(value)
        or name.startswith("_")
    ):
        raise ExpressionError(f"cannot access member {name!r} of {_type_name(value)}")
    try:
        return getattr(value, name)
    except AttributeError:
        raise ExpressionError(f"{_type_name(value)} has no member {name!r}") from None


def _get_index(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:
            raise ExpressionError(f"invalid map key {_short(key)}") from None
    if isinstance(value, (list, tuple, str)):
        if not _is_int(key):
            raise ExpressionError(
                f"{_type_name(value)} index must be an int, got {_type_name(key)} ({_short(key)})"
            )
        index = key + len(value) if key < 0 else key
        if not 0 <= index < len(value):
            raise ExpressionError(f"index out of range: {key} (length {len(value)})")
        return value[index]
    if value is None:
        raise ExpressionError(
            f"cannot access member {_short(key)} of nil (use ?.[...] for optional access)"
        )
    if isinstance(key, str):
        return _get_member(value, key)
    raise ExpressionError(f"cannot index {_type_name(value)} with {_short(key)}")


def _slice(value: Any, start: Any, stop: Any) -> Any:
    if not isinstance(value, (list, tuple, str)):
        raise ExpressionError(f"cannot slice {_type_name(value)}")
    size = len(value)
    bounds = []
    for bound, default in ((start, 0), (stop, size)):
        if bound is None:
            bound = default
        elif not _is_int(bound):
            raise ExpressionError(f"slice bounds must be ints, got {_type_name(bound)}")
        elif bound < 0:
            bound += size
        bounds.append(max(0, min(bound, size)))
    low, high = bounds[0], max(bounds)
    return value[low:high] if isinstance(value, str) else list(value[low:high])


def _invoke(fn: Callable, args: list[Any], label: str) -> Any:
    """Call a builtin or a caller-supplied function, turning its failures into ExpressionError."""
    try:
        return fn(*args)
    except (ExpressionError, RecursionError):
        raise
    except TypeError as exc:
        if not _accepts(fn, len(args)):
            raise ExpressionError(
                f"wrong number of arguments for {label}(): got {len(args)}"
            ) from exc
        raise ExpressionError(f"error calling {label}(): {exc}") from exc
    except Exception as exc:
        raise ExpressionError(f"error calling {label}(): {exc}") from exc


def _accepts(fn: Callable, count: int) -> bool:
    """Whether ``fn`` can take ``count`` positional arguments (True when it can't be told)."""
    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _call_value(fn: Any, args: list[Any], label: str) -> Any:
    if not callable(fn):
        raise ExpressionError(f"{label} is not a function (it is {_type_name(fn)})")
    return _invoke(fn, args, label)


def _call_method(value: Any, name: str, args: list[Any]) -> Any:
    # Go methods of time.Time and time.Duration that Kargo users reach for.
    if isinstance(value, datetime) and name in _TIME_METHODS:
        return _invoke(_TIME_METHODS[name], [value, *args], name)
    if isinstance(value, timedelta) and name in _DURATION_METHODS:
        return _invoke(_DURATION_METHODS[name], [value, *args], name)
    if isinstance(value, Mapping):
        return _call_value(value.get(name), args, name)
    if value is None:
        raise ExpressionError(f"cannot call method {name!r} of nil")
    if name.startswith("_") or isinstance(value, (*_PLAIN_TYPES, types.ModuleType)):
        raise ExpressionError(f"{_type_name(value)} has no method {name!r}")
    return _call_value(getattr(value, name, None), args, name)


# ---------------------------------------------------------------------------------------------
# The interpreter
# ---------------------------------------------------------------------------------------------
class _Evaluator:
    """Walks a compiled tree. ``frames`` holds the current element(s) of predicates (``#``)."""

    __slots__ = ("env", "frames")

    def __init__(self, env: Mapping[str, Any]):
        self.env = env
        self.frames: list[dict[str, Any]] = []

    def visit(self, node: Tree) -> Any:
        try:
            return getattr(self, "_" + node.data)(node)
        except ExpressionError as exc:
            # The innermost node that failed reports the position.
            if exc.column is None and not node.meta.empty:
                exc.line, exc.column = node.meta.line, node.meta.column
            raise

    # -- atoms ----------------------------------------------------------------------------
    def _const(self, node: Tree) -> Any:
        return node.children[0]

    def _name(self, node: Tree) -> Any:
        name = node.children[0]
        if name in self.env:
            return self.env[name]
        if name == "$env":
            return self.env
        raise ExpressionError(f"unknown name {str(name)!r}")

    def _current(self, what: str) -> dict[str, Any]:
        if not self.frames:
            raise ExpressionError(
                f"{what} can only be used inside a predicate, e.g. filter(list, # > 1)"
            )
        return self.frames[-1]

    def _pointer(self, node: Tree) -> Any:
        name = str(node.children[0])
        frame = self._current(name)
        if name not in frame:
            raise ExpressionError(f"unknown pointer {name!r} (use #, #index or, in reduce, #acc)")
        return frame[name]

    def _dot_member(self, node: Tree) -> Any:
        name = str(node.children[0])
        return _get_member(self._current(f".{name}")["#"], name)

    def _closure(self, node: Tree) -> Any:
        raise ExpressionError("a {...} predicate can only be an argument of filter, map, all, ...")

    def _array(self, node: Tree) -> list[Any]:
        return [self.visit(child) for child in node.children if child is not None]

    def _map(self, node: Tree) -> dict[Any, Any]:
        result = {}
        for pair in node.children:
            if pair is None:
                continue
            key_node, value_node = pair.children
            key = key_node if isinstance(key_node, str) else self.visit(key_node)
            value = self.visit(value_node)
            try:
                result[key] = value
            except TypeError:  # an unhashable computed key, e.g. {([1]): 2}
                raise ExpressionError(f"invalid map key {_short(key)}") from None
        return result

    # -- operators ------------------------------------------------------------------------
    def _ternary(self, node: Tree) -> Any:
        condition, if_true, if_false = node.children
        return self.visit(
            if_true if _require_bool(self.visit(condition), "?: condition") else if_false
        )

    def _or_op(self, node: Tree) -> bool:
        left, right = node.children
        if _require_bool(self.visit(left), "||"):
            return True
        return _require_bool(self.visit(right), "||")

    def _and_op(self, node: Tree) -> bool:
        left, right = node.children
        if not _require_bool(self.visit(left), "&&"):
            return False
        return _require_bool(self.visit(right), "&&")

    def _not_op(self, node: Tree) -> bool:
        # children[-1]: the `not` keyword token is kept in the tree, `!` is not.
        return not _require_bool(self.visit(node.children[-1]), "!")

    def _compare(self, node: Tree) -> bool:
        # `a < b < c` means `a < b && b < c` (expr-lang chains comparisons).
        left = self.visit(node.children[0])
        children = node.children[1:]
        for op, right_node in zip(children[::2], children[1::2], strict=True):
            right = self.visit(right_node)
            if not _compare(op, left, right):
                return False
            left = right
        return True

    def _binary(self, node: Tree, fn: Callable[[Any, Any], Any]) -> Any:
        left, right = node.children
        return fn(self.visit(left), self.visit(right))

    def _range_op(self, node: Tree) -> list[int]:
        return self._binary(node, _range)

    def _add(self, node: Tree) -> Any:
        return self._binary(node, _add)

    def _sub(self, node: Tree) -> Any:
        return self._binary(node, _sub)

    def _mul(self, node: Tree) -> Any:
        return self._binary(node, _mul)

    def _div(self, node: Tree) -> float:
        return self._binary(node, _div)

    def _mod(self, node: Tree) -> int:
        return self._binary(node, _mod)

    def _pow(self, node: Tree) -> float:
        return self._binary(node, _pow)

    def _neg(self, node: Tree) -> Any:
        return _neg(self.visit(node.children[0]))

    def _pos(self, node: Tree) -> Any:
        value = self.visit(node.children[0])
        if not _is_num(value):
            raise ExpressionError(f"invalid operation: +{_type_name(value)}")
        return value

    def _coalesce(self, node: Tree) -> Any:
        left, right = node.children
        # `undefinedName ?? x` falls back like expr-lang does for names absent from the env.
        if left.data == "name" and left.children[0] not in self.env:
            value = None
        else:
            value = self.visit(left)
        return self.visit(right) if value is None else value

    # -- postfix chains: a.b?.c[0](x) ---------------------------------------------------------
    def _chain(self, node: Tree) -> Any:
        atom, *trailers = node.children
        position = 0
        if atom.data == "name" and trailers[0].data == "call":
            value = self._call_function(str(atom.children[0]), _args(trailers[0]))
            position = 1
        else:
            value = self.visit(atom)
        while position < len(trailers):
            trailer = trailers[position]
            kind = trailer.data
            if kind in ("opt_attr", "opt_index") and value is None:
                return None  # `?.` on nil ends the whole chain with nil
            try:
                if kind in ("attr", "opt_attr"):
                    name = str(trailer.children[0])
                    following = trailers[position + 1] if position + 1 < len(trailers) else None
                    if following is not None and following.data == "call":
                        args = [self.visit(arg) for arg in _args(following)]
                        value = _call_method(value, name, args)
                        position += 2
                        continue
                    value = _get_member(value, name)
                elif kind in ("index", "opt_index"):
                    value = _get_index(value, self.visit(trailer.children[0]))
                elif kind == "slice":
                    start, stop = (
                        None if child is None else self.visit(child) for child in trailer.children
                    )
                    value = _slice(value, start, stop)
                else:  # call of a computed value, e.g. m["f"](1)
                    args = [self.visit(arg) for arg in _args(trailer)]
                    value = _call_value(value, args, "value")
            except ExpressionError as exc:
                if exc.column is None and not trailer.meta.empty:
                    exc.line, exc.column = trailer.meta.line, trailer.meta.column
                raise
            position += 1
        return value

    def _pipe_call(self, node: Tree) -> Any:
        # `x | f(y)` is `f(x, y)`.
        left, name, arguments = node.children
        return self._call_function(str(name), _args_of(arguments), piped=[self.visit(left)])

    def _call_function(self, name: str, arg_nodes: list[Tree], piped: list[Any] = ()) -> Any:
        fn = self.env.get(name, _MISSING)
        if callable(fn):  # callables from the env win over builtins of the same name
            return _invoke(fn, [*piped, *(self.visit(arg) for arg in arg_nodes)], name)
        if name in _PREDICATE_BUILTINS:
            return self._call_predicate(name, arg_nodes, piped)
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return _invoke(builtin, [*piped, *(self.visit(arg) for arg in arg_nodes)], name)
        if fn is not _MISSING:
            raise ExpressionError(f"{name!r} is not a function (it is {_type_name(fn)})")
        raise ExpressionError(f"unknown function {name!r}")

    # -- predicates: filter(list, # > 1), map(list, .name), ... ----------------------------
    def _apply(self, predicate: Tree, item: Any, index: int, acc: Any = _MISSING) -> Any:
        frame = {"#": item, "#index": index}
        if acc is not _MISSING:
            frame["#acc"] = acc
        body = predicate.children[0] if predicate.data == "closure" else predicate
        self.frames.append(frame)
        try:
            return self.visit(body)
        finally:
            self.frames.pop()

    def _call_predicate(self, name: str, arg_nodes: list[Tree], piped: list[Any]) -> Any:
        nodes = list(arg_nodes)
        if piped:
            items = piped[0]
        elif nodes:
            items = self.visit(nodes.pop(0))
        else:
            raise ExpressionError(f"{name}() expects an array as its first argument")
        predicate = nodes.pop(0) if nodes else None
        if predicate is None and name not in ("count", "sum"):
            raise ExpressionError(f"{name}() expects a predicate, e.g. {name}(list, # > 0)")
        extra = [self.visit(n) for n in nodes]
        if len(extra) > (1 if name in ("sortBy", "reduce") else 0):
            raise ExpressionError(f"too many arguments to {name}()")
        if isinstance(items, Mapping):
            items = list(items.values())
        if not isinstance(items, (list, tuple)):
            raise ExpressionError(f"{name}() expects an array, got {_type_name(items)}")
        seq = list(enumerate(items))

        def test(index: int, item: Any) -> bool:
            return _require_bool(self._apply(predicate, item, index), f"{name}() predicate")

        match name:
            case "all":
                return all(test(i, x) for i, x in seq)
            case "any":
                return any(test(i, x) for i, x in seq)
            case "none":
                return not any(test(i, x) for i, x in seq)
            case "one":
                return sum(1 for i, x in seq if test(i, x)) == 1
            case "filter":
                return [x for i, x in seq if test(i, x)]
            case "map":
                return [self._apply(predicate, x, i) for i, x in seq]
            case "count":
                if predicate is None:
                    return sum(1 for _, x in seq if _require_bool(x, "count()"))
                return sum(1 for i, x in seq if test(i, x))
            case "sum":
                if predicate is not None:
                    return _sum([self._apply(predicate, x, i) for i, x in seq])
                return _sum(items)
            case "find":
                return next((x for i, x in seq if test(i, x)), None)
            case "findIndex":
                return next((i for i, x in seq if test(i, x)), -1)
            case "findLast":
                return next((x for i, x in reversed(seq) if test(i, x)), None)
            case "findLastIndex":
                return next((i for i, x in reversed(seq) if test(i, x)), -1)
            case "groupBy":
                groups: dict[Any, list[Any]] = {}
                for i, x in seq:
                    groups.setdefault(self._apply(predicate, x, i), []).append(x)
                return groups
            case "sortBy":
                keyed = [(self._apply(predicate, x, i), x) for i, x in seq]
                order = extra[0] if extra else "asc"
                return [x for _, x in _sorted_pairs(keyed, order)]
            case _:  # reduce
                if extra:
                    acc, rest = extra[0], seq
                elif seq:
                    acc, rest = seq[0][1], seq[1:]
                else:
                    return None
                for i, x in rest:
                    acc = self._apply(predicate, x, i, acc)
                return acc


def _args_of(arguments: Tree | None) -> list[Tree]:
    return [] if arguments is None else list(arguments.children)


def _args(call: Tree) -> list[Tree]:
    return _args_of(call.children[0])


# ---------------------------------------------------------------------------------------------
# Formatting: Go's %v (string()), Go's JSON, durations and times
# ---------------------------------------------------------------------------------------------
def _float_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(value) and the decimal point position:
    value == 0.DIGITS * 10**point (Go's strconv representation)."""
    _, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits))
    stripped = text.rstrip("0") or "0"
    exponent += len(text) - len(stripped)
    return stripped, len(stripped) + exponent


def _format_e(digits: str, point: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _format_f(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _go_float(value: float, json_style: bool = False) -> str:
    """A float the way Go prints it: %v for string(), encoding/json for templates."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, point = _float_digits(value)
    if json_style:
        if 1e-6 <= abs(value) < 1e21:
            return sign + _format_f(digits, point)
        return sign + _format_e(digits, point).replace("e-0", "e-")
    exp = point - 1
    if exp < -4 or exp >= 6:  # %v is the shortest %g: 1e+06, 1.5e-05
        return sign + _format_e(digits, point)
    return sign + _format_f(digits, point)


def _go_string(value: Any) -> str:
    """Go's fmt %v, which is what expr-lang's string() produces."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_string(x) for x in value) + "]"
    if isinstance(value, Mapping):
        items = _sorted_items(value)
        return "map[" + " ".join(f"{_go_string(k)}:{_go_string(v)}" for k, v in items) + "]"
    if isinstance(value, datetime):
        return _go_time_string(value)
    if isinstance(value, timedelta):
        return _go_duration(value)
    return str(value)


def _sorted_items(mapping: Mapping) -> list[tuple[Any, Any]]:
    # Go sorts map keys when printing and marshalling; fall back to insertion order when the
    # keys are not mutually comparable.
    try:
        return sorted(mapping.items(), key=lambda kv: kv[0])
    except TypeError:
        return list(mapping.items())


def _to_json(value: Any, indent: int | None = None, level: int = 0) -> str:
    """JSON the way Go's encoding/json writes it: sorted keys, Go float formatting, compact
    unless indented (MarshalIndent style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"cannot convert {_go_float(value)} to JSON")
        return _go_float(value, json_style=True)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return json.dumps(_rfc3339(value))
    if isinstance(value, timedelta):
        return json.dumps(_go_duration(value))
    if isinstance(value, Mapping):
        entries = [
            (json.dumps(str(k), ensure_ascii=False), _to_json(v, indent, level + 1))
            for k, v in _sorted_items(value)
        ]
        return _json_block(
            "{", "}", [f"{k}:{' ' if indent else ''}{v}" for k, v in entries], indent, level
        )
    if isinstance(value, (list, tuple)):
        return _json_block("[", "]", [_to_json(v, indent, level + 1) for v in value], indent, level)
    raise ExpressionError(f"cannot convert {_type_name(value)} to JSON")


def _json_block(open_: str, close: str, items: list[str], indent: int | None, level: int) -> str:
    if not items:
        return open_ + close
    if not indent:
        return open_ + ",".join(items) + close
    inner = "\n" + " " * (indent * (level + 1))
    return open_ + inner + ("," + inner).join(items) + "\n" + " " * (indent * level) + close


def _rfc3339(value: datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is None:
        return text
    if not offset:
        return text + "Z"
    return text + value.strftime("%z")[:3] + ":" + value.strftime("%z")[3:]


def _go_time_string(value: datetime) -> str:
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    if value.tzinfo is not None:
        text += f" {value.strftime('%z')} {value.tzname() or ''}".rstrip()
    return text


def _trim_decimal(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    digits = len(str(unit)) - 1
    fraction_text = f"{fraction:0{digits}d}".rstrip("0") if digits else ""
    return f"{whole}.{fraction_text}" if fraction_text else str(whole)


def _go_duration(value: timedelta) -> str:
    """time.Duration.String(): 1h30m0s, 1.5s, 250ms."""
    nanos = ((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 1000
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim_decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = _trim_decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1000,
    "µs": 1000,
    "μs": 1000,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _parse_duration(text: Any) -> timedelta:
    """time.ParseDuration: "1h30m", "-1.5s", "300ms"."""
    if not isinstance(text, str):
        raise ExpressionError(f"duration() expects a string, got {_type_name(text)}")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return timedelta(0)
    nanos = Decimal(0)
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if not match:
            break
        nanos += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ExpressionError(f"invalid duration {text!r} (examples: 90s, 1h30m, 250ms)")
    delta = timedelta(microseconds=int(nanos / 1000))
    return -delta if text.startswith("-") else delta


# Go reference-time layout elements mapped to strptime/strftime directives.
_GO_LAYOUT = {
    "2006": "%Y",
    "06": "%y",
    "January": "%B",
    "Jan": "%b",
    "01": "%m",
    "Monday": "%A",
    "Mon": "%a",
    "02": "%d",
    "_2": "%d",
    "15": "%H",
    "03": "%I",
    "04": "%M",
    "05": "%S",
    "PM": "%p",
    "MST": "%Z",
    "Z07:00": "%z",
    "-07:00": "%z",
    "Z0700": "%z",
    "-0700": "%z",
    ".000000": ".%f",
    ".000": ".%f",
    ".999999": ".%f",
    ".999": ".%f",
    "%": "%%",
}
_GO_LAYOUT_RE = re.compile(
    "|".join(re.escape(k) for k in sorted(_GO_LAYOUT, key=len, reverse=True))
)


def _go_layout(layout: str) -> str:
    return _GO_LAYOUT_RE.sub(lambda m: _GO_LAYOUT[m.group(0)], layout)


def _parse_date(text: Any, layout: str | None = None, zone: str | None = None) -> datetime:
    """expr-lang's date(): RFC 3339, "2006-01-02", "2006-01-02 15:04:05", "15:04:05", RFC 1123
    or an explicit Go layout; the result is always timezone-aware (UTC unless told otherwise)."""
    if isinstance(text, datetime):
        return _aware(text)
    if not isinstance(text, str):
        raise ExpressionError(f"date() expects a string, got {_type_name(text)}")
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ValueError, KeyError, OSError):
        raise ExpressionError(f"unknown time zone {zone!r}") from None
    value = None
    if layout is not None:
        try:
            value = datetime.strptime(text, _go_layout(layout))
        except ValueError as exc:
            raise ExpressionError(
                f"cannot parse date {text!r} with layout {layout!r}: {exc}"
            ) from None
    else:
        for parse in (
            datetime.fromisoformat,
            lambda s: datetime.strptime(s, "%H:%M:%S"),
            parsedate_to_datetime,
        ):
            try:
                value = parse(text)
                break
            except (ValueError, TypeError, IndexError):
                continue
    if value is None:
        raise ExpressionError(f"cannot parse date {text!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


_TIME_METHODS: dict[str, Callable[..., Any]] = {
    "Year": lambda t: t.year,
    "Month": lambda t: t.month,
    "Day": lambda t: t.day,
    "Hour": lambda t: t.hour,
    "Minute": lambda t: t.minute,
    "Second": lambda t: t.second,
    "Nanosecond": lambda t: t.microsecond * 1000,
    "YearDay": lambda t: t.timetuple().tm_yday,
    "Unix": lambda t: math.floor(_aware(t).timestamp()),
    "UnixMilli": lambda t: math.floor(_aware(t).timestamp() * 1000),
    "UTC": lambda t: _aware(t).astimezone(UTC),
    "Format": lambda t, layout: t.strftime(_go_layout(layout)),
    "Before": lambda t, u: _aware(t) < _aware(u),
    "After": lambda t, u: _aware(t) > _aware(u),
    "Equal": lambda t, u: _aware(t) == _aware(u),
    "Sub": lambda t, u: _aware(t) - _aware(u),
    "Add": lambda t, d: t + d,
    "String": _go_time_string,
}

_DURATION_METHODS: dict[str, Callable[..., Any]] = {
    "Hours": lambda d: d.total_seconds() / 3600,
    "Minutes": lambda d: d.total_seconds() / 60,
    "Seconds": lambda d: d.total_seconds(),
    "Milliseconds": lambda d: d // timedelta(milliseconds=1),
    "Microseconds": lambda d: d // timedelta(microseconds=1),
    "Nanoseconds": lambda d: (d // timedelta(microseconds=1)) * 1000,
    "String": _go_duration,
}


# ---------------------------------------------------------------------------------------------
# Builtin functions
# ---------------------------------------------------------------------------------------------
def _want(fn: str, value: Any, kind: type | tuple[type, ...], label: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ExpressionError(f"{fn}() expects {label}, got {_type_name(value)} ({_short(value)})")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _str(fn: str, value: Any) -> str:
    return _want(fn, value, str, "a string")


def _list(fn: str, value: Any) -> list | tuple:
    return _want(fn, value, (list, tuple), "an array")


def _number(fn: str, value: Any) -> int | float:
    return _want(fn, value, (int, float), "a number")


def _len(value: Any) -> int:
    return len(_want("len", value, (str, list, tuple, Mapping), "a string, array or map"))


def _split(text: Any, sep: Any, limit: int = -1) -> list[str]:
    text, sep = _str("split", text), _str("split", sep)
    if limit == 0:
        return []
    if sep == "":
        return list(text)
    return text.split(sep) if limit < 0 else text.split(sep, limit - 1)


def _join(items: Any, sep: Any = "") -> str:
    items, sep = _list("join", items), _str("join", sep)
    return sep.join(_str("join", item) for item in items)


def _trim(text: Any, chars: Any = None) -> str:
    text = _str("trim", text)
    return text.strip() if chars is None else text.strip(_str("trim", chars))


def _to_int(value: Any) -> int:
    if _is_int(value):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"cannot convert {_go_float(value)} to int")
        return int(value)  # truncates toward zero, like Go
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""), 10)
        except ValueError:
            raise ExpressionError(f"int(): invalid syntax {value!r}") from None
    raise ExpressionError(f"int() cannot convert {_type_name(value)}")


def _to_float(value: Any) -> float:
    if _is_num(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ExpressionError(f"float(): invalid syntax {value!r}") from None
    raise ExpressionError(f"float() cannot convert {_type_name(value)}")


def _from_json(text: Any) -> Any:
    try:
        return json.loads(_str("fromJSON", text), parse_constant=_reject_constant)
    except ValueError as exc:
        raise ExpressionError(f"fromJSON(): invalid JSON: {exc}") from None


def _numbers(fn: str, args: tuple) -> list:
    values = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    if not values:
        raise ExpressionError(f"{fn}() needs at least one number")
    return [_number(fn, v) for v in values]


def _sum(values: Any) -> int | float:
    return sum(_number("sum", v) for v in _list("sum", values))


def _mean(values: Any) -> float:
    values = [_number("mean", v) for v in _list("mean", values)]
    return float(sum(values)) / len(values) if values else 0.0


def _median(values: Any) -> float:
    values = [_number("median", v) for v in _list("median", values)]
    return float(statistics.median(values)) if values else 0.0


def _sorted_pairs(pairs: list[tuple[Any, Any]], order: Any) -> list[tuple[Any, Any]]:
    if order not in ("asc", "desc"):
        raise ExpressionError(f"unknown sort order {_short(order)} (use 'asc' or 'desc')")
    try:
        return sorted(pairs, key=lambda kv: kv[0], reverse=order == "desc")
    except TypeError:
        raise ExpressionError("cannot sort values of different types") from None


def _sort(values: Any, order: Any = "asc") -> list:
    return [x for x, _ in _sorted_pairs([(x, x) for x in _list("sort", values)], order)]


def _first(values: Any) -> Any:
    values = _want("first", values, (list, tuple, str), "an array")
    return values[0] if values else None


def _last(values: Any) -> Any:
    values = _want("last", values, (list, tuple, str), "an array")
    return values[-1] if values else None


def _get(value: Any, key: Any) -> Any:
    try:
        return _get_index(value, key)
    except ExpressionError:
        return None


def _repeat(text: Any, count: Any) -> str:
    text, count = _str("repeat", text), _want("repeat", count, int, "an int")
    if count < 0 or len(text) * count > _MAX_STRING:
        raise ExpressionError(f"repeat(): invalid count {count}")
    return text * count


def _round(value: Any) -> float:
    # Go's math.Round rounds half away from zero (Python's round() is banker's rounding).
    value = _number("round", value)
    return float(math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1))


def _flatten(values: Any) -> list:
    out = []
    for item in _list("flatten", values):
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


def _uniq(values: Any) -> list:
    out: list[Any] = []
    for item in _list("uniq", values):
        if not any(_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _quote(value: Any) -> str:
    """Kargo's quote(): the value in double quotes, so template coercion keeps it a string."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _unsafe_quote(value)


def _unsafe_quote(value: Any) -> str:
    """Kargo's unsafeQuote(): JSON of the value, in quotes (a string keeps its own quotes)."""
    return f'"{_to_json(value)}"'


def _as_json(value: Any) -> str:
    """Kargo's asJSON(): indented JSON text, kept a string by the template coercion."""
    return f'"{_to_json(value, indent=2)}\n"'


class _YamlDumper(yaml.SafeDumper):
    # go-yaml v3 (used by Kargo) indents block sequences under their key; PyYAML does not.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _as_yaml(value: Any) -> str:
    """Kargo's asYAML(): YAML text, kept a string by the template coercion."""
    try:
        text = yaml.dump(
            value, Dumper=_YamlDumper, default_flow_style=False, sort_keys=True, allow_unicode=True
        )
    except yaml.YAMLError as exc:
        raise ExpressionError(f"asYAML(): {exc}") from None
    if text.endswith("\n...\n"):  # PyYAML's end-of-document marker after a bare scalar
        text = text[: -len("...\n")]
    return f'"{text}"'


def _from_pairs(pairs: Any) -> dict:
    out = {}
    for pair in _list("fromPairs", pairs):
        key, value = _want("fromPairs", pair, (list, tuple), "[key, value] pairs")
        out[key] = value
    return out


_BUILTINS: dict[str, Callable[..., Any]] = {
    # strings
    "len": _len,
    "upper": lambda s: _str("upper", s).upper(),
    "lower": lambda s: _str("lower", s).lower(),
    "trim": _trim,
    "trimPrefix": lambda s, p: _str("trimPrefix", s).removeprefix(_str("trimPrefix", p)),
    "trimSuffix": lambda s, p: _str("trimSuffix", s).removesuffix(_str("trimSuffix", p)),
    "split": _split,
    "join": _join,
    "replace": lambda s, old, new: _str("replace", s).replace(
        _str("replace", old), _str("replace", new)
    ),
    "repeat": _repeat,
    "indexOf": lambda s, sub: _str("indexOf", s).find(_str("indexOf", sub)),
    "lastIndexOf": lambda s, sub: _str("lastIndexOf", s).rfind(_str("lastIndexOf", sub)),
    "hasPrefix": lambda s, p: _str("hasPrefix", s).startswith(_str("hasPrefix", p)),
    "hasSuffix": lambda s, p: _str("hasSuffix", s).endswith(_str("hasSuffix", p)),
    # conversion
    "int": _to_int,
    "float": _to_float,
    "string": _go_string,
    "type": _type_name,
    "toJSON": lambda v: _to_json(v, indent=2),
    "fromJSON": _from_json,
    "toBase64": lambda s: base64.b64encode(_str("toBase64", s).encode()).decode(),
    "fromBase64": lambda s: base64.b64decode(_str("fromBase64", s), validate=True).decode(),
    # numbers
    "abs": lambda n: abs(_number("abs", n)),
    "max": lambda *args: max(_numbers("max", args)),
    "min": lambda *args: min(_numbers("min", args)),
    "ceil": lambda n: float(math.ceil(_number("ceil", n))),
    "floor": lambda n: float(math.floor(_number("floor", n))),
    "round": _round,
    "mean": _mean,
    "median": _median,
    # arrays and maps
    "first": _first,
    "last": _last,
    "take": lambda a, n: list(_list("take", a)[: max(0, _want("take", n, int, "an int"))]),
    "reverse": lambda a: list(reversed(_list("reverse", a))),
    "sort": _sort,
    "uniq": _uniq,
    "flatten": _flatten,
    "concat": lambda *arrays: [x for a in arrays for x in _list("concat", a)],
    "keys": lambda m: list(_want("keys", m, Mapping, "a map").keys()),
    "values": lambda m: list(_want("values", m, Mapping, "a map").values()),
    "toPairs": lambda m: [[k, v] for k, v in _want("toPairs", m, Mapping, "a map").items()],
    "fromPairs": _from_pairs,
    "get": _get,
    # time
    "now": lambda: datetime.now(UTC),
    "date": _parse_date,
    "duration": _parse_duration,
    # Kargo's template helpers (pkg/expressions/json_templates.go)
    "quote": _quote,
    "unsafeQuote": _unsafe_quote,
    "asJSON": _as_json,
    "asYAML": _as_yaml,
}

# Builtins whose second argument is a predicate evaluated per element (with # bound to it).
_PREDICATE_BUILTINS = frozenset(
    {
        "all",
        "any",
        "none",
        "one",
        "filter",
        "map",
        "count",
        "sum",
        "find",
        "findIndex",
        "findLast",
        "findLastIndex",
        "groupBy",
        "sortBy",
        "reduce",
    }
)
