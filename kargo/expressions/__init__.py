"""An evaluator for the subset of expr-lang (github.com/expr-lang/expr) that Kargo uses.

Kargo puts expr-lang expressions inside ``${{ ... }}`` (or ``${% ... %}`` when the expression
itself contains ``}}``) in promotion step configs, ``if`` conditions and vars, and uses plain
expressions (no delimiters) in warehouse filters and Argo Rollouts success/failure conditions.

Expressions are parsed with a real LALR grammar (lark) into a tree that is walked by a small
interpreter; user input is never handed to Python's own evaluator. Parsed trees are cached by
source text, so evaluating the same expression over and over only pays for the walk. Each
evaluation has a budget of steps and seconds (kargo.expressions.budget) and ends with an
ExpressionError when it runs out, so no expression can hold the server.

The modules, each importing only those listed before it:
  errors     ExpressionError
  budget     Budget: the steps and seconds one evaluation may spend
  grammar    the grammar and its lark parser
  values     type names and Go-style rendering (fmt's %v, encoding/json)
  operators  ==, <, in, matches (RE2), arithmetic, member access, indexing, slicing
  dates      date(), duration() and the Go methods of time.Time and time.Duration
  functions  the builtin functions
  evaluator  the tree walker
  compiler   compile_expression, Expression, evaluate and syntax-error reporting
  templates  has_expression, evaluate_template and Kargo's JSON coercion

Public API: ``ExpressionError``, ``evaluate``, ``evaluate_template``, ``has_expression``,
``compile_expression``, ``Expression`` and ``Budget``.
"""

from kargo.expressions.budget import Budget
from kargo.expressions.compiler import Expression, compile_expression, evaluate
from kargo.expressions.errors import ExpressionError
from kargo.expressions.templates import evaluate_template, has_expression

__all__ = [
    "Budget",
    "Expression",
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "evaluate_template",
    "has_expression",
]
