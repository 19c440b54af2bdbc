"""The interpreter: walks a compiled tree against an environment of names."""

import inspect
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from lark import Tree

from kargo.expressions.budget import CHARS_PER_STEP, Budget, weight
from kargo.expressions.dates import DURATION_METHODS, TIME_METHODS
from kargo.expressions.errors import ExpressionError
from kargo.expressions.functions import BUILTINS, PREDICATE_BUILTINS, sorted_pairs, sum_numbers
from kargo.expressions.operators import (
    MAX_RANGE,
    PLAIN_TYPES,
    add,
    compare,
    divide,
    get_index,
    get_member,
    get_slice,
    int_range,
    modulo,
    multiply,
    negate,
    power,
    require_bool,
    subtract,
    unary_plus,
)
from kargo.expressions.values import is_int, short, type_name

_MISSING = object()
_SCALARS = frozenset({int, float, bool, type(None)})
_ELEMENTWISE = frozenset({"==", "!=", "in", "not in"})

# Builtins whose work grows with everything inside their arguments, not just their length:
# serialising, joining, flattening and comparing element by element.
_DEEP_BUILTINS = frozenset(
    {"toJSON", "string", "asJSON", "asYAML", "quote", "unsafeQuote", "join", "flatten", "concat"}
)


def _builtin_cost(name: str, args: list[Any]) -> int:
    """Steps a builtin will take (or the size of what it will build), known before it runs."""
    if name == "repeat" and len(args) == 2 and isinstance(args[0], str) and is_int(args[1]):
        return max(0, len(args[0]) * args[1]) // CHARS_PER_STEP
    if name == "replace" and len(args) == 3 and all(isinstance(a, str) for a in args):
        text, old, new = args
        # replace(s, "", x) puts x between every two characters: its size is known up front.
        found = len(text) + 1 if old == "" else text.count(old)
        return (len(text) + found * max(0, len(new) - len(old))) // CHARS_PER_STEP
    if name == "uniq" and args and isinstance(args[0], (list, tuple)):
        return len(args[0]) ** 2 // 8  # every element is compared with those kept so far
    return 0


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
        raise ExpressionError(f"{label} is not a function (it is {type_name(fn)})")
    return _invoke(fn, args, label)


def _call_method(value: Any, name: str, args: list[Any]) -> Any:
    # Go methods of time.Time and time.Duration that Kargo users reach for.
    if isinstance(value, datetime) and name in TIME_METHODS:
        return _invoke(TIME_METHODS[name], [value, *args], name)
    if isinstance(value, timedelta) and name in DURATION_METHODS:
        return _invoke(DURATION_METHODS[name], [value, *args], name)
    if isinstance(value, Mapping):
        return _call_value(value.get(name), args, name)
    if value is None:
        raise ExpressionError(f"cannot call method {name!r} of nil")
    if name.startswith("_") or isinstance(value, (*PLAIN_TYPES, types.ModuleType)):
        raise ExpressionError(f"{type_name(value)} has no method {name!r}")
    return _call_value(getattr(value, name, None), args, name)


class Evaluator:
    """Walks a compiled tree. ``frames`` holds the current element(s) of predicates (``#``)."""

    __slots__ = ("budget", "env", "frames")

    def __init__(self, env: Mapping[str, Any], budget: Budget | None = None):
        self.env = env
        self.frames: list[dict[str, Any]] = []
        self.budget = budget if budget is not None else Budget()

    def visit(self, node: Tree) -> Any:
        try:
            budget = self.budget  # Budget.charge(), inlined: this runs for every node
            budget.steps += 1
            if budget.steps >= budget.next_check:
                budget.check()
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
        return get_member(self._current(f".{name}")["#"], name)

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
                raise ExpressionError(f"invalid map key {short(key)}") from None
        return result

    # -- operators ------------------------------------------------------------------------
    def _ternary(self, node: Tree) -> Any:
        condition, if_true, if_false = node.children
        return self.visit(
            if_true if require_bool(self.visit(condition), "?: condition") else if_false
        )

    def _or_op(self, node: Tree) -> bool:
        left, right = node.children
        if require_bool(self.visit(left), "||"):
            return True
        return require_bool(self.visit(right), "||")

    def _and_op(self, node: Tree) -> bool:
        left, right = node.children
        if not require_bool(self.visit(left), "&&"):
            return False
        return require_bool(self.visit(right), "&&")

    def _not_op(self, node: Tree) -> bool:
        # children[-1]: the `not` keyword token is kept in the tree, `!` is not.
        return not require_bool(self.visit(node.children[-1]), "!")

    def _compare(self, node: Tree) -> bool:
        # `a < b < c` means `a < b && b < c` (expr-lang chains comparisons).
        left = self.visit(node.children[0])
        children = node.children[1:]
        for op, right_node in zip(children[::2], children[1::2], strict=True):
            right = self.visit(right_node)
            # ==, != and in compare element by element; the others read strings through.
            if op in _ELEMENTWISE:
                if not (type(left) in _SCALARS and type(right) in _SCALARS):
                    self.budget.charge_deep(left, right)
            elif isinstance(left, str) or isinstance(right, str):
                self.budget.charge_shallow(left, right)
            if not compare(op, left, right):
                return False
            left = right
        return True

    def _binary(self, node: Tree, fn: Callable[[Any, Any], Any]) -> Any:
        left, right = node.children
        a, b = self.visit(left), self.visit(right)
        # What an operator reads (and, for + on strings and lists, builds) is its operands.
        self.budget.charge_shallow(a, b)
        return fn(a, b)

    def _range_op(self, node: Tree) -> list[int]:
        left, right = node.children
        a, b = self.visit(left), self.visit(right)
        if is_int(a) and is_int(b) and 0 <= b - a < MAX_RANGE:  # larger ones: int_range says so
            self.budget.charge(b - a + 1)
        return int_range(a, b)

    def _add(self, node: Tree) -> Any:
        return self._binary(node, add)

    def _sub(self, node: Tree) -> Any:
        return self._binary(node, subtract)

    def _mul(self, node: Tree) -> Any:
        left, right = node.children
        a, b = self.visit(left), self.visit(right)
        if is_int(a) and is_int(b):
            # Python's ints have no overflow: squaring again and again builds numbers whose
            # product takes seconds. Charge by the size of the product's digits.
            self.budget.charge(1 + (a.bit_length() * b.bit_length()) // (1 << 16))
        return multiply(a, b)

    def _div(self, node: Tree) -> float:
        return self._binary(node, divide)

    def _mod(self, node: Tree) -> int:
        return self._binary(node, modulo)

    def _pow(self, node: Tree) -> float:
        return self._binary(node, power)

    def _neg(self, node: Tree) -> Any:
        return negate(self.visit(node.children[0]))

    def _pos(self, node: Tree) -> Any:
        return unary_plus(self.visit(node.children[0]))

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
                        value = self._charged(_call_method, [value, name, args], args)
                        position += 2
                        continue
                    value = get_member(value, name)
                elif kind in ("index", "opt_index"):
                    value = get_index(value, self.visit(trailer.children[0]))
                elif kind == "slice":
                    start, stop = (
                        None if child is None else self.visit(child) for child in trailer.children
                    )
                    self.budget.charge_shallow(value)
                    value = get_slice(value, start, stop)
                else:  # call of a computed value, e.g. m["f"](1)
                    args = [self.visit(arg) for arg in _args(trailer)]
                    value = self._charged(_call_value, [value, args, "value"], args)
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

    def _charged(
        self, call: Callable, call_args: list[Any], args: list[Any], prepaid: int = 0
    ) -> Any:
        """`call(*call_args)`, charged for reading `args` and for the size of its result
        (less what was `prepaid` for it before the call)."""
        self.budget.charge_shallow(*args)
        result = call(*call_args)
        self.budget.charge(max(1, weight(result) - prepaid))
        return result

    def _call_function(self, name: str, arg_nodes: list[Tree], piped: list[Any] = ()) -> Any:
        fn = self.env.get(name, _MISSING)
        if callable(fn):  # callables from the env win over builtins of the same name
            args = [*piped, *(self.visit(arg) for arg in arg_nodes)]
            return self._charged(_invoke, [fn, args, name], args)
        if name in PREDICATE_BUILTINS:
            return self._call_predicate(name, arg_nodes, piped)
        builtin = BUILTINS.get(name)
        if builtin is not None:
            args = [*piped, *(self.visit(arg) for arg in arg_nodes)]
            if name in _DEEP_BUILTINS:
                self.budget.charge_deep(*args)
            cost = _builtin_cost(name, args)
            self.budget.charge(cost)
            return self._charged(_invoke, [builtin, args, name], args, prepaid=cost)
        if fn is not _MISSING:
            raise ExpressionError(f"{name!r} is not a function (it is {type_name(fn)})")
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
            raise ExpressionError(f"{name}() expects an array, got {type_name(items)}")
        self.budget.charge(weight(items))
        seq = list(enumerate(items))

        def test(index: int, item: Any) -> bool:
            return require_bool(self._apply(predicate, item, index), f"{name}() predicate")

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
                    return sum(1 for _, x in seq if require_bool(x, "count()"))
                return sum(1 for i, x in seq if test(i, x))
            case "sum":
                if predicate is not None:
                    return sum_numbers([self._apply(predicate, x, i) for i, x in seq])
                return sum_numbers(items)
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
                return [x for _, x in sorted_pairs(keyed, order)]
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
