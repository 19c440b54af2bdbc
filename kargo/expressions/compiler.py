"""Compiling expressions: source text to a cached, literal-folded tree, with syntax errors that
say what was expected where."""

import functools
import re
from collections.abc import Mapping
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from kargo.expressions.budget import Budget
from kargo.expressions.errors import ExpressionError
from kargo.expressions.evaluator import Evaluator
from kargo.expressions.grammar import parser
from kargo.expressions.values import type_name

# Longer sources are refused before parsing: no Kargo expression needs more, and parsing is
# linear but not free.
MAX_SOURCE = 64 * 1024

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


class Expression:
    """A parsed expression; ``evaluate(env)`` walks the cached tree."""

    __slots__ = ("source", "tree")

    def __init__(self, source: str, tree: Tree):
        self.source = source
        self.tree = tree

    def evaluate(self, env: Mapping[str, Any] | None = None, budget: Budget | None = None) -> Any:
        """The value of the expression in `env`, within `budget` (a fresh one by default:
        MAX_STEPS steps and MAX_SECONDS seconds)."""
        budget = budget if budget is not None else Budget()
        try:
            result = Evaluator(env if env is not None else {}, budget).visit(self.tree)
            # What the caller gets is walked again (serialised, stored, shown): a value that
            # shares itself into billions of elements, as `reduce(1..40, [#acc, #acc], 1)`
            # builds, is refused here rather than expanded there.
            budget.charge_deep(result)
            return result
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
        raise ExpressionError(f"expression must be a string, got {type_name(source)}")
    if not source.strip():
        raise ExpressionError("empty expression", source=source)
    if len(source) > MAX_SOURCE:
        raise ExpressionError(
            f"expression is longer than {MAX_SOURCE:,} characters", source=source[:200]
        )
    try:
        try:
            tree = _Compiler().transform(parser().parse(source))
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
        pattern = parser().get_terminal(name).pattern
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


def evaluate(
    source: str, env: Mapping[str, Any] | None = None, budget: Budget | None = None
) -> Any:
    """Evaluate a plain expr-lang expression, e.g. ``result[0] >= 0.95``."""
    return compile_expression(source).evaluate(env, budget)
