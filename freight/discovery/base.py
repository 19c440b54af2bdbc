"""What discovery of every subscription kind shares: its error and the expressionFilter hook."""

from collections.abc import Callable


class DiscoveryError(Exception):
    """Discovery failed. The message names the repository and what went wrong."""


# An optional hook evaluating the subscription's expressionFilter. It receives Kargo's expression
# environment for one artifact (for git: a commit or a tag); True keeps the artifact.
ExpressionFilter = Callable[[dict], bool]


def passes(expression_filter: ExpressionFilter | None, env: dict, shown_url: str) -> bool:
    if expression_filter is None:
        return True
    try:
        return bool(expression_filter(env))
    except Exception as exc:  # the hook's failure is a discovery failure
        raise DiscoveryError(f"error evaluating expressionFilter for {shown_url}: {exc}") from exc
