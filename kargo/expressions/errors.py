"""ExpressionError: what went wrong in an expression, and where."""


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
