"""What one evaluation may spend: steps of work and wall time.

Expressions are user input run by the server, so `map(1..1000, map(1..1000, #))`, a `repeat()`
in a loop or a `reduce` that doubles a list must end in a clear ExpressionError instead of
holding a worker or its memory. A step is one node of the tree visited, plus the size of what
an operation reads or builds: an element of a list or map, or CHARS_PER_STEP characters of a
string. Work that would be out of budget is charged before it is done where its size is known
in advance (ranges, repeat, replace, serialising a value), so it is refused, not attempted.
"""

import time
from collections.abc import Mapping
from typing import Any

from kargo.expressions.errors import ExpressionError

MAX_STEPS = 1_000_000
MAX_SECONDS = 2.0
CHARS_PER_STEP = 64
# Steps between looks at the clock: often enough to stop near the deadline, rare enough to
# cost nothing measurable.
_CLOCK_EVERY = 1024


_SCALARS = frozenset({int, float, bool, type(None)})


def weight(value: Any) -> int:
    """Steps for touching `value` once, without looking inside its elements."""
    kind = type(value)
    if kind in _SCALARS:  # the common case, before the slower isinstance tests
        return 1
    if isinstance(value, str):
        return 1 + len(value) // CHARS_PER_STEP
    if isinstance(value, (list, tuple, dict, Mapping)):
        return 1 + len(value)
    return 1


class Budget:
    """Counts one evaluation's steps; `charge` raises ExpressionError past the step budget or
    the deadline."""

    __slots__ = ("deadline", "max_seconds", "max_steps", "next_check", "steps")

    def __init__(self, max_steps: int = MAX_STEPS, max_seconds: float = MAX_SECONDS):
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds
        self.steps = 0
        self.next_check = min(_CLOCK_EVERY, max_steps + 1)

    def charge(self, steps: int = 1) -> None:
        self.steps += steps
        if self.steps >= self.next_check:
            self.check()

    def check(self) -> None:
        if self.steps > self.max_steps:
            raise ExpressionError(f"expression exceeded its budget of {self.max_steps:,} steps")
        if time.monotonic() > self.deadline:
            raise ExpressionError(f"expression exceeded its budget of {self.max_seconds:g} seconds")
        self.next_check = min(self.steps + _CLOCK_EVERY, self.max_steps + 1)

    def charge_shallow(self, *values: Any) -> None:
        steps = 0
        for value in values:
            steps += weight(value)
        self.charge(steps)

    def charge_deep(self, *values: Any) -> None:
        """Charge for walking every element of `values`, as serialising or comparing them does.
        A value reached twice (`[x, x]`) is charged twice, as the walk would visit it twice; so
        a structure that shares itself into exponential size is refused, not walked."""
        stack = list(values)
        pending = 0  # charged in batches: a call per element would double the walk's cost
        while stack:
            value = stack.pop()
            if isinstance(value, str):
                pending += 1 + len(value) // CHARS_PER_STEP
            elif isinstance(value, (list, tuple, Mapping)):
                pending += 1 + len(value) * (2 if isinstance(value, Mapping) else 1)
                if pending >= _CLOCK_EVERY:  # before a large container is pushed
                    self.charge(pending)
                    pending = 0
                if isinstance(value, Mapping):
                    stack.extend(value.keys())
                    stack.extend(value.values())
                else:
                    stack.extend(value)
        self.charge(pending)
